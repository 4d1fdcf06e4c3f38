"""The ambassador's review desk: the queue of their cities with filters, each item with
its reports, content, author's history and the decisions the server allows; deciding in
one click with a reason (the item's version goes with it, so of two ambassadors deciding at
once the second is told who decided); claims; bulk decisions over a selection of one kind;
undo within 10 minutes from the panel of recent decisions; each item's page with its
history; the audit log by city, ambassador, account and target. Pages call
`community.review_queue` and `community.moderation`, as the API's views do."""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import HiddenField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from accounts.services import AMBASSADOR, display_names
from app.auth import Caller
from app.db import object_id
from app.errors import DomainError, NotFound
from community import moderation, review_queue, reviewables
from community.models import TARGET_TYPES
from community.review_queue import QUEUE_REASONS, SORTS
from consoles.messages import ACTION_NAMES
from consoles.web import AMBASSADORS, attempt, back, console, flash_refusal, options

WITHIN_RULES = _l("Within the community rules")
# Reasons an ambassador picks in one click; the author and reporters read the one picked
# (with the note, when there is one) in their statement of reasons.
REASONS = (
    _l("Spam or advertising"),
    _l("Abuse or harassment"),
    _l("Off topic for the club"),
    _l("Misleading or false"),
    _l("Personal information of others"),
    WITHIN_RULES,
)
KIND_NAMES = {"post": _l("Post"), "comment": _l("Comment"), "user": _l("Account")}
REASON_NAMES = {
    "held": _l("Held for a listed word"),
    "hidden": _l("Hidden by reports"),
    "reported": _l("Reported"),
}
STATUS_NAMES = {
    "visible": _l("Visible"),
    "held": _l("Held"),
    "hidden": _l("Hidden"),
    "removed": _l("Removed"),
    "deleted": _l("Deleted by its author"),
    "active": _l("Active"),
    "muted": _l("Muted"),
    "banned": _l("Banned"),
}
# Why a report weighs nothing (community.reports.reporter_weight).
WEIGHT_REASONS = {
    "new_account": _l("new account"),
    "muted": _l("muted"),
    "banned": _l("banned"),
    "not_member": _l("not a member of the club"),
    "no_visible_content": _l("unverified, nothing posted"),
}
SORT_NAMES = {"heaviest": _l("Heaviest first"), "newest": _l("Newest first")}
# An audit entry's before and after, as people read them.
FIELD_NAMES = {
    "status": _l("status"),
    "muted_until": _l("muted until"),
    "banned_until": _l("banned until"),
    "warnings": _l("warnings"),
}
REPORT_STATUSES = {"open": _l("open"), "upheld": _l("upheld"), "rejected": _l("rejected")}


class DecisionForm(FlaskForm):
    target_type = HiddenField(validators=[DataRequired()])
    target_id = HiddenField(validators=[DataRequired(), Length(max=64)])
    version = HiddenField()
    action = HiddenField()
    reason = SelectField(_l("Reason"), validators=[DataRequired()])
    note = StringField(_l("Note (optional)"), validators=[Optional(), Length(max=300)])
    duration_days = IntegerField(
        _l("Days"), default=7, validators=[Optional(), NumberRange(min=1, max=3650)]
    )


class BulkForm(FlaskForm):
    action = SelectField(_l("Decision"), validators=[DataRequired()])
    reason = SelectField(_l("Reason"), validators=[DataRequired()])
    note = StringField(_l("Note (optional)"), validators=[Optional(), Length(max=300)])


class ItemForm(FlaskForm):
    target_type = HiddenField(validators=[DataRequired()])
    target_id = HiddenField(validators=[DataRequired(), Length(max=64)])


def _reason_choices() -> list[SelectChoice]:
    return options((str(reason), reason) for reason in REASONS)


# Keeping or restoring finds the content within the rules, and that is what the author and
# the reporters read: the list's default (a violation, for the other decisions' one click)
# must not go out as the reason content was kept.
IN_FAVOUR = ("keep", "restore")


