"""Signed tickets (the QR code an owner shows at the door) and check-in, which records
`event.attended` in the same transaction as the attendance."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from pymongo.client_session import ClientSession

from app.auth import Caller, load_caller
from app.clock import utcnow
from app.db import object_id, transaction
from app.errors import NotFound
from app.outbox import record_event
from events import errors
from events.access import is_city_staff, managed_event, visible_event
from events.listings import city_time
from events.models import (
    ACTIVE,
    ATTENDED,
    CANCELLED,
    CONFIRMED,
    PUBLISHED,
    WAITLISTED,
    Registration,
)
from partners import budget

log = structlog.get_logger()


# A ticket stays valid a while after the event ends, for late check-ins by hand.
TICKET_GRACE = timedelta(hours=6)
# Check-in opens this long before the start (the doors open early) and closes with the
# tickets, TICKET_GRACE after the end.
CHECK_IN_OPENS = timedelta(hours=2)
_TICKET_SALT = "event-ticket"


def _ticket_serializer() -> URLSafeSerializer:
    # itsdangerous signs with the last key and verifies with each: a key rotation keeps
    # issued tickets valid.
    keys = [current_app.config.get("SECRET_KEY_PREVIOUS"), current_app.config["SECRET_KEY"]]
    return URLSafeSerializer([key for key in keys if key], salt=_TICKET_SALT)


def ticket_token(event_id: Any, user_id: Any, expires_at: datetime) -> str:
    return _ticket_serializer().dumps(
        {"e": str(event_id), "u": str(user_id), "x": int(expires_at.timestamp())}
    )


def read_ticket(token: str, event_id: ObjectId) -> ObjectId:
    """The owner a ticket was issued to, if it is genuine, unexpired and for this event."""
    try:
        claims = _ticket_serializer().loads(token)
    except BadSignature:
        raise errors.InvalidTicket() from None
    if not isinstance(claims, dict) or claims.get("e") != str(event_id):
        raise errors.InvalidTicket()
    expiry = claims.get("x")
    owner_id = object_id(claims.get("u"))
    if not isinstance(expiry, int) or expiry < utcnow().timestamp() or owner_id is None:
        raise errors.InvalidTicket()
    return owner_id


def issue_ticket(caller: Caller, event_id: str) -> dict[str, Any]:
    """A signed ticket for a confirmed owner, valid until a while after the event ends."""
    event = visible_event(caller, event_id)
    registration = Registration.objects(event_id=event.pk, user_id=caller.user.pk).first()
    if registration is None or registration.status not in ACTIVE:
        raise NotFound(message="You are not registered for this event.")
    if registration.status == WAITLISTED:
        raise errors.NotConfirmed(message="Waitlisted registrations have no ticket yet.")
    expires_at = event.ends_at + TICKET_GRACE
    return {
        "token": ticket_token(event.pk, caller.user.pk, expires_at),
        "event_id": event.pk,
        "expires_at": expires_at,
    }


def check_in(
    caller: Caller, event_id: str, *, token: str | None = None, user_id: str | None = None
) -> tuple[Registration, bool]:
    """Mark a confirmed owner as attended, with `event.attended` in the same transaction.
    Returns the registration and whether this call checked them in (False on a replay).

    Staff cannot pay themselves: nobody checks themselves in (403 `self_check_in`), and
    staff of the event's city (its circle leaders and ambassadors, and admins) are checked
    in with no points, so two leaders cannot check each other in for the reward either.
    Check-in is open from CHECK_IN_OPENS before the start until the tickets expire
    (409 `check_in_closed` otherwise).
    """
    event = managed_event(caller, event_id)
    owner_id = read_ticket(token, event.pk) if token is not None else object_id(user_id)
    if owner_id == caller.user.pk:
        raise errors.SelfCheckIn()
    if event.status != PUBLISHED:
        raise errors.EventClosed(message=f"Check-in is closed: the event is {event.status}.")
    registration = Registration.objects(event_id=event.pk, user_id=owner_id).first()
    if registration is None or registration.status == CANCELLED:
        raise NotFound(message="This owner is not registered for this event.")
    if registration.status == ATTENDED:
        return registration, False
    now = utcnow()
    opens_at, closes_at = event.starts_at - CHECK_IN_OPENS, event.ends_at + TICKET_GRACE
    if not opens_at <= now <= closes_at:
        raise errors.CheckInClosed(
            opens_at=city_time(event, opens_at).isoformat(),
            closes_at=city_time(event, closes_at).isoformat(),
        )
    if registration.status != CONFIRMED:
        raise errors.NotConfirmed(message=f"This registration is {registration.status}.")
    attendee = load_caller(owner_id)
    staff = attendee is not None and is_city_staff(attendee, event.city_code)

    def unit(session: ClientSession) -> bool:
        attended = Registration._get_collection().update_one(
            {"_id": registration.pk, "status": CONFIRMED},
            {
                "$set": {
                    "status": ATTENDED,
                    "attended_at": now,
                    "checked_in_by": caller.user.pk,
                }
            },
            session=session,
        )
        if attended.matched_count == 0:
            return False
        if event.city_partner_id is not None:  # a partner's event: its budget pays
            budget.draw(session, event.pk, registration.pk, 0 if staff else event.points_reward)
        record_event(
            session,
            "event.attended",
            subject_type="registration",
            subject_id=registration.pk,
            actor_id=caller.user.pk,
            city_code=event.city_code,
            payload={
                "user_id": str(owner_id),
                "event_id": str(event.pk),
                "points_reward": 0 if staff else event.points_reward,
            },
        )
        return True

    checked_in = transaction(unit)
    registration.reload()
    if not checked_in and registration.status != ATTENDED:
        raise errors.NotConfirmed(message=f"This registration is {registration.status}.")
    if checked_in:
        log.info("checked_in", event_id=event_id, user_id=str(owner_id), by=caller.id)
    return registration, checked_in
