"""Domain events and the transactional outbox.

A service that changes state calls `record_event(session, ...)` inside the same
`app.db.transaction` as the change, so the event is durable exactly when the change is.
Nothing reaches Redis from the request: the dispatcher (`workers/dispatcher.py`) sees
each event once its transaction commits and moves it to Dramatiq; while Redis is down,
events wait in the outbox.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from mongoengine import DateTimeField, DictField, Document, IntField, StringField
from pymongo.client_session import ClientSession

from app.clock import utcnow
from app.db import running_batch


class OutboxEvent(Document):
    id = StringField(primary_key=True)
    type = StringField(required=True)
    version = IntField(required=True, default=1)
    actor_id = StringField()
    subject_type = StringField(required=True)
    subject_id = StringField(required=True)
    city_code = StringField()
    payload = DictField()
    occurred_at = DateTimeField(required=True)

    meta = {
        "collection": "outbox",
        # Written once and never updated: the dispatcher follows the collection's change
        # stream, so an event needs no status. No secondary index either: ids are
        # ordered by time (`id_floor`), so `_id` ranges serve the catch-up, the sweep
        # and the lag figures, and each index would cost every event an index write
        # (on the embedded server, one index made inserts 2.5x slower). Events are
        # kept a week for audit and catch-up, then the dispatcher sweeps them.
        "indexes": [],
    }


@dataclass(frozen=True)
class DomainEvent:
    """An immutable fact. It travels whole in the Dramatiq message: unlike a document it
    never changes, so handlers need not reload it."""

    id: str
    type: str
    subject_type: str
    subject_id: str
    occurred_at: str
    version: int = 1
    actor_id: str | None = None
    city_code: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> DomainEvent:
        return cls(**data)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> DomainEvent:
        occurred_at: datetime = doc["occurred_at"]
        return cls(
            id=doc["_id"],
            type=doc["type"],
            version=doc.get("version", 1),
            actor_id=doc.get("actor_id"),
            subject_type=doc["subject_type"],
            subject_id=doc["subject_id"],
            city_code=doc.get("city_code"),
            payload=doc.get("payload") or {},
            occurred_at=occurred_at.isoformat(),
        )


def id_floor(moment: datetime) -> str:
    """The smallest event id of `moment`'s second. Event ids are ObjectIds, which start
    with their creation time, so ids compare as their times do (to the second)."""
    return str(ObjectId.from_datetime(moment))


def record_event(
    session: ClientSession | None,
    type: str,
    *,
    subject_type: str,
    subject_id: Any,
    actor_id: Any = None,
    city_code: str | None = None,
    payload: dict[str, Any] | None = None,
    version: int = 1,
) -> str:
    """Store a domain event in the outbox, in the caller's transaction. Returns its id.

    Inside a unit of `app.db.transaction` the insert joins the unit's batch of writes (no
    unit reads the outbox), so it costs no round trip of its own."""
    event_id = str(ObjectId())
    document = {
        "_id": event_id,
        "type": type,
        "version": version,
        "actor_id": str(actor_id) if actor_id is not None else None,
        "subject_type": subject_type,
        "subject_id": str(subject_id),
        "city_code": city_code,
        "payload": payload or {},
        "occurred_at": utcnow(),
    }
    outbox = OutboxEvent._get_collection()
    if (writes := running_batch(session)) is not None:
        writes.insert(outbox, document)
    else:
        outbox.insert_one(document, session=session)
    return event_id
