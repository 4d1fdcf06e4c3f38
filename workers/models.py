"""Bookkeeping of the engagement backbone: the dispatcher's position in the outbox, and the
messages that exhausted their retries (the dead letters admins read and replay). Which
handler saw which event is `app.handlers.HandledEvent`."""

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

# The one cursor document: one stream (the outbox), one leader at a time.
CURSOR_ID = "outbox"


class DispatchCursor(Document):
    """Where the outbox dispatcher is: the change-stream position after the last events it
    sent, and which dispatcher leads (one at a time) until when. One document."""

    id = StringField(primary_key=True)
    holder = StringField()
    lease_until = DateTimeField()
    resume_token = DictField()
    # The server's commit time of the last event sent: the outbox's newer events are the
    # ones still waiting (workers/metrics.py), and a catch-up scan starts a little before it.
    dispatched_through = DateTimeField()

    meta = {"collection": "outbox_dispatch"}

    @classmethod
    def read(cls) -> dict:
        """The cursor as stored; empty before any dispatcher has run."""
        return cls._get_collection().find_one({"_id": CURSOR_ID}) or {}


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
