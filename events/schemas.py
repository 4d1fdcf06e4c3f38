from __future__ import annotations

from datetime import UTC, timedelta

from marshmallow import ValidationError, fields, validate, validates_schema

from app.fields import AwareDateTime, CityCode, NotEmpty, Rfc3339DateTime, StrictBoolean, Text
from app.web import PageArgsSchema, Schema, StrictInteger, sometimes_absent
from events.models import EVENT_STATUSES, REGISTRATION_STATUSES
from events.seats import MAX_BUCKETS as MAX_SEAT_BUCKETS
from loyalty.rules import EVENT_POINTS_CEILING

# An event's times lie within a day before now (a registration deadline may have passed)
# and five years ahead; it starts in the future.
EVENT_TIMES_FROM = -timedelta(days=1)
EVENT_TIMES_UNTIL = timedelta(days=5 * 365)
MAX_CAPACITY = 100_000


def _schedule_time(earliest: timedelta = EVENT_TIMES_FROM, **kwargs) -> AwareDateTime:
    # An event's time without an offset is ambiguous (UTC? the city's?): refused.
    return AwareDateTime(earliest=earliest, latest=EVENT_TIMES_UNTIL, **kwargs)


def _start_time(**kwargs) -> AwareDateTime:
    # Created, or moved, to start from now on: an event in the past is a typo.
    return _schedule_time(
        earliest=timedelta(0), metadata={"description": "In the future"}, **kwargs
    )


def _query_time(**kwargs) -> AwareDateTime:
    # `+` in a query string easily arrives as a space; times without an offset are UTC.
    return AwareDateTime(default_timezone=UTC, **kwargs)


class EventFieldsSchema(Schema):
    title = Text(200)
    description = Text(5000, multiline=True, blank=True)
    venue = Text(300)
    starts_at = _start_time()
    ends_at = _schedule_time()
    registration_closes_at = _schedule_time(
        metadata={"description": "Defaults to starts_at; may not be after it."}
    )
    capacity = StrictInteger(validate=validate.Range(1, MAX_CAPACITY))
    points_reward = StrictInteger(
        validate=validate.Range(0, EVENT_POINTS_CEILING),
        metadata={
            "description": "Earned on check-in; staff of the event's city earn none. At most"
            " the `max_points` admins set on the event.attended earning rule (1000 by default):"
            " 422 `points_reward_too_high` above it"
        },
    )
    verified_owners_only = StrictBoolean()
    club_id = fields.String(allow_none=True)
    seat_buckets = StrictInteger(
        validate=validate.Range(1, MAX_SEAT_BUCKETS),
        metadata={
            "description": "Split the free seats over this many documents, so that many"
            " owners registering at once do not queue on one (a flagship event: 16); 1 keeps"
            " them on the event"
        },
    )


class EventCreateSchema(EventFieldsSchema):
    city_code = CityCode(required=True)
    title = Text(200, required=True)
    venue = Text(300, required=True)
    starts_at = _start_time(required=True)
    ends_at = _schedule_time(required=True)
    capacity = StrictInteger(required=True, validate=validate.Range(1, MAX_CAPACITY))


class EventUpdateSchema(NotEmpty, EventFieldsSchema):
    pass


class CancelEventSchema(Schema):
    reason = Text(500, required=True)


class EventListArgsSchema(PageArgsSchema):
    city = CityCode()
    # `from` is a Python keyword: the attribute is `from_`, the parameter `from`.
    from_ = _query_time(data_key="from")
    to = _query_time()


class ManagedEventListArgsSchema(PageArgsSchema):
    city = CityCode()
    status = fields.String(validate=validate.OneOf(EVENT_STATUSES))


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
    status = fields.String(validate=validate.OneOf(REGISTRATION_STATUSES))
    waitlist_position = fields.Integer(allow_none=True)
    created_at = Rfc3339DateTime()
    confirmed_at = Rfc3339DateTime(allow_none=True)
    promoted_at = Rfc3339DateTime(allow_none=True)
    cancelled_at = Rfc3339DateTime(allow_none=True)
    attended_at = Rfc3339DateTime(allow_none=True)


