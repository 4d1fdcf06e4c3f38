"""A city's events in the leader's console: the list (drafts included, with seats, waitlist
and the budget each reserves), creating and editing, publishing, cancelling (with the
reason owners are told) and completing, the registrations with search and CSV, an event's
feedback and its door conflicts. The forms are checked by the API's own schemas, so the
console and the API accept exactly the same events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import flash, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from app.auth import Caller
from app.errors import DomainError
from consoles.csv import csv_response
from consoles.i18n import from_local_input, local_input
from consoles.messages import CONFLICT_REASONS
from consoles.staff_places import cities_of
from consoles.web import LEADERS, attempt, back, checked, console, flash_refusal
from events import door, feedback, listings, services
from events.access import managed_event
from events.models import EVENT_STATUSES
from events.schemas import EventCreateSchema, EventUpdateSchema

LOCAL_TIME = "%Y-%m-%dT%H:%M"
STATUS_NAMES = {
    "draft": _l("Draft"),
    "published": _l("Published"),
    "cancelled": _l("Cancelled"),
    "completed": _l("Completed"),
    "confirmed": _l("Confirmed"),
    "waitlisted": _l("Waitlisted"),
    "attended": _l("Checked in"),
    "no_show": _l("No-show"),
}


class EventForm(FlaskForm):
    city_code = SelectField(_l("City"), validators=[DataRequired()])
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Length(max=5000)])
    venue = StringField(_l("Venue"), validators=[DataRequired(), Length(max=300)])
    starts_at = DateTimeLocalField(_l("Starts"), format=LOCAL_TIME, validators=[DataRequired()])
    ends_at = DateTimeLocalField(_l("Ends"), format=LOCAL_TIME, validators=[DataRequired()])
    registration_closes_at = DateTimeLocalField(
        _l("Registration closes"), format=LOCAL_TIME, validators=[Optional()]
    )
    capacity = IntegerField(_l("Capacity"), validators=[InputRequired(), NumberRange(min=1)])
    points_reward = IntegerField(
        _l("Points for attending"), default=100, validators=[InputRequired(), NumberRange(min=0)]
    )
    verified_owners_only = BooleanField(_l("Verified owners only"))


class ReasonForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason owners are told"), validators=[DataRequired(), Length(max=500)]
    )


TIME_FIELDS = ("starts_at", "ends_at", "registration_closes_at")
FORM_FIELDS = (
    "title",
    "description",
    "venue",
    *TIME_FIELDS,
    "capacity",
    "points_reward",
    "verified_owners_only",
)


def _body(form: EventForm, city_code: str) -> dict[str, Any]:
    return _as_body({name: form[name].data for name in FORM_FIELDS}, city_code)


def _as_body(values: dict[str, Any], city_code: str) -> dict[str, Any]:
    """An event's fields as the API's body: wall-clock times in the event's city, with its
    offset."""
    body: dict[str, Any] = {}
    for name in FORM_FIELDS:
        value = values.get(name)
        if name in TIME_FIELDS:
            if value is None:
                continue
            value = from_local_input(value.strftime(LOCAL_TIME), city_code).isoformat()
        body[name] = value
    return body


@console.page("/events", roles=LEADERS, nav=("circle_leader", _l("Events")))
def events(staff: Caller) -> str:
    """The events of the caller's cities, drafts included, soonest first."""
    city = request.args.get("city") or None
    status = request.args.get("status") if request.args.get("status") in EVENT_STATUSES else None
    try:
        page = listings.managed_events(staff, city, status, request.args.get("cursor"), 50)
    except DomainError as refusal:
        flash_refusal(refusal)
        page = {"items": [], "next_cursor": None}
    return render_template(
        "consoles/events/list.html",
        page=page,
        cities=cities_of(staff),
        city=city,
        status=status,
        statuses=EVENT_STATUSES,
        status_names=STATUS_NAMES,
    )


@console.page("/events/new", roles=LEADERS, methods=("GET", "POST"))
def new_event(staff: Caller) -> Any:
    form = EventForm()
    form.city_code.choices = cities_of(staff)
    if form.validate_on_submit():
        city_code = form.city_code.data or ""
        data = checked(
            form, EventCreateSchema(), {"city_code": city_code, **_body(form, city_code)}
        )
        if data is not None:
            try:
                event = services.create_event(staff, **data)
            except DomainError as refusal:
                flash_refusal(refusal)
            else:
                flash(_("Draft saved. Publish it when it is ready."), "success")
                return back("console.event", event_id=str(event.pk))
    return render_template("consoles/events/form.html", form=form, event=None)


