"""Who may see and manage an event: its city's circle leaders and admins manage it, and
see its draft; everyone sees it once published."""

from __future__ import annotations

from pymongo.client_session import ClientSession

from accounts.services import AMBASSADOR, CIRCLE_LEADER
from app.auth import Caller
from app.db import get_or_404, object_id
from app.errors import NotFound
from events.models import DRAFT, Event


def is_city_staff(person: Caller, city_code: str) -> bool:
    """The city's circle leaders and ambassadors, and admins: checked in at its events
    without points, and they do not rate them, so that staff do not pay or grade their own."""
    return person.acts_in(city_code, CIRCLE_LEADER, AMBASSADOR)


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
    if found is None:
        raise NotFound(message="Event not found.")
    event = Event._from_son(found)
    if event.status == DRAFT:
        caller.require(event.city_code, CIRCLE_LEADER)
    return event
