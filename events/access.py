"""Who may see and manage an event: its city's circle leaders and admins manage it, and
see its draft; everyone sees it once published."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import AMBASSADOR, CIRCLE_LEADER
from app import compat
from app.auth import Caller
from app.db import get_or_404, object_id
from app.errors import NotFound
from events.models import DRAFT, Event


def is_staff(person: Caller) -> bool:
    """Circle leaders and ambassadors of any city, and admins: checked in at events without
    points, and they rate none, so that staff neither pay each other (a leader of one city
    checking in a leader of another) nor grade a partner's scorecard."""
    return bool(person.cities_for(CIRCLE_LEADER, AMBASSADOR) or person.is_admin)


def managed_event(caller: Caller, event_id: str) -> Event:
    """An event the caller may manage: a circle leader of its city, or an admin. Others get
    404, so events of other cities do not reveal that they exist."""
    event = get_or_404(Event, event_id)
    caller.require(event.city_code, CIRCLE_LEADER)
    return event


def visible_event(caller: Caller, event_id: str, session: ClientSession | None = None) -> Event:
    """Drafts are visible only to those who manage them. Read in `session`'s snapshot when
    given (registration decides from it)."""
    oid = object_id(event_id)
    found = Event._get_collection().find_one({"_id": oid}, session=session) if oid else None
    return shown_to(caller, found)


def shown_to(caller: Caller, found: dict[str, Any] | None) -> Event:
    """The event document `found` as `caller` may see it (404 for a draft of another city,
    or for none); what it was read with besides its fields is left aside."""
    found = _visible_document(caller, found)
    return compat.from_son(
        Event, {name: value for name, value in found.items() if name not in _READ_WITH}
    )


def _visible_document(caller: Caller, found: dict[str, Any] | None) -> dict[str, Any]:
    """The stored event `found` if `caller` may see it: 404 for none, and a draft only for
    the circle leaders of its city."""
    if found is None:
        raise NotFound(message="Event not found.")
    if found.get("status", DRAFT) == DRAFT:
        caller.require(found["city_code"], CIRCLE_LEADER)
    return found


# What `events.seats.read_with_seats` adds to an event document.
_READ_WITH = ("buckets", "free_seats")


@dataclass(frozen=True, slots=True)
class EventSeen:
    """What a registration decides from: the event document's fields it reads, taken from
    the stored document directly. Every registration reads its event, and decoding it into
    a mongoengine `Event` was about a tenth of the request's CPU (bench/request_cpu.py)."""

    pk: ObjectId
    city_code: str
    status: str
    starts_at: datetime
    registration_closes_at: datetime
    verified_owners_only: bool
    waitlist_seq: int
    drop_id: ObjectId | None


def seen_by(caller: Caller, found: dict[str, Any] | None) -> EventSeen:
    """`shown_to`'s decision (404 for none, or for a draft of another city) on the stored
    document `found`, as a small typed view."""
    found = _visible_document(caller, found)
    return EventSeen(
        pk=found["_id"],
        city_code=found["city_code"],
        status=found.get("status", DRAFT),
        starts_at=found["starts_at"],
        registration_closes_at=found["registration_closes_at"],
        verified_owners_only=found.get("verified_owners_only", False),
        waitlist_seq=found.get("waitlist_seq", 0),
        drop_id=found.get("drop_id"),
    )
