"""The door: the check-in page a leader opens on a phone at the event, and the three JSON
endpoints its script calls (the cookie session stands for the bearer token): the door kit,
the scans, and the counters. The page installs a service worker and keeps the kit, so it
opens, checks tickets and queues scans with no network (consoles/static/door.js); the
server side is the API's: `events.door` and `events.tickets`."""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request
from flask_babel import gettext as _
from marshmallow import ValidationError

from app.auth import Caller
from app.errors import DomainError
from consoles.messages import refusal_text
from consoles.web import LEADERS, console
from events import door, listings, tickets
from events.access import managed_event
from events.schemas import CheckInConflictSchema, CheckInSchema, DoorKitSchema, RegistrationSchema


def _texts() -> dict[str, str]:
    """What door.js says, in the caller's language (`%(name)s` filled in by the script)."""
    return {
        "online": _("Online"),
        "online_uploading": _("Online: uploading %(count)s scans"),
        "offline": _("Offline: %(count)s scans queued, checking against the kit"),
        "signed_out": _("Signed out: sign in again to upload the queued scans"),
        "kit_ready": _("Door kit: %(count)s owners, updated %(at)s"),
        "kit_missing": _("No door kit on this device yet: it needs the network once."),
        "welcome": _("Welcome"),
        "already": _("Already checked in"),
        "already_here": _("Checked in on this device at %(at)s"),
        "already_before": _("Checked in before"),
        "refused": _("Not admitted"),
        "queued": _("Checked against the kit; %(count)s scans wait to upload"),
        "reason_invalid": _("This ticket is not genuine."),
        "reason_other_event": _("This ticket is for another event."),
        "reason_expired": _("This ticket has expired."),
        "reason_revoked": _("This registration was cancelled."),
        "reason_unknown_key": _("Unknown key: update the door kit when online."),
        "reason_legacy": _("An old ticket: it needs the network, or find the owner by name."),
        "reason_no_kit": _("No door kit on this device yet."),
        "reason_no_crypto": _("This browser cannot check signatures offline."),
        "check_in": _("Check in"),
        "camera_start": _("Scan with the camera"),
        "camera_stop": _("Stop the camera"),
        "camera_refused": _("The camera is not available."),
    }


@console.page("/events/<event_id>/door", roles=LEADERS)
def door_page(staff: Caller, event_id: str) -> str:
    found = managed_event(staff, event_id)
    return render_template(
        "consoles/door.html",
        event=listings.describe_event(found),
        counts=door.door_counts(found),
        texts=_texts(),
    )


@console.page("/events/<event_id>/door/kit", roles=LEADERS, json=True)
def door_kit(staff: Caller, event_id: str) -> Any:
    return jsonify(DoorKitSchema().dump(door.door_kit(staff, event_id)))


@console.page("/events/<event_id>/door/counts", roles=LEADERS, json=True)
def door_counts(staff: Caller, event_id: str) -> Any:
    return jsonify(door.door_counts(managed_event(staff, event_id)))


@console.page("/events/<event_id>/door/scans", roles=LEADERS, methods=("POST",), json=True)
def door_scan(staff: Caller, event_id: str) -> Any:
    """One scan, as the API's check-in takes it (with its nonce, device and time): answers
    `outcome` (attended, already, conflict, refused) with what the door shows."""
    try:
        data = CheckInSchema().load(request.get_json(silent=True) or {})
    except ValidationError as invalid:
        return jsonify(outcome="refused", error="validation_failed", errors=invalid.messages), 422
    scan = tickets.Scan.taken_from(data)
    try:
        result = tickets.check_in(staff, event_id, scan=scan, **data)
    except DomainError as refusal:
        return jsonify(
            outcome="refused", error=refusal.error, message=str(refusal_text(refusal))
        ), refusal.status
    answer: dict[str, Any] = {
        "outcome": {
            tickets.CHECKED_IN: "attended",
            tickets.ALREADY_IN: "already",
            tickets.KEPT_AS_CONFLICT: "conflict",
        }[result.status_code],
    }
    if result.registration is not None:
        answer["registration"] = RegistrationSchema().dump(result.registration)
    if result.status_code == tickets.KEPT_AS_CONFLICT:
        answer["conflict"] = CheckInConflictSchema().dump(result.scan)
    return jsonify(answer), result.status_code
