"""Events' domain event handlers (notifications) and the periodic reminder actor."""

from __future__ import annotations

import dramatiq
from pymongo.client_session import ClientSession

from app.handlers import handles
from app.outbox import DomainEvent
from events import notices, ticket_keys
from events.domain_events import (
    EVENT_CANCELLED,
    REGISTRATION_PROMOTED,
    EventStatusChanged,
    RegistrationPromoted,
)
from events.tickets import TICKET_GRACE


@handles(EVENT_CANCELLED, name="events.notify_cancelled")
def notify_event_cancelled(event: DomainEvent[EventStatusChanged], session: ClientSession) -> None:
    notices.notify_event_cancelled(session, event.subject_id, cause=event.id)


@handles(REGISTRATION_PROMOTED, name="events.notify_promoted")
def notify_promoted(event: DomainEvent[RegistrationPromoted], session: ClientSession) -> None:
    notices.notify_promoted(session, event.payload.event_id, event.payload.user_id, cause=event.id)


@dramatiq.actor(
    actor_name="events.send_reminders", queue_name="events", max_retries=3, time_limit=120_000
)
def send_reminders() -> None:
    """Remind confirmed owners 24 h and 2 h before their events (once each)."""
    notices.send_reminders()


@dramatiq.actor(
    actor_name="events.rotate_ticket_keys", queue_name="events", max_retries=3, time_limit=120_000
)
def rotate_ticket_keys() -> None:
    """Daily: rotate the ticket keys that signed long enough, and date the end of those
    rotated (events/ticket_keys.py)."""
    ticket_keys.rotate_keys(TICKET_GRACE)
