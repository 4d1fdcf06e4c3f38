"""Local owner events over HTTP: thin views over `events.services` and `events.listings`."""

from __future__ import annotations

from flask import Response, jsonify
from flask.views import MethodView

from accounts.errors import UnknownCity
from accounts.services import CIRCLE_LEADER
from app.auth import caller
from app.errors import ContainsSensitiveWord, Forbidden
from app.idempotency import idempotent
from app.web import Blueprint, PageArgsSchema, page_of
from events import city_stats, door, errors, feedback, listings, registration, services, tickets
from events.schemas import (
    CancelEventSchema,
    CheckInConflictSchema,
    CheckInSchema,
    CityStatsSchema,
    CloseFollowUpSchema,
    DoorKitSchema,
    EventCreateSchema,
    EventFeedbackSchema,
    EventListArgsSchema,
    EventSchema,
    EventUpdateSchema,
    FeedbackCreateSchema,
    FeedbackSchema,
    FollowUpArgsSchema,
    FollowUpSchema,
    ManagedEventListArgsSchema,
    MyRegistrationSchema,
    RegistrationListArgsSchema,
    RegistrationSchema,
    StatsArgsSchema,
    TicketSchema,
)
from partners.errors import BudgetExceeded

blp = Blueprint("events", __name__, description="Local owner events run by circle leaders")
blueprints = (blp,)


@blp.route("/events")
class Events(MethodView):
    @blp.arguments(EventListArgsSchema, location="query")
    @blp.response(200, page_of(EventSchema), lean=True)
    def get(self, args):
        """Published events, soonest first, each with the caller's registration"""
        return listings.list_events(
            args.get("city"),
            args.get("from_"),
            args.get("to"),
            args["cursor"],
            args["limit"],
            user_id=caller().user.pk,
        )

    @idempotent
    @blp.arguments(EventCreateSchema)
    @blp.response(201, EventSchema)
    @blp.refuses(
        Forbidden,
        UnknownCity,
        errors.InvalidTimes,
        errors.PointsRewardTooHigh,
        ContainsSensitiveWord,
    )
    def post(self, data):
        """Create a draft event (circle leader of the city, admin)

        Times carry an offset and run from a day ago to five years ahead, in order:
        registration closes no later than the start, which is before the end (422
        `invalid_times`). `points_reward` is at most the `event.attended` earning rule's
        `max_points` (422 `points_reward_too_high`). A leader creates events in their own
        cities only (403).
        """
        return listings.describe_event(services.create_event(caller(), **data))


@blp.route("/events/managed")
class ManagedEvents(MethodView):
    @blp.arguments(ManagedEventListArgsSchema, location="query")
    @blp.response(200, page_of(EventSchema))
    @blp.refuses(Forbidden)
    def get(self, args):
        """Events of the caller's cities in any status, soonest first (circle leaders, admin)"""
        return listings.managed_events(
            caller(), args.get("city"), args.get("status"), args["cursor"], args["limit"]
        )


@blp.route("/events/<event_id>")
class EventItem(MethodView):
    @blp.response(200, EventSchema)
    def get(self, event_id):
        """One event with seats left, waitlist length and the caller's registration"""
        return listings.event_details(caller(), event_id)

    @blp.arguments(EventUpdateSchema)
    @blp.response(200, EventSchema)
    @blp.refuses(
        errors.CapacityBelowConfirmed,
        errors.EventClosed,
        errors.InvalidTimes,
        errors.PointsRewardTooHigh,
        BudgetExceeded,
        ContainsSensitiveWord,
    )
    def patch(self, changes, event_id):
        """Edit an event (its city's circle leaders, admin)

        Capacity may not drop below the seats taken (409 `capacity_below_confirmed`). For a
        city partner's published event, raising capacity or reward reserves more of its
        month's budget (409 `budget_exceeded`), lowering releases.
        """
        return listings.describe_event(services.update_event(caller(), event_id, changes))


