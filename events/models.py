"""Local owner events run by circle leaders, and owners' registrations to them.

`Event.seats_left`, `Event.waitlist_seq` and `Event.waitlisted` are the counters concurrent
registrations race on: each changes in the transaction that changes the registrations it
counts (see `events/registration.py`), so a crash can leak no seat and lists read them
instead of counting registrations.
"""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    Document,
    IntField,
    ObjectIdField,
    StringField,
)

from app.clock import utcnow

DRAFT = "draft"
PUBLISHED = "published"
CANCELLED = "cancelled"
COMPLETED = "completed"
EVENT_STATUSES = (DRAFT, PUBLISHED, CANCELLED, COMPLETED)

CONFIRMED = "confirmed"
WAITLISTED = "waitlisted"
ATTENDED = "attended"
NO_SHOW = "no_show"
REGISTRATION_STATUSES = (CONFIRMED, WAITLISTED, CANCELLED, ATTENDED, NO_SHOW)
# Registrations that hold the owner's place: a second registration is refused.
ACTIVE = (CONFIRMED, WAITLISTED, ATTENDED, NO_SHOW)
# Registrations that occupy a seat (capacity counts them).
SEATED = (CONFIRMED, ATTENDED, NO_SHOW)

# Who cancelled a registration: the owner, or the organizer by cancelling/closing the event.
BY_OWNER = "owner"
BY_EVENT = "event"


class Event(Document):
    city_code = StringField(required=True)
    club_id = ObjectIdField()
    organizer_id = ObjectIdField(required=True)
    title = StringField(required=True, max_length=200)
    description = StringField(default="", max_length=5000)
    venue = StringField(required=True, max_length=300)
    starts_at = DateTimeField(required=True)
    ends_at = DateTimeField(required=True)
    registration_closes_at = DateTimeField(required=True)
    capacity = IntField(required=True, min_value=1)
    # capacity minus seated registrations; never negative (conditional updates only).
    seats_left = IntField(required=True, min_value=0)
    # Last waitlist position handed out: positions are 1, 2, 3... each used once.
    waitlist_seq = IntField(required=True, default=0)
    # Registrations waitlisted now (`events.listings.waitlist_counts` counts them afresh).
    waitlisted = IntField(required=True, default=0, min_value=0)
    # At most what admins allow (loyalty's `max_event_points`), checked by the services.
    points_reward = IntField(required=True, default=100, min_value=0)
    verified_owners_only = BooleanField(default=False)
    status = StringField(required=True, default=DRAFT, choices=EVENT_STATUSES)
    cancel_reason = StringField(max_length=500)
    created_at = DateTimeField(default=utcnow)
    published_at = DateTimeField()
    cancelled_at = DateTimeField()
    completed_at = DateTimeField()
    # The city partner running the city when the event was published (None: HQ ran it),
    # and the month of its budget the event's points are reserved from: a handover keeps
    # the event, its check-ins and its figures with the partner that ran it.
    city_partner_id = ObjectIdField()
    budget_month = StringField()
    # The drop the event's seats are released through while it runs: registrations come
    # from it alone.
    drop_id = ObjectIdField()
    # More than 1: the free seats are kept in that many `EventSeats`, and `seats_left` stays
    # 0 (see `events.seats`); a seat given back to one last wrote `seat_freed_at`. Unset: 1.
    seat_buckets = IntField(min_value=1, max_value=64)
    seat_freed_at = DateTimeField()

    meta = {
        "collection": "events",
        "indexes": [
            ("status", "starts_at"),
            ("status", "city_code", "starts_at"),
            ("city_code", "status", "starts_at"),
            ("city_partner_id", "starts_at"),
        ],
    }


class Registration(Document):
    event_id = ObjectIdField(required=True)
    user_id = ObjectIdField(required=True)
    city_code = StringField(required=True)
    status = StringField(required=True, choices=REGISTRATION_STATUSES)
    waitlist_position = IntField()
    cancelled_by = StringField(choices=(BY_OWNER, BY_EVENT))
    checked_in_by = ObjectIdField()
    # The attendee was staff when checked in (no points): they rate nothing either, even
    # once their grant is revoked.
    staff_at_check_in = BooleanField()
    created_at = DateTimeField(default=utcnow)
    confirmed_at = DateTimeField()
    promoted_at = DateTimeField()
    cancelled_at = DateTimeField()
    attended_at = DateTimeField()
    # The drop entry that won the place (one registration per entry).
    drop_entry_id = ObjectIdField()
    # The bucket its seat came from, when the event's seats are split (`events.seats`).
    seat_bucket = IntField()

    meta = {
        "collection": "registrations",
        "indexes": [
            # One registration document per owner and event; re-registering after a
            # cancellation reuses it, so a concurrent double submit cannot make two.
            {"fields": ["event_id", "user_id"], "unique": True},
            ("event_id", "status", "waitlist_position"),
            ("event_id", "id"),
            ("user_id", "-id"),
        ],
    }


