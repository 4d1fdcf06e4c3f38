"""Who may see and manage an event: its city's circle leaders and admins manage it, and
see its draft; everyone sees it once published."""

from __future__ import annotations

from accounts.services import CIRCLE_LEADER
from app.auth import Caller
from app.db import get_or_404
from events.models import DRAFT, Event


def managed_event(caller: Caller, event_id: str) -> Event:
    """An event the caller may manage: a circle leader of its city, or an admin. Others get
    404, so events of other cities do not reveal that they exist."""
    event = get_or_404(Event, event_id)
    caller.require(event.city_code, CIRCLE_LEADER)
    return event


def visible_event(caller: Caller, event_id: str) -> Event:
    """Drafts are visible only to those who manage them."""
    event = get_or_404(Event, event_id)
    if event.status == DRAFT:
        caller.require(event.city_code, CIRCLE_LEADER)
    return event
