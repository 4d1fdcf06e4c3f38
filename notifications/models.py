"""The owner's inbox and their notification preferences."""

from __future__ import annotations

from mongoengine import DateTimeField, DictField, Document, ObjectIdField, StringField

from app.clock import utcnow

# `account`: what happens to the owner's own account (a vehicle verified).
KINDS = ("events", "points", "community", "marketing", "account")
CHANNELS = ("in_app", "push")
# Marketing is opt-in for push (an unasked-for buzz is what makes owners turn everything
# off); everything else is on until the owner says otherwise.
DEFAULT_PREFERENCES: dict[str, dict[str, bool]] = {
    kind: {"in_app": True, "push": kind != "marketing"} for kind in KINDS
}


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

    @property
    def read(self) -> bool:
        return self.read_at is not None


class PushRequest(Document):
    """A push requested with no inbox entry (the owner turned `in_app` off for the kind):
    its key, the cause's dedupe key, is what keeps a repeated cause from pushing twice."""

    id = StringField(primary_key=True)
    user_id = ObjectIdField(required=True)
    created_at = DateTimeField(default=utcnow)

    meta = {"collection": "push_requests", "indexes": ["user_id"]}


class NotificationPreferences(Document):
    """Only what the owner changed; `DEFAULT_PREFERENCES` fills in the rest."""

    user_id = ObjectIdField(primary_key=True)
    # {kind: {channel: bool}}
    channels = DictField()
    updated_at = DateTimeField(default=utcnow)

    meta = {"collection": "notification_preferences", "indexes": []}
