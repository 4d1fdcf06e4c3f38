"""The domain events the events domain emits, with their payloads (app/outbox.py)."""

from __future__ import annotations

from dataclasses import dataclass

from app.outbox import declare


@dataclass(frozen=True)
class RegistrationCreated:
    user_id: str
    event_id: str
    status: str
    waitlist_position: int | None


@dataclass(frozen=True)
class RegistrationPromoted:
    user_id: str
    event_id: str
    # The position the owner held on the waitlist.
    waitlist_position: int | None


@dataclass(frozen=True)
class EventStatusChanged:
    title: str
    # Why a cancelled event was cancelled.
    cancel_reason: str | None = None


@dataclass(frozen=True)
class EventAttended:
    user_id: str
    event_id: str
    # What attending pays (0 for the event's own city partner staff).
    points_reward: int


@dataclass(frozen=True)
class FeedbackGiven:
    user_id: str
    event_id: str
    score: int
    recommend: int


REGISTRATION_CREATED = declare(
    "registration.created",
    RegistrationCreated,
    subject_type="registration",
    about="An owner registered for an event: confirmed, or waitlisted with a position.",
)
REGISTRATION_PROMOTED = declare(
    "registration.promoted",
    RegistrationPromoted,
    subject_type="registration",
    about="A seat freed up and the first waitlisted owner got it.",
)
EVENT_PUBLISHED = declare(
    "event.published",
    EventStatusChanged,
    subject_type="event",
    about="A circle leader opened an event to registrations.",
)
EVENT_CANCELLED = declare(
    "event.cancelled",
    EventStatusChanged,
    subject_type="event",
    about="An event was cancelled, and every open registration with it.",
)
EVENT_COMPLETED = declare(
    "event.completed",
    EventStatusChanged,
    subject_type="event",
    about="An event is over; its registrations are closed.",
)
EVENT_ATTENDED = declare(
    "event.attended",
    EventAttended,
    subject_type="registration",
    about="An owner was checked in at an event.",
)
EVENT_FEEDBACK_GIVEN = declare(
    "event.feedback_given",
    FeedbackGiven,
    subject_type="event_feedback",
    about="An owner rated an event they attended.",
)
# The event an event's new status records (`services._transition`).
STATUS_EVENTS = {
    "published": EVENT_PUBLISHED,
    "cancelled": EVENT_CANCELLED,
    "completed": EVENT_COMPLETED,
}
