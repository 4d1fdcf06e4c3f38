"""Domain event handlers that notify owners."""

from __future__ import annotations

from pymongo.client_session import ClientSession

from app.outbox import DomainEvent
from notifications.services import notify
from workers.registry import handles


@handles("vehicle.verified")
def notify_vehicle_verified(event: DomainEvent, session: ClientSession | None) -> None:
    payload = event.payload
    notify(session, payload["owner_id"], "community", "vehicle_verified",
           {"model": payload["model"], "vin": payload["vin"], "vehicle_id": event.subject_id},
           dedupe_key=f"{event.id}:vehicle_verified")