class EventSeats(Document):
    """One part of an event's free seats (`_id` is "<event id>:<bucket>"), claimed by
    concurrent registrations instead of the event's own document (`events.seats`)."""

    id = StringField(primary_key=True)
    event_id = ObjectIdField(required=True)
    bucket = IntField(required=True, min_value=0)
    seats_left = IntField(required=True, min_value=0)

    meta = {"collection": "event_seats", "indexes": [("event_id", "bucket")]}


# Owners rate an event they attended from its end until this long after.
FEEDBACK_WINDOW_DAYS = 7
# A score this low or lower opens a follow-up for the city's leaders.
LOW_SCORE = 2
# Open follow-ups older than this are overdue (listed for admins).
FOLLOW_UP_DUE_DAYS = 3
OPEN = "open"
CLOSED = "closed"


class EventFeedback(Document):
    event_id = ObjectIdField(required=True)
    user_id = ObjectIdField(required=True)
    city_code = StringField(required=True)
    city_partner_id = ObjectIdField()
    score = IntField(required=True, min_value=1, max_value=5)
    recommend = IntField(required=True, min_value=0, max_value=10)
    comment = StringField(max_length=2000)
    # The comment holds a listed sensitive word: kept, and withheld from its readers.
    comment_held = BooleanField(required=True, default=False)
    created_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "event_feedback",
        "indexes": [
            # Once per owner and event, however often it is sent.
            {"fields": ["event_id", "user_id"], "unique": True},
            ("event_id", "id"),
            ("city_partner_id", "created_at"),
        ],
    }


class FollowUp(Document):
    """A low score for the city's leaders to act on: one per feedback."""

    feedback_id = ObjectIdField(required=True, unique=True)
    event_id = ObjectIdField(required=True)
    user_id = ObjectIdField(required=True)
    city_code = StringField(required=True)
    city_partner_id = ObjectIdField()
    score = IntField(required=True)
    status = StringField(required=True, default=OPEN, choices=(OPEN, CLOSED))
    created_at = DateTimeField(default=utcnow)
    closed_at = DateTimeField()
    closed_by = ObjectIdField()
    note = StringField(max_length=2000)

    meta = {
        "collection": "follow_ups",
        "indexes": [
            ("city_code", "status", "created_at"),
            ("status", "created_at"),
            ("city_partner_id", "created_at"),
        ],
    }


class TicketKey(Document):
    """An Ed25519 key that signs tickets, belonging to a city partner (`city_partner_id`)
    or, in a city HQ runs, to HQ there (`city_partner_id` None). The private key is never
    stored: it is derived from the SECRET_KEY named by `secret_id` and the `kid`, so only
    the public key, which door devices verify with, sits in the database.

    A key signs until it is rotated; it verifies the tickets it signed until `verifies_until`
    (set once no process may still sign with it: the end of the last ticket it may have
    signed), or until it is retired by hand (a leaked device never leaks it; a leaked
    SECRET_KEY does)."""

    kid = StringField(required=True, unique=True)
    city_code = StringField(required=True)
    city_partner_id = ObjectIdField()
    public_key = StringField(required=True)  # base64 of the raw 32 bytes
    secret_id = StringField(required=True)
    created_at = DateTimeField(required=True, default=utcnow)
    rotated_at = DateTimeField()
    verifies_until = DateTimeField()
    retired_at = DateTimeField()

    meta = {
        "collection": "ticket_keys",
        "indexes": [("city_code", "city_partner_id", "-created_at")],
    }


# What became of a scan the door sent with a nonce.
SCAN_ATTENDED = "attended"  # this scan checked the owner in
SCAN_REPEATED = "repeated"  # online, of an owner already checked in: nothing new
SCAN_CONFLICT = "conflict"  # offline, and the server would have refused it
SCAN_OUTCOMES = (SCAN_ATTENDED, SCAN_REPEATED, SCAN_CONFLICT)


class CheckInScan(Document):
    """One scan sent with a nonce, kept so that the same nonce sent again changes nothing
    and answers what the first did; a scan made offline that the server would have refused
    is kept as a conflict (`reason`: the refusal's slug) for the event's leaders."""

    event_id = ObjectIdField(required=True)
    nonce = StringField(required=True, max_length=100)
    device_id = StringField(max_length=100)
    offline = BooleanField(default=False)
    scanned_at = DateTimeField(required=True)
    received_at = DateTimeField(required=True, default=utcnow)
    scanned_by = ObjectIdField(required=True)
    registration_id = ObjectIdField()
    user_id = ObjectIdField()
    outcome = StringField(required=True, choices=SCAN_OUTCOMES)
    reason = StringField()
    # The answer the first request got, given again to every later copy.
    status_code = IntField(required=True)

    meta = {
        "collection": "check_in_scans",
        "indexes": [
            {"fields": ["event_id", "nonce"], "unique": True},
            ("event_id", "outcome", "-received_at"),
        ],
    }