def _reason_of(form: Any, action: str) -> str:
    reason = str(WITHIN_RULES) if action in IN_FAVOUR else str(form.reason.data)
    note = (form.note.data or "").strip()
    return f"{reason}: {note}" if note else reason


def _filters() -> dict[str, Any]:
    args = request.args
    return {
        "city": args.get("city") or None,
        "club": args.get("club") or None,
        "kind": args.get("kind") if args.get("kind") in TARGET_TYPES else None,
        "reason": args.get("reason") if args.get("reason") in QUEUE_REASONS else None,
        "sort": args.get("sort") if args.get("sort") in SORTS else "heaviest",
    }


def _cities(staff: Caller) -> list[str]:
    cities = staff.cities_for(AMBASSADOR)
    return sorted(cities) if cities is not None else []


@console.page("/review", roles=AMBASSADORS, nav=(AMBASSADOR, _l("Review desk")))
def review_desk(staff: Caller) -> str:
    """The queue of the caller's cities, filtered, with the decisions they may undo."""
    filters = _filters()
    try:
        items = review_queue.queue(staff, **filters)["items"]
    except DomainError as refusal:
        flash_refusal(refusal)
        items = []
    form = DecisionForm()
    form.reason.choices = _reason_choices()
    bulk = BulkForm()
    bulk.action.choices = options((a, ACTION_NAMES[a]) for a in moderation.BULK_ACTIONS)
    bulk.reason.choices = _reason_choices()
    recent = moderation.recent_decisions(staff)
    return render_template(
        "consoles/review/queue.html",
        items=items,
        filters=filters,
        cities=_cities(staff),
        clubs=sorted({(i["club_id"], i["club_name"]) for i in items if i["club_id"]}),
        form=form,
        bulk=bulk,
        recent=recent,
        **_names(),
    )


def _names() -> dict[str, Any]:
    return {
        "action_names": ACTION_NAMES,
        "kind_names": KIND_NAMES,
        "reason_names": REASON_NAMES,
        "status_names": STATUS_NAMES,
        "weight_reasons": WEIGHT_REASONS,
        "sort_names": SORT_NAMES,
        "field_names": FIELD_NAMES,
        "report_statuses": REPORT_STATUSES,
        "kinds": TARGET_TYPES,
        "queue_reasons": QUEUE_REASONS,
        "sorts": SORTS,
        "undo_minutes": moderation.UNDO_MINUTES,
    }


@console.page("/review/decide", roles=AMBASSADORS, methods=("POST",))
def decide(staff: Caller) -> Response:
    """One decision on one item, on the version the desk showed."""
    form = DecisionForm()
    form.reason.choices = _reason_choices()
    action = request.form.get("action", "")
    if not form.validate() or action not in ACTION_NAMES:
        flash(_("Pick a decision and a reason."), "error")
        return back("console.review_desk")
    version = form.version.data
    attempt(
        lambda: moderation.take_action(
            staff,
            form.target_type.data or "",
            form.target_id.data or "",
            action,
            _reason_of(form, action),
            form.duration_days.data if action in ("mute", "ban") else None,
            int(version) if version and version.isdigit() else None,
        ),
        _("%(action)s: done. You may undo it for %(minutes)s minutes.")
        % {"action": ACTION_NAMES[action], "minutes": moderation.UNDO_MINUTES},
    )
    return back("console.review_desk")


@console.page("/review/bulk", roles=AMBASSADORS, methods=("POST",))
def decide_many(staff: Caller) -> Response:
    """One decision over the items selected, each audited on its own."""
    form = BulkForm()
    form.action.choices = options((a, a) for a in moderation.BULK_ACTIONS)
    form.reason.choices = _reason_choices()
    selected = [value.split(":") for value in request.form.getlist("items")]
    chosen = [parts for parts in selected if len(parts) == 3 and parts[0] in TARGET_TYPES]
    kinds = {parts[0] for parts in chosen}
    if not form.validate() or not chosen:
        flash(_("Select items, a decision and a reason."), "error")
        return back("console.review_desk")
    if len(kinds) > 1:
        flash(_("A bulk decision is for items of one kind: filter by kind first."), "error")
        return back("console.review_desk")
    items = [
        {"target_id": target_id, "version": int(version) if version.isdigit() else None}
        for _kind, target_id, version in chosen
    ]
    try:
        result = moderation.decide_many(
            staff,
            kinds.pop(),
            items,
            form.action.data or "",
            _reason_of(form, form.action.data or ""),
        )
    except DomainError as refusal:
        flash_refusal(refusal)
        return back("console.review_desk")
    flash(
        _("%(applied)s decided, %(refused)s refused.")
        % {"applied": len(result["applied"]), "refused": len(result["refused"])},
        "success" if not result["refused"] else "info",
    )
    for refused in result["refused"][:10]:
        flash(_("Not decided: %(message)s") % {"message": refused["message"]}, "error")
    return back("console.review_desk")