@blp.route("/events/<event_id>/publish")
class PublishEvent(MethodView):
    @blp.response(200, EventSchema)
    @blp.refuses(errors.NotDraft, errors.EventStarted, BudgetExceeded)
    def post(self, event_id):
        """Publish a draft (its city's circle leaders, admin)

        Before its start only (409 `event_started`). A city partner's event reserves
        `capacity x points_reward` of the partner's budget for the month it starts in (409
        `budget_exceeded` when less is left).
        """
        return listings.describe_event(services.publish_event(caller(), event_id))


@blp.route("/events/<event_id>/cancel")
class CancelEvent(MethodView):
    @blp.arguments(CancelEventSchema)
    @blp.response(200, EventSchema)
    @blp.refuses(errors.EventClosed)
    def post(self, data, event_id):
        """Cancel an event; every registrant is notified"""
        return listings.describe_event(services.cancel_event(caller(), event_id, data["reason"]))


@blp.route("/events/<event_id>/complete")
class CompleteEvent(MethodView):
    @blp.response(200, EventSchema)
    @blp.refuses(errors.NotPublished, errors.EventNotStarted)
    def post(self, event_id):
        """Complete an event; confirmed owners not checked in become no-shows"""
        return listings.describe_event(services.complete_event(caller(), event_id))


@blp.route("/events/<event_id>/registrations")
class EventRegistrations(MethodView):
    @idempotent(service=registration.register)
    @blp.response(201, RegistrationSchema, lean=True)
    @blp.refuses(
        errors.NotVerifiedOwner,
        errors.AlreadyRegistered,
        errors.RegistrationClosed,
        errors.DropOnly,
    )
    def post(self, event_id):
        """Register: confirmed while seats are left, else waitlisted with a position

        Open while the event is published and before `registration_closes_at` (409
        `registration_closed`); once per owner (409 `already_registered`). A
        verified-owners-only event refuses other owners (403 `not_verified_owner`). A full
        event waitlists in order of arrival; a freed seat goes to the first waitlisted
        owner.
        """
        return registration.register(caller(), event_id)

    @blp.arguments(RegistrationListArgsSchema, location="query")
    @blp.response(200, page_of(RegistrationSchema))
    def get(self, args, event_id):
        """Registrations of an event (its city's circle leaders, admin)"""
        return listings.event_registrations(
            caller(), event_id, args.get("status"), args["cursor"], args["limit"]
        )


@blp.route("/events/<event_id>/registrations/me")
class MyEventRegistration(MethodView):
    @blp.response(204)
    @blp.refuses(errors.CancellationClosed)
    def delete(self, event_id):
        """Cancel the caller's registration; the first waitlisted owner is promoted

        Until the event starts, while it is published (409 `cancellation_closed`
        afterwards).
        """
        registration.cancel_registration(caller(), event_id)


@blp.route("/events/<event_id>/ticket")
class Ticket(MethodView):
    @blp.response(200, TicketSchema)
    @blp.refuses(errors.NotConfirmed)
    def get(self, event_id):
        """The caller's signed ticket, for the QR code"""
        return tickets.issue_ticket(caller(), event_id)


@blp.route("/events/<event_id>/check-ins")
class CheckIns(MethodView):
    @idempotent
    @blp.arguments(CheckInSchema)
    @blp.response(201, RegistrationSchema)
    @blp.alt_response(200, schema=RegistrationSchema, description="Already checked in")
    @blp.alt_response(
        202, schema=CheckInConflictSchema, description="An offline scan kept as a conflict"
    )
    @blp.refuses(
        Forbidden,
        errors.SelfCheckIn,
        errors.EventClosed,
        errors.CheckInClosed,
        errors.NotConfirmed,
        errors.InvalidTicket,
        BudgetExceeded,
    )
    def post(self, data, event_id):
        """Check an owner in by ticket or user id, online or from an offline scan (its city's
        circle leaders, admin)

        Open from 2 hours before the start until 6 hours after the end, in the city's time
        (409 `check_in_closed`, with the window). Checking oneself in is refused (403
        `self_check_in`); staff are checked in without points. A second check-in of the same
        owner answers 200 and changes nothing. An owner holding no circle leader role is
        refused 403; another city's event is not found (404).
        """
        caller().require_role(CIRCLE_LEADER)
        scan = tickets.Scan.taken_from(data)
        result = tickets.check_in(caller(), event_id, scan=scan, **data)
        if result.status_code == tickets.KEPT_AS_CONFLICT:
            return conflict_response(result)
        return result.registration, result.status_code


