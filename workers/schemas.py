from __future__ import annotations

from marshmallow import fields

from app.fields import Rfc3339DateTime
from app.web import PageArgsSchema, Schema


class DeadLetterArgsSchema(PageArgsSchema):
    replayed = fields.Boolean(
        load_default=None,
        allow_none=True,
        metadata={"description": "true/false filters; absent: all"},
    )


class DeadLetterSchema(Schema):
    id = fields.String()
    message_id = fields.String()
    queue_name = fields.String()
    actor_name = fields.String()
    args = fields.List(fields.Raw())
    kwargs = fields.Dict()
    retries = fields.Integer()
    error = fields.String(allow_none=True)
    failed_at = Rfc3339DateTime()
    replayed_at = Rfc3339DateTime(allow_none=True)
    replayed_by = fields.String(allow_none=True)
    replay_message_id = fields.String(allow_none=True)
