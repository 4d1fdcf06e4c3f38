from __future__ import annotations

from mongoengine import DateTimeField, DictField, Document, ObjectIdField, StringField

from accounts.models import utcnow

KINDS = ("events", "points", "community", "marketing")


class Notification(Document):
    user_id = ObjectIdField(required=True)
    kind = StringField(required=True, choices=KINDS)
    template = StringField(required=True)
    title = StringField(required=True)
    body = StringField(required=True)
    data = DictField()
    # What caused it (for example "<domain event id>:<template>"): one notification per cause.
    dedupe_key = StringField(required=True, unique=True)
    created_at = DateTimeField(default=utcnow)
    read_at = DateTimeField()

    meta = {
        "collection": "notifications",
        "indexes": [("user_id", "-id"), ("user_id", "read_at", "-id")],
    }
