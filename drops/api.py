"""Drops over HTTP: thin views over `drops.launch`, `drops.entries` and `drops.figures`."""

from __future__ import annotations

import re
from typing import cast

from flask import request
from flask.views import MethodView

from accounts.errors import UnknownCity
from app.auth import caller
from app.errors import Forbidden, IdempotencyKeyReused, InvalidIdempotencyKey, NotFound
from app.idempotency import HEADER, KEY_PARAMETER, idempotent
from app.web import Blueprint, page_of
from drops import entries, errors, figures, launch
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

# What app.idempotency accepts as a key: the pattern the header is documented with.
_KEY = re.compile(cast(dict[str, str], KEY_PARAMETER["schema"])["pattern"])


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
    @blp.doc(parameters=[KEY_PARAMETER])
    @blp.arguments(EntryCreateSchema)
    @blp.response(
        202,
        EntryAcceptedSchema,
        headers={
            "Idempotent-Replayed": {
                "description": "`true` when this answers an earlier request with the same"
                " Idempotency-Key: the entry it made",
                "schema": {"type": "string", "enum": ["true"]},
            }
        },
    )
    @blp.refuses(
        errors.DropNotOpen,
        errors.DropClosed,
        errors.AlreadyEntered,
        *errors.NOT_ELIGIBLE,
        InvalidIdempotencyKey,
        IdempotencyKeyReused,
    )
    def post(self, data, drop_id):
        """Enter a drop: accepted at once, decided by the drop's job (poll entries/me)"""
        key = request.headers.get(HEADER)
        if key is not None and not _KEY.match(key):
            raise InvalidIdempotencyKey()
        entered = entries.enter(
            caller(), drop_id, data["quantity"], entries.RequestKey.of(key, data)
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
        return figures.drop_figures(caller(), drop_id)
