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

from accounts.models import utcnow


class HandledEvent(Document):
    """Written in the same transaction as the handler's own changes: a redelivered
    event finds it and changes nothing twice."""

    event_id = StringField(required=True)
    handler = StringField(required=True)
    handled_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "handled_events",
        "indexes": [
            {"fields": ["event_id", "handler"], "unique": True},
            # Redeliveries come within hours (Redis keeps dead messages a week); a month
            # is ample, and keeps the unique index small.
            {"fields": ["handled_at"], "expireAfterSeconds": 30 * 24 * 3600},
        ],
    }


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
