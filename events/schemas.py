from __future__ import annotations

from datetime import UTC

from marshmallow import ValidationError, fields, validate, validates_schema

from app.web import PageArgsSchema, Schema, StrictInteger
from events.models import REGISTRATION_STATUSES

CITY_CODE = validate.Regexp(r"^[A-Z]{2,8}$")


def _schedule_time(**kwargs) -> fields.AwareDateTime:
    # An event's time without an offset is ambiguous (UTC? the city's?): refused.
    return fields.AwareDateTime(**kwargs)


def _query_time(**kwargs) -> fields.AwareDateTime:
    # `+` in a query string easily arrives as a space; times without an offset are UTC.
    return fields.AwareDateTime(default_timezone=UTC, **kwargs)


class EventFieldsSchema(Schema):
    title = fields.String(validate=validate.Length(1, 200))
    description = fields.String(validate=validate.Length(max=5000))
    venue = fields.String(validate=validate.Length(1, 300))
    starts_at = _schedule_time()
    ends_at = _schedule_time()
    registration_closes_at = _schedule_time(
        metadata={"description": "Defaults to starts_at; may not be after it."}
    )
    capacity = StrictInteger(validate=validate.Range(1, 100_000))
    points_reward = StrictInteger(validate=validate.Range(0, 100_000))
    verified_owners_only = fields.Boolean()
    club_id = fields.String(allow_none=True)


class EventCreateSchema(EventFieldsSchema):
    city_code = fields.String(required=True, validate=CITY_CODE)
    title = fields.String(required=True, validate=validate.Length(1, 200))
    venue = fields.String(required=True, validate=validate.Length(1, 300))
    starts_at = _schedule_time(required=True)
    ends_at = _schedule_time(required=True)
    capacity = StrictInteger(required=True, validate=validate.Range(1, 100_000))


class EventUpdateSchema(EventFieldsSchema):
    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Change at least one field.", "_schema")


class CancelEventSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class EventListArgsSchema(PageArgsSchema):
    city = fields.String(validate=CITY_CODE)
    # `from` is a Python keyword: the attribute is `from_`, the parameter `from`.
    from_ = _query_time(data_key="from")
    to = _query_time()


class StatsArgsSchema(Schema):
    from_ = _query_time(data_key="from")
    to = _query_time()


class RegistrationListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(REGISTRATION_STATUSES))


class RegistrationSchema(Schema):
    id = fields.String()
    event_id = fields.String()
    user_id = fields.String()
    city_code = fields.String()
    status = fields.String()
    waitlist_position = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    confirmed_at = fields.DateTime(allow_none=True)
    promoted_at = fields.DateTime(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)
    attended_at = fields.DateTime(allow_none=True)


class EventSchema(Schema):
    id = fields.String()
    city_code = fields.String()
    club_id = fields.String(allow_none=True)
    organizer_id = fields.String()
    title = fields.String()
    description = fields.String()
    venue = fields.String()
    timezone = fields.String(metadata={"description": "The city's; times carry its offset"})
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    registration_closes_at = fields.DateTime()
    capacity = fields.Integer()
    seats_left = fields.Integer()
    waitlist_count = fields.Integer()
    points_reward = fields.Integer()
    verified_owners_only = fields.Boolean()
    status = fields.String()
    cancel_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    published_at = fields.DateTime(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    my_registration = fields.Nested(RegistrationSchema, allow_none=True)


class MyRegistrationSchema(RegistrationSchema):
    event = fields.Nested(EventSchema)


class TicketSchema(Schema):
    token = fields.String(metadata={"description": "Signed; show it as a QR code"})
    event_id = fields.String()
    expires_at = fields.DateTime()


class CheckInSchema(Schema):
    token = fields.String(validate=validate.Length(1, 2000))
    user_id = fields.String(validate=validate.Length(1, 64))

    @validates_schema
    def one_of(self, data, **kwargs):
        if ("token" in data) == ("user_id" in data):
            raise ValidationError("Give exactly one of token or user_id.", "_schema")


class CityStatsSchema(Schema):
    city_code = fields.String()
    from_ = fields.DateTime(data_key="from", attribute="from")
    to = fields.DateTime()
    members = fields.Integer()
    verified_owners = fields.Integer()
    events_held = fields.Integer(metadata={"description": "Completed events starting in range"})
    events_scheduled = fields.Integer(metadata={"description": "Published, not yet completed"})
    registrations = fields.Integer(metadata={"description": "Not cancelled"})
    seated = fields.Integer()
    attended = fields.Integer()
    no_show = fields.Integer()
    attendance_rate = fields.Float(
        allow_none=True, metadata={"description": "attended / (attended + no_show)"}
    )
    points_issued = fields.Integer()
    points_redeemed = fields.Integer()
