"""Local owner events over HTTP: thin views over `events.services` and `events.listings`."""

from __future__ import annotations

from flask.views import MethodView

from accounts.errors import UnknownCity
from app.auth import caller
from app.errors import ContainsSensitiveWord, Forbidden
from app.idempotency import idempotent
from app.web import Blueprint, PageArgsSchema, page_of
from events import errors, feedback, figures, listings, registration, services, tickets
from events.schemas import (
    CancelEventSchema,
    CheckInSchema,
    CityStatsSchema,
    CloseFollowUpSchema,
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
    @blp.response(200, page_of(EventSchema))
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
        """Create a draft event (circle leader of the city, admin)"""
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
        """Edit an event (its city's circle leaders, admin)"""
        return listings.describe_event(services.update_event(caller(), event_id, changes))


@blp.route("/events/<event_id>/publish")
class PublishEvent(MethodView):
    @blp.response(200, EventSchema)
    @blp.refuses(errors.NotDraft, errors.EventStarted, BudgetExceeded)
    def post(self, event_id):
        """Publish a draft (its city's circle leaders, admin)"""
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
    @idempotent(changes_in_transaction=True)  # `register` changes all in one transaction
    @blp.response(201, RegistrationSchema)
    @blp.refuses(
        errors.NotVerifiedOwner,
        errors.AlreadyRegistered,
        errors.RegistrationClosed,
        errors.DropOnly,
    )
    def post(self, event_id):
        """Register: confirmed while seats are left, else waitlisted with a position"""
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
        """Cancel the caller's registration; the first waitlisted owner is promoted"""
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
    @blp.arguments(CheckInSchema)
    @blp.response(201, RegistrationSchema)
    @blp.alt_response(200, schema=RegistrationSchema, description="Already checked in")
    @blp.refuses(
        errors.SelfCheckIn,
        errors.EventClosed,
        errors.CheckInClosed,
        errors.NotConfirmed,
        errors.InvalidTicket,
        BudgetExceeded,
    )
    def post(self, data, event_id):
        """Check an owner in by ticket or user id (its city's circle leaders, admin)"""
        registration, checked_in = tickets.check_in(caller(), event_id, **data)
        return registration, 201 if checked_in else 200


@blp.route("/events/<event_id>/feedback")
class Feedback(MethodView):
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
        """Rate an event the caller attended, within 7 days after its end"""
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
        return figures.city_stats(caller(), code, args.get("from_"), args.get("to"))