def _item_of(staff: Caller, form: ItemForm) -> tuple[str, str]:
    return review_queue.item_target(staff, form.target_type.data or "", form.target_id.data or "")


@console.page("/review/claim", roles=AMBASSADORS, methods=("POST",))
def claim(staff: Caller) -> Response:
    form = ItemForm()
    if form.validate():
        attempt(
            lambda: reviewables.claim(staff, *_item_of(staff, form)),
            _l("Claimed for 30 minutes: the others see you are on it."),
        )
    return back("console.review_desk")


@console.page("/review/release", roles=AMBASSADORS, methods=("POST",))
def release(staff: Caller) -> Response:
    form = ItemForm()
    if form.validate():
        attempt(lambda: reviewables.release(staff, *_item_of(staff, form)), _l("Released."))
    return back("console.review_desk")


@console.page("/review/decisions/<action_id>/undo", roles=AMBASSADORS, methods=("POST",))
def undo(staff: Caller, action_id: str) -> Response:
    attempt(
        lambda: moderation.undo_action(staff, action_id, _("Undone from the review desk")),
        _l("Undone: the item, the account and the points are back where they were."),
    )
    return back("console.review_desk")


@console.page("/review/<target_type>/<target_id>", roles=AMBASSADORS)
def review_item(staff: Caller, target_type: str, target_id: str) -> str:
    """One item with its timeline: every report and decision, oldest first."""
    if target_type not in TARGET_TYPES:
        raise NotFound()
    item = review_queue.item(staff, target_type, target_id)
    form = DecisionForm()
    form.reason.choices = _reason_choices()
    timeline = sorted(
        [("report", r["created_at"], r) for r in item["report_details"]]
        + [("decision", d.created_at, d) for d in item["decisions"]],
        key=lambda entry: entry[1],
    )
    deciders = {
        str(k): v for k, v in display_names({d.actor_id for d in item["decisions"]}).items()
    }
    return render_template(
        "consoles/review/item.html",
        item=item,
        timeline=timeline,
        deciders={str(k): v for k, v in deciders.items()},
        form=form,
        recent_ids={str(entry.pk) for entry in moderation.recent_decisions(staff)},
        **_names(),
    )


@console.page("/audit", roles=AMBASSADORS, nav=(AMBASSADOR, _l("Audit log")))
def audit(staff: Caller) -> str:
    """The audit log of the caller's cities, by city, ambassador, account or target."""
    args = request.args
    target_type = args.get("target_type") if args.get("target_type") in TARGET_TYPES else None
    filters = {
        "actor": args.get("actor") if object_id(args.get("actor")) else None,
        "account": args.get("account") if object_id(args.get("account")) else None,
        "target_type": target_type,
        "target_id": args.get("target_id") if target_type else None,
    }
    city = args.get("city") or None
    try:
        page = moderation.audit_log(staff, city, args.get("cursor"), 50, **filters)
    except DomainError as refusal:
        flash_refusal(refusal)
        page = {"items": [], "next_cursor": None}
    people = {e.actor_id for e in page["items"]} | {
        e.account_id for e in page["items"] if e.account_id
    }
    return render_template(
        "consoles/review/audit.html",
        page=page,
        names={str(k): v for k, v in display_names(people).items()},
        city=city,
        cities=_cities(staff),
        filters={k: v for k, v in filters.items() if v},
        **_names(),
    )
