from __future__ import annotations

from marshmallow import ValidationError, fields

from app.web import PageArgsSchema, Schema
from notifications.models import KINDS


class StrictBoolean(fields.Boolean):
    """JSON true/false only: 1, "yes" and "true" are refused rather than coerced."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("Not a boolean.")
        return value


class InboxArgsSchema(PageArgsSchema):
    unread = fields.Boolean(
        load_default=False, metadata={"description": "Only notifications not yet read"}
    )


class NotificationSchema(Schema):
    id = fields.String()
    kind = fields.String()
    template = fields.String()
    title = fields.String()
    body = fields.String()
    data = fields.Dict()
    read = fields.Boolean()
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)


class ChannelsSchema(Schema):
    in_app = StrictBoolean()
    push = StrictBoolean()


# One entry per kind; on PUT every kind and channel is optional and keeps its value when
# left out.
PreferencesSchema = Schema.from_dict(
    {kind: fields.Nested(ChannelsSchema) for kind in KINDS}, name="NotificationPreferencesSchema"
)
