"""The refusals of events, registrations, tickets and check-ins, in one place."""

from __future__ import annotations

from marshmallow import fields

from app.errors import Conflict, Forbidden, ValidationFailed


class NotVerifiedOwner(Forbidden):
    error = "not_verified_owner"
    message = "This event is for verified owners only."


class SelfCheckIn(Forbidden):
    error = "self_check_in"
    message = "Another organizer must check you in."


class AlreadyRegistered(Conflict):
    error = "already_registered"
    message = "You are already registered for this event."


class DropOnly(Conflict):
    """The event's seats are released through a drop while it runs (`drop_id` names
    it): enter the drop instead."""

    error = "drop_only"
    message = "This event's places are released through a drop: enter the drop instead."
    detail_fields = {"drop_id": fields.String(required=True)}


class NoSeatLeft(Conflict):
    """A drop's winner found no seat left (the event's capacity was lowered meanwhile):
    the place passes on, and nobody is waitlisted through a drop."""

    error = "no_seat_left"
    message = "No seat is left at this event."


class RegistrationClosed(Conflict):
    error = "registration_closed"
    message = "Registration for this event is closed."


class CancellationClosed(Conflict):
    error = "cancellation_closed"
    message = "This registration can no longer be cancelled."


class EventClosed(Conflict):
    error = "event_closed"
    message = "A cancelled or completed event cannot be changed."


class CapacityBelowConfirmed(Conflict):
    """Lowering capacity below the seats taken (`confirmed` says how many)."""

    error = "capacity_below_confirmed"
    message = "{confirmed} places are taken; capacity cannot go below that."
    detail_fields = {"confirmed": fields.Integer(required=True)}


class NotDraft(Conflict):
    error = "not_draft"
    message = "Only a draft can be published."


class EventStarted(Conflict):
    error = "event_started"
    message = "An event that has already started cannot be published."


class NotPublished(Conflict):
    error = "not_published"
    message = "Only a published event can be completed."


class EventNotStarted(Conflict):
    error = "event_not_started"
    message = "An event can be completed once it has started."


class NotConfirmed(Conflict):
    error = "not_confirmed"
    message = "This registration is not confirmed."


class CheckInClosed(Conflict):
    """Checking in outside the window from `opens_at` to `closes_at`."""

    error = "check_in_closed"
    message = "Check-in is open from shortly before the start until a while after the end."
    detail_fields = {
        "opens_at": fields.String(required=True, metadata={"format": "date-time"}),
        "closes_at": fields.String(required=True, metadata={"format": "date-time"}),
    }


class InvalidTimes(ValidationFailed):
    error = "invalid_times"
    message = "The event's times are not consistent."


class PointsRewardTooHigh(ValidationFailed):
    """An event's `points_reward` above the `max_points` admins set."""

    error = "points_reward_too_high"
    message = "An event may award at most {max_points} points."
    detail_fields = {"max_points": fields.Integer(required=True)}


class InvalidTicket(ValidationFailed):
    error = "invalid_ticket"
    message = "This ticket is not valid for this event."


class NotAttended(Forbidden):
    error = "not_attended"
    message = "Only owners who attended may rate an event."


class StaffFeedback(Forbidden):
    """Staff (circle leaders and ambassadors of any city, and admins), and whoever was staff
    when checked in, rate no event: the answers make a city partner's scorecard and earn
    points."""

    error = "staff_feedback"
    message = "Staff, and those checked in as staff, do not rate events."


class EventCancelled(Conflict):
    error = "event_cancelled"
    message = "A cancelled event takes no feedback."


class FeedbackExists(Conflict):
    error = "feedback_exists"
    message = "You already rated this event."


class FeedbackClosed(Conflict):
    """Feedback is open from the event's end for FEEDBACK_WINDOW_DAYS (its times say when)."""

    error = "feedback_closed"
    message = "Feedback is open from the event's end for a week."
    detail_fields = {
        "opens_at": fields.String(required=True, metadata={"format": "date-time"}),
        "closes_at": fields.String(required=True, metadata={"format": "date-time"}),
    }


class FollowUpClosed(Conflict):
    error = "follow_up_closed"
    message = "This follow-up is already closed."
