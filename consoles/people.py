"""Owners who wait on a leader: vehicles to verify (with the API's refusals: nobody reviews
their own vehicle or that of an owner they referred) and low scores to follow up."""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from accounts import ownership
from accounts.services import display_names
from app.auth import Caller
from app.errors import DomainError
from app.web import paginate
from consoles.staff_places import cities_of
from consoles.web import LEADERS, attempt, back, console, flash_refusal
from events import feedback

PAGE_ROWS = 50


class RejectForm(FlaskForm):
    reason = TextAreaField(_l("Why it is rejected"), validators=[DataRequired(), Length(max=500)])


class CloseForm(FlaskForm):
    note = TextAreaField(_l("What was done"), validators=[DataRequired(), Length(max=2000)])


def _city() -> str | None:
    return request.args.get("city") or None


@console.page("/vehicles", roles=LEADERS, nav=("circle_leader", _l("Vehicle verification")))
def vehicles(staff: Caller) -> str:
    """Vehicles waiting for review in the caller's cities, oldest first."""
    try:
        queue = ownership.verification_queue(staff, "pending", _city())
        page = paginate(queue, request.args.get("cursor"), PAGE_ROWS, order=("created_at", "id"))
    except DomainError as refusal:
        flash_refusal(refusal)
        page = {"items": [], "next_cursor": None}
    names = display_names({vehicle.owner_id for vehicle in page["items"]})
    return render_template(
        "consoles/vehicles.html",
        page=page,
        names=names,
        cities=cities_of(staff),
        city=_city(),
        reject_form=RejectForm(),
    )


def _review(change: Any, done: Any) -> Response:
    attempt(change, done)
    return back("console.vehicles")


@console.page("/vehicles/<vehicle_id>/verify", roles=LEADERS, methods=("POST",))
def verify_vehicle(staff: Caller, vehicle_id: str) -> Response:
    return _review(
        lambda: ownership.verify_vehicle(staff, vehicle_id), _l("Verified: the owner is told.")
    )


@console.page("/vehicles/<vehicle_id>/reject", roles=LEADERS, methods=("POST",))
def reject_vehicle(staff: Caller, vehicle_id: str) -> Response:
    form = RejectForm()
    if not form.validate():
        flash(_("Say why the vehicle is rejected."), "error")
        return back("console.vehicles")
    return _review(
        lambda: ownership.reject_vehicle(staff, vehicle_id, form.reason.data or ""),
        _l("Rejected."),
    )


@console.page("/follow-ups", roles=LEADERS, nav=("circle_leader", _l("Follow-ups")))
def follow_ups(staff: Caller) -> str:
    """Low scores to act on: open ones first, or closed ones with their notes."""
    status = "closed" if request.args.get("status") == "closed" else "open"
    try:
        page = feedback.follow_ups(
            staff, _city(), status, False, request.args.get("cursor"), PAGE_ROWS
        )
    except DomainError as refusal:
        flash_refusal(refusal)
        page = {"items": [], "next_cursor": None}
    names = display_names({item.user_id for item in page["items"]})
    return render_template(
        "consoles/follow_ups.html",
        page=page,
        names=names,
        status=status,
        overdue_before=feedback.overdue_before(),
        close_form=CloseForm(),
    )


@console.page("/follow-ups/<follow_up_id>/close", roles=LEADERS, methods=("POST",))
def close_follow_up(staff: Caller, follow_up_id: str) -> Response:
    form = CloseForm()
    if not form.validate():
        flash(_("Write what was done before closing."), "error")
        return back("console.follow_ups")
    attempt(
        lambda: feedback.close_follow_up(staff, follow_up_id, form.note.data or ""), _l("Closed.")
    )
    return back("console.follow_ups")