class EventSchema(Schema):
    id = fields.String()
    city_code = fields.String()
    club_id = fields.String(allow_none=True)
    organizer_id = fields.String()
    title = fields.String()
    description = fields.String()
    venue = fields.String()
    timezone = fields.String(metadata={"description": "The city's; times carry its offset"})
    starts_at = Rfc3339DateTime()
    ends_at = Rfc3339DateTime()
    registration_closes_at = Rfc3339DateTime()
    capacity = fields.Integer()
    seats_left = fields.Integer()
    seat_buckets = fields.Integer(
        metadata={"description": "How many documents the free seats are split over (1: one)"}
    )
    waitlist_count = fields.Integer()
    points_reward = fields.Integer()
    verified_owners_only = fields.Boolean()
    status = fields.String(validate=validate.OneOf(EVENT_STATUSES))
    cancel_reason = fields.String(allow_none=True)
    created_at = Rfc3339DateTime()
    published_at = Rfc3339DateTime(allow_none=True)
    cancelled_at = Rfc3339DateTime(allow_none=True)
    completed_at = Rfc3339DateTime(allow_none=True)
    city_partner_id = fields.String(
        allow_none=True, metadata={"description": "The city partner that ran it; null: HQ"}
    )
    drop_id = fields.String(
        allow_none=True,
        metadata={"description": "The drop its seats are released through while that runs"},
    )
    my_registration = sometimes_absent(
        fields.Nested(
            RegistrationSchema,
            allow_none=True,
            metadata={"description": "The caller's registration; null when they have none"},
        ),
        when="from the answers of staff operations (create, edit, publish, cancel, "
        "complete, the managed list)",
    )


class MyRegistrationSchema(RegistrationSchema):
    event = fields.Nested(EventSchema)


class TicketSchema(Schema):
    token = fields.String(
        metadata={"description": "Ed25519-signed (docs/api-guide.md); show it as a QR code"}
    )
    ticket_id = fields.String(metadata={"description": "The registration's id"})
    event_id = fields.String()
    expires_at = Rfc3339DateTime()


# A door's clock may run a little ahead of the server's; a scan is from the last week.
SCAN_CLOCK_SKEW = timedelta(minutes=5)
SCAN_AGE_LIMIT = timedelta(days=7)


class CheckInSchema(Schema):
    token = fields.String(validate=validate.Length(1, 2000))
    user_id = fields.String(validate=validate.Length(1, 64))
    nonce = Text(
        100,
        metadata={
            "description": "Unique per scan: the same nonce again changes nothing and answers"
            " what the first did"
        },
    )
    device_id = Text(100, metadata={"description": "The scanning device, as it names itself"})
    scanned_at = AwareDateTime(
        earliest=-SCAN_AGE_LIMIT,
        latest=SCAN_CLOCK_SKEW,
        metadata={"description": "When the door scanned (default: now); the window applies"},
    )
    offline = StrictBoolean(
        load_default=False,
        metadata={
            "description": "Scanned while the device was offline (needs `nonce` and"
            " `scanned_at`): a scan the server would refuse is kept as a conflict (202)"
        },
    )

    @validates_schema
    def one_of(self, data, **kwargs):
        if ("token" in data) == ("user_id" in data):
            raise ValidationError("Give exactly one of token or user_id.", "_schema")
        if data.get("offline") and not ("nonce" in data and "scanned_at" in data):
            raise ValidationError("An offline scan needs its nonce and scanned_at.", "_schema")


