from __future__ import annotations

from marshmallow import fields, validate

from app.fields import NotEmpty, Rfc3339DateTime, StrictBoolean
from app.web import PageArgsSchema, Schema
from notifications.models import KINDS


class InboxArgsSchema(PageArgsSchema):
    unread = fields.Boolean(
        load_default=False, metadata={"description": "Only notifications not yet read"}
    )


class NotificationSchema(Schema):
    id = fields.String()
    kind = fields.String(validate=validate.OneOf(KINDS))
    template = fields.String()
    title = fields.String()
    body = fields.String()
    data = fields.Dict()
    read = fields.Boolean()
    created_at = Rfc3339DateTime()
    read_at = Rfc3339DateTime(allow_none=True)


class ChannelsSchema(Schema):
    in_app = StrictBoolean()
    push = StrictBoolean()


class ChannelsUpdateSchema(NotEmpty, ChannelsSchema):
    """Answers list every channel; a change names those it changes."""


# One entry per kind, in answers.
PreferencesSchema = Schema.from_dict(
    {kind: fields.Nested(ChannelsSchema) for kind in KINDS}, name="NotificationPreferencesSchema"
)


# On PUT every kind and channel is optional and keeps its value when left out, but a body
# must change something.
PreferencesUpdateSchema = type(
    "PreferencesUpdateSchema",
    (NotEmpty, Schema),
    {kind: fields.Nested(ChannelsUpdateSchema) for kind in KINDS},
)
