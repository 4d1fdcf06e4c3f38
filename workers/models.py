"""Bookkeeping of the engagement backbone: which handler saw which domain event, and the
messages that exhausted their retries (the dead letters admins read and replay)."""

from __future__ import annotations

from mongoengine import (
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from app.clock import utcnow


class HandledEvent(Document):
    """Written in the same transaction as the handler's own changes: a redelivered
    event finds it and changes nothing twice."""

    # "<event id>:<handler>": the primary key is the uniqueness check, so the marker
    # costs no index of its own on each insert.
    id = StringField(primary_key=True)
    event_id = StringField(required=True)
    handler = StringField(required=True)
    handled_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "handled_events",
        # Redeliveries come within hours (Redis keeps dead messages a week); a month is
        # ample.
        "indexes": [{"fields": ["handled_at"], "expireAfterSeconds": 30 * 24 * 3600}],
    }

    @classmethod
    def key(cls, event_id: str, handler: str) -> str:
        return f"{event_id}:{handler}"

    @classmethod
    def document(cls, event_id: str, handler: str) -> dict:
        return cls(id=cls.key(event_id, handler), event_id=event_id,
                   handler=handler).to_mongo().to_dict()


class DispatchRound(Document):
    """A dispatcher's batch while it is being sent. Its events are already marked
    dispatched (one write each, instead of a claim and a confirmation); if the dispatcher
    dies before deleting this, another one puts them back to pending after `lease_until`."""

    id = StringField(primary_key=True)
    dispatcher = StringField(required=True)
    lease_until = DateTimeField(required=True)

    meta = {"collection": "dispatch_rounds", "indexes": ["lease_until"]}


class DeadLetter(Document):
    message_id = StringField(required=True, unique=True)
    queue_name = StringField(required=True)
    actor_name = StringField(required=True)
    args = ListField()
    kwargs = DictField()
    options = DictField()
    retries = IntField(default=0)
    error = StringField()
    failed_at = DateTimeField(default=utcnow)
    replayed_at = DateTimeField()
    replayed_by = ObjectIdField()
    replay_message_id = StringField()

    meta = {
        "collection": "dead_letters",
        "indexes": [("replayed_at", "-id")],
    }