class CheckInConflictSchema(Schema):
    id = fields.String()
    event_id = fields.String()
    nonce = fields.String()
    device_id = fields.String(allow_none=True)
    scanned_at = Rfc3339DateTime()
    received_at = Rfc3339DateTime()
    scanned_by = fields.String()
    registration_id = fields.String(allow_none=True)
    user_id = fields.String(allow_none=True)
    display_name = fields.String(allow_none=True)
    reason = fields.String(
        metadata={
            "description": "Why the server would have refused the scan: `already_checked_in`"
            " (scanned on another device or checked in already), `ticket_revoked` (a cancelled"
            " registration), `not_registered`, or a refusal's slug (`invalid_ticket`,"
            " `check_in_closed`, `event_closed`, `not_confirmed`, `self_check_in`,"
            " `budget_exceeded`)"
        }
    )


class DoorKeySchema(Schema):
    kid = fields.String()
    public_key = fields.String(metadata={"description": "Ed25519, base64 of the raw 32 bytes"})


class DoorAttendeeSchema(Schema):
    registration_id = fields.String(metadata={"description": "The ticket id (`t` in a ticket)"})
    user_id = fields.String()
    display_name = fields.String()
    phone_tail = fields.String(allow_none=True, metadata={"description": "Last 4 digits"})
    vehicle = fields.String(allow_none=True, metadata={"description": "A verified vehicle"})
    status = fields.String(validate=validate.OneOf(REGISTRATION_STATUSES))
    attended_at = Rfc3339DateTime(allow_none=True)


class DoorCountsSchema(Schema):
    checked_in = fields.Integer()
    expected = fields.Integer(metadata={"description": "Checked in or confirmed"})


class DoorKitSchema(Schema):
    event = fields.Nested(EventSchema)
    check_in_opens_at = Rfc3339DateTime()
    check_in_closes_at = Rfc3339DateTime()
    keys = fields.List(fields.Nested(DoorKeySchema))
    attendees = fields.List(fields.Nested(DoorAttendeeSchema))
    revoked = fields.List(fields.String(), metadata={"description": "Revoked ticket ids"})
    counts = fields.Nested(DoorCountsSchema)
    generated_at = Rfc3339DateTime()


class CityStatsSchema(Schema):
    city_code = fields.String()
    from_ = Rfc3339DateTime(data_key="from", attribute="from")
    to = Rfc3339DateTime()
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


class FeedbackCreateSchema(Schema):
    score = StrictInteger(required=True, validate=validate.Range(1, 5))
    recommend = StrictInteger(
        required=True,
        validate=validate.Range(0, 10),
        metadata={"description": "How likely to recommend the event, 0-10"},
    )
    comment = Text(2000, multiline=True, blank=True)


class FeedbackSchema(Schema):
    id = fields.String()
    event_id = fields.String()
    user_id = fields.String()
    score = fields.Integer()
    recommend = fields.Integer()
    comment = fields.String(allow_none=True, metadata={"description": "null for readers when held"})
    comment_held = fields.Boolean(
        metadata={"description": "The comment holds a listed sensitive word: withheld"}
    )
    created_at = Rfc3339DateTime()


class EventFeedbackSchema(Schema):
    items = fields.List(fields.Nested(FeedbackSchema))
    next_cursor = fields.String(allow_none=True)
    count = fields.Integer()
    average_score = fields.Float(allow_none=True)
    average_recommend = fields.Float(allow_none=True)
    nps = fields.Float(
        allow_none=True, metadata={"description": "% recommending 9-10 minus % giving 0-6"}
    )


class FollowUpArgsSchema(PageArgsSchema):
    city = CityCode()
    status = fields.String(validate=validate.OneOf(("open", "closed")))
    overdue = fields.Boolean(
        load_default=False, metadata={"description": "Open for more than 3 days"}
    )


class FollowUpSchema(Schema):
    id = fields.String()
    feedback_id = fields.String()
    event_id = fields.String()
    user_id = fields.String()
    city_code = fields.String()
    score = fields.Integer()
    status = fields.String()
    created_at = Rfc3339DateTime()
    closed_at = Rfc3339DateTime(allow_none=True)
    note = fields.String(allow_none=True)


class CloseFollowUpSchema(Schema):
    note = Text(2000, required=True, multiline=True)
