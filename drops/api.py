"""Drops over HTTP: thin views over `drops.launch`, `drops.entries` and
`drops.organiser_figures`."""

from __future__ import annotations

from flask.views import MethodView

from accounts.errors import UnknownCity
from app.auth import caller
from app.errors import Forbidden, NotFound
from app.idempotency import idempotent, keyed_by_the_view, request_key
from app.web import Blueprint, page_of
from drops import entries, errors, launch, organiser_figures
from drops.schemas import (
    DropCreateSchema,
    DropFiguresSchema,
    DropListArgsSchema,
    DropSchema,
    EntryAcceptedSchema,
    EntryCreateSchema,
    EntrySchema,
)

blp = Blueprint("drops", __name__, description="Drops: a reward or an event opened to many owners")
blueprints = (blp,)


@blp.route("/admin/drops")
class Drops(MethodView):
    @idempotent
    @blp.arguments(DropCreateSchema)
    @blp.response(201, DropSchema)
    @blp.refuses(
        Forbidden,
        NotFound,
        UnknownCity,
        errors.InvalidDrop,
        errors.TargetInDrop,
        errors.NotEnoughLeft,
    )
    def post(self, data):
        """Release a reward (admin) or an event's seats (its city's leaders) as a drop"""
        return launch.shown(launch.create_drop(caller(), **data))


@blp.route("/drops")
class DropList(MethodView):
    @blp.arguments(DropListArgsSchema, location="query")
    @blp.response(200, page_of(DropSchema))
    def get(self, args):
        """Drops to come and open, soonest first"""
        return launch.list_drops(args["cursor"], args["limit"], args["include_decided"])


@blp.route("/drops/<drop_id>")
class DropItem(MethodView):
    @blp.response(200, DropSchema)
    def get(self, drop_id):
        """A drop: its rules, figures so far and, once drawn, its seed"""
        return launch.drop_for(caller(), drop_id)


@blp.route("/drops/<drop_id>/entries")
class DropEntries(MethodView):
    @keyed_by_the_view
    @blp.arguments(EntryCreateSchema)
    @blp.response(202, EntryAcceptedSchema)
    @blp.refuses(errors.DropNotOpen, errors.DropClosed, errors.AlreadyEntered, *errors.NOT_ELIGIBLE)
    def post(self, data, drop_id):
        """Enter a drop: accepted at once, decided by the drop's job (poll entries/me)

        The key is kept on the owner's entry itself (entering writes nothing else), so a
        retry of an accepted entry answers it even after the drop closed; a refusal is not
        kept: sent again with its key once the drop opened, a `drop_not_open` entry enters.
        """
        entered = entries.enter(
            caller(), drop_id, data["quantity"], entries.RequestKey.of(request_key(), data)
        )
        return entered.entry, 202, {"Idempotent-Replayed": "true"} if entered.replayed else {}


@blp.route("/drops/<drop_id>/entries/me")
class MyEntry(MethodView):
    @blp.response(200, EntrySchema)
    def get(self, drop_id):
        """The caller's entry: entered, won, lost or refused (with why); one read"""
        return entries.my_entry(caller(), drop_id)


@blp.route("/drops/<drop_id>/figures")
class Figures(MethodView):
    @blp.response(200, DropFiguresSchema)
    def get(self, drop_id):
        """A drop's figures for its organisers (admins; an event's city leaders)"""
        return organiser_figures.drop_figures(caller(), drop_id)
