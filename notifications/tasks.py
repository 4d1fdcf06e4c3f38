"""Domain event handlers that notify owners, and the push sender."""

from __future__ import annotations

from typing import Any

import dramatiq
from pymongo.client_session import ClientSession

from accounts.domain_events import USER_ERASED, VEHICLE_VERIFIED, VehicleVerified
from app.handlers import handles
from app.outbox import DomainEvent, NoPayload
from notifications import services
from notifications.domain_events import PUSH_REQUESTED, PushRequested

_PUSH_RETRIES: dict[str, Any] = {"max_retries": 8, "min_backoff": 2_000, "max_backoff": 300_000}


@handles(VEHICLE_VERIFIED, name="notifications.vehicle_verified")
def notify_vehicle_verified(event: DomainEvent[VehicleVerified], session: ClientSession) -> None:
    vehicle = event.payload
    services.notify(
        session,
        vehicle.owner_id,
        "account",
        "vehicle_verified",
        {"model": vehicle.model, "vin": vehicle.vin, "vehicle_id": event.subject_id},
        dedupe_key=f"{event.id}:vehicle_verified",
    )


@handles(USER_ERASED, name="notifications.erase_user_data")
def erase_notifications(event: DomainEvent[NoPayload], session: ClientSession) -> None:
    services.erase_user_data(session, event.subject_id)


@handles(
    PUSH_REQUESTED,
    name="notifications.push",
    transactional=False,
    max_retries=_PUSH_RETRIES["max_retries"],
    min_backoff_ms=_PUSH_RETRIES["min_backoff"],
    max_backoff_ms=_PUSH_RETRIES["max_backoff"],
)
def push_notification(event: DomainEvent[PushRequested], session: None) -> None:
    """Push now, or at the end of the owner's quiet hours (a delayed message)."""
    hold = services.push_hold(event)
    if hold is None:
        services.send_push(event)
    else:
        send_held_push.send_with_options(args=(event.to_message(),), delay=hold)


@dramatiq.actor(
    actor_name="notifications.send_push",
    queue_name="notifications",
    time_limit=30_000,
    **_PUSH_RETRIES,
)
def send_held_push(event: dict[str, Any]) -> None:
    services.send_push(DomainEvent.from_message(event).typed(PUSH_REQUESTED))