@console.page("/events/<event_id>", roles=LEADERS)
def event(staff: Caller, event_id: str) -> str:
    found = managed_event(staff, event_id)
    return render_template(
        "consoles/events/detail.html",
        event=listings.describe_event(found),
        counts=door.door_counts(found),
        conflicts=door.conflicts_of(found, None, 20)["items"],
        reason_form=ReasonForm(),
        status_names=STATUS_NAMES,
        conflict_reasons=CONFLICT_REASONS,
    )


@console.page("/events/<event_id>/edit", roles=LEADERS, methods=("GET", "POST"))
def edit_event(staff: Caller, event_id: str) -> Any:
    found = managed_event(staff, event_id)
    form = EventForm(
        data=None if request.method == "POST" else _form_data(found),
    )
    form.city_code.choices = [found.city_code]
    if form.validate_on_submit():
        body = _body(form, found.city_code)
        current = _as_body(_form_data(found), found.city_code)
        changes = {name: value for name, value in body.items() if current.get(name) != value}
        if not changes:
            flash(_("Nothing changed."), "info")
            return back("console.event", event_id=event_id)
        data = checked(form, EventUpdateSchema(), changes)
        if data is not None:
            try:
                services.update_event(staff, event_id, data)
            except DomainError as refusal:
                flash_refusal(refusal)
            else:
                flash(_("Saved."), "success")
                return back("console.event", event_id=event_id)
    return render_template("consoles/events/form.html", form=form, event=found)


def _form_data(event: Any) -> dict[str, Any]:
    """The event's fields as the form shows them: times on the city's wall clock."""
    data = {name: event[name] for name in FORM_FIELDS if name not in TIME_FIELDS}
    for name in TIME_FIELDS:
        data[name] = datetime.strptime(local_input(event[name], event.city_code), LOCAL_TIME)
    return {**data, "city_code": event.city_code}


def _lifecycle(event_id: str, change: Any, done: Any) -> Response:
    attempt(change, done)
    return back("console.event", event_id=event_id)


@console.page("/events/<event_id>/publish", roles=LEADERS, methods=("POST",))
def publish_event(staff: Caller, event_id: str) -> Response:
    return _lifecycle(
        event_id,
        lambda: services.publish_event(staff, event_id),
        _l("Published: owners can register."),
    )


@console.page("/events/<event_id>/cancel", roles=LEADERS, methods=("POST",))
def cancel_event(staff: Caller, event_id: str) -> Response:
    form = ReasonForm()
    if not form.validate():
        flash(_("Say why the event is cancelled: owners are told."), "error")
        return back("console.event", event_id=event_id)
    return _lifecycle(
        event_id,
        lambda: services.cancel_event(staff, event_id, form.reason.data or ""),
        _l("Cancelled: every registered owner is told why."),
    )


@console.page("/events/<event_id>/complete", roles=LEADERS, methods=("POST",))
def complete_event(staff: Caller, event_id: str) -> Response:
    return _lifecycle(
        event_id,
        lambda: services.complete_event(staff, event_id),
        _l("Completed: owners who did not come are marked no-show."),
    )


@console.page("/events/<event_id>/registrations", roles=LEADERS)
def registrations(staff: Caller, event_id: str) -> str:
    """Who registered, searched by name or phone tail (htmx swaps the rows as one types)."""
    query = (request.args.get("q") or "").strip()
    found = managed_event(staff, event_id)
    people = listings.registration_list(found, query)
    template = (
        "consoles/events/_registration_rows.html"
        if request.headers.get("HX-Request")
        else "consoles/events/registrations.html"
    )
    return render_template(
        template,
        event=listings.describe_event(found),
        people=people,
        query=query,
        status_names=STATUS_NAMES,
    )


@console.page("/events/<event_id>/registrations.csv", roles=LEADERS)
def registrations_csv(staff: Caller, event_id: str) -> Response:
    found = managed_event(staff, event_id)
    rows = [
        {
            "registration_id": person["registration_id"],
            "display_name": person["display_name"],
            "phone_tail": person["phone_tail"] or "",
            "vehicle": person["vehicle"] or "",
            "status": person["status"],
            "registered_at": person["created_at"].isoformat(),
            "attended_at": person["attended_at"].isoformat() if person["attended_at"] else "",
            "waitlist_position": person["waitlist_position"] or "",
        }
        for person in listings.registration_list(found, "")
    ]
    return csv_response(rows, f"registrations-{found.city_code}-{found.pk}")


@console.page("/events/<event_id>/feedback", roles=LEADERS)
def event_feedback(staff: Caller, event_id: str) -> str:
    found = managed_event(staff, event_id)
    answers = feedback.event_feedback(staff, event_id, request.args.get("cursor"), 50)
    return render_template(
        "consoles/events/feedback.html",
        event=listings.describe_event(found),
        answers=answers,
    )