def conflict_response(result: tickets.CheckIn) -> Response:
    """The 202 answer of a scan kept as a conflict (its own schema, not the view's)."""
    response = jsonify(CheckInConflictSchema().dump(result.scan))
    response.status_code = tickets.KEPT_AS_CONFLICT
    return response


@blp.route("/events/<event_id>/check-in-conflicts")
class CheckInConflicts(MethodView):
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, page_of(CheckInConflictSchema))
    def get(self, args, event_id):
        """Offline scans the server would have refused, newest first (its leaders, admin)"""
        return door.check_in_conflicts(caller(), event_id, args["cursor"], args["limit"])


@blp.route("/events/<event_id>/door-kit")
class DoorKit(MethodView):
    @blp.response(200, DoorKitSchema)
    def get(self, event_id):
        """What a door device keeps to check tickets offline: keys, attendees, revoked
        tickets (its city's circle leaders, admin)"""
        return door.door_kit(caller(), event_id)


@blp.route("/events/<event_id>/feedback")
class Feedback(MethodView):
    @idempotent
    @blp.arguments(FeedbackCreateSchema)
    @blp.response(201, FeedbackSchema)
    @blp.refuses(
        errors.StaffFeedback,
        errors.NotAttended,
        errors.FeedbackExists,
        errors.FeedbackClosed,
        errors.EventCancelled,
    )
    def post(self, data, event_id):
        """Rate an event the caller attended, within 7 days after its end

        Once per owner and event (409 `feedback_exists`), from the end for 7 days (409
        `feedback_closed`, with the window in the city's time), by owners who attended (403
        `not_attended`). The city's staff do not rate its events (403 `staff_feedback`). A
        score of 1 or 2 opens a follow-up for the city's leaders.
        """
        return feedback.give_feedback(caller(), event_id, **data)

    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, EventFeedbackSchema)
    def get(self, args, event_id):
        """An event's feedback and its averages (its leaders, admin)"""
        return feedback.event_feedback(caller(), event_id, args["cursor"], args["limit"])


@blp.route("/follow-ups")
class FollowUps(MethodView):
    @blp.arguments(FollowUpArgsSchema, location="query")
    @blp.response(200, page_of(FollowUpSchema))
    @blp.refuses(Forbidden)
    def get(self, args):
        """Low scores to act on, newest first (the city's leaders, admin)"""
        return feedback.follow_ups(
            caller(),
            args.get("city"),
            args.get("status"),
            args["overdue"],
            args["cursor"],
            args["limit"],
        )


@blp.route("/follow-ups/<follow_up_id>/close")
class CloseFollowUp(MethodView):
    @blp.arguments(CloseFollowUpSchema)
    @blp.response(200, FollowUpSchema)
    @blp.refuses(errors.FollowUpClosed)
    def post(self, data, follow_up_id):
        """Close a follow-up with a note on what was done (the city's leaders, admin)"""
        return feedback.close_follow_up(caller(), follow_up_id, data["note"])


@blp.route("/me/registrations")
class MyRegistrations(MethodView):
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, page_of(MyRegistrationSchema))
    def get(self, args):
        """The caller's registrations, newest first"""
        return listings.my_registrations(caller().user, args["cursor"], args["limit"])


@blp.route("/cities/<code>/stats")
class CityStats(MethodView):
    @blp.arguments(StatsArgsSchema, location="query")
    @blp.response(200, CityStatsSchema)
    def get(self, args, code):
        """Engagement figures of a city (its circle leaders, admin)"""
        return city_stats.city_stats(caller(), code, args.get("from_"), args.get("to"))
