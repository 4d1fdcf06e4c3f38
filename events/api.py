"""Local owner events over HTTP: thin views over `events.services`."""

from __future__ import annotations

from flask.views import MethodView

from app.auth import caller, login_required
from app.idempotency import KEY_PARAMETER, idempotent
from app.web import Blueprint, PageArgsSchema, page_of
from events import feedback, figures, registration, services, tickets
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
    MyRegistrationSchema,
    RegistrationListArgsSchema,
    RegistrationSchema,
    StatsArgsSchema,
    TicketSchema,
)

blp = Blueprint("events", __name__, description="Local owner events run by circle leaders")
blueprints = (blp,)
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


@blp.route("/events")
class Events(MethodView):
    decorators = [login_required]

    @blp.arguments(EventListArgsSchema, location="query")
    @blp.response(200, page_of(EventSchema))
    @blp.doc(security=BEARER)
    def get(self, args):
        """Published events, soonest first"""
        return services.list_events(
            args.get("city"), args.get("from_"), args.get("to"), args["cursor"], args["limit"]
        )

    @blp.arguments(EventCreateSchema)
    @blp.response(201, EventSchema)
    @blp.alt_response(403, description="Not a circle leader of `city_code`")
    @blp.doc(security=BEARER)
    def post(self, data):
        """Create a draft event (circle leader of the city, admin)"""
        return services.describe_event(services.create_event(caller(), **data))


@blp.route("/events/<event_id>")
class EventItem(MethodView):
    decorators = [login_required]

    @blp.response(200, EventSchema)
    @blp.doc(security=BEARER)
    def get(self, event_id):
        """One event with seats left, waitlist length and the caller's registration"""
        return services.event_details(caller(), event_id)

    @blp.arguments(EventUpdateSchema)
    @blp.response(200, EventSchema)
    @blp.alt_response(409, description="`capacity_below_confirmed`, `event_closed`")
    @blp.doc(security=BEARER)
    def patch(self, changes, event_id):
        """Edit an event (its city's circle leaders, admin)"""
        return services.describe_event(services.update_event(caller(), event_id, changes))


@blp.route("/events/<event_id>/publish")
class PublishEvent(MethodView):
    decorators = [login_required]

    @blp.response(200, EventSchema)
    @blp.alt_response(409, description="`not_draft`, `event_started`")
    @blp.doc(security=BEARER)
    def post(self, event_id):
        """Publish a draft (its city's circle leaders, admin)"""
        return services.describe_event(services.publish_event(caller(), event_id))


@blp.route("/events/<event_id>/cancel")
class CancelEvent(MethodView):
    decorators = [login_required]

    @blp.arguments(CancelEventSchema)
    @blp.response(200, EventSchema)
    @blp.alt_response(409, description="`event_closed`")
    @blp.doc(security=BEARER)
    def post(self, data, event_id):
        """Cancel an event; every registrant is notified"""
        return services.describe_event(services.cancel_event(caller(), event_id, data["reason"]))


@blp.route("/events/<event_id>/complete")
class CompleteEvent(MethodView):
    decorators = [login_required]

    @blp.response(200, EventSchema)
    @blp.alt_response(409, description="`not_published`, `event_not_started`")
    @blp.doc(security=BEARER)
    def post(self, event_id):
        """Complete an event; confirmed owners not checked in become no-shows"""
        return services.describe_event(services.complete_event(caller(), event_id))


@blp.route("/events/<event_id>/registrations")
class EventRegistrations(MethodView):
    decorators = [login_required]

    @idempotent
    @blp.response(201, RegistrationSchema)
    @blp.alt_response(403, description="`not_verified_owner`")
    @blp.alt_response(409, description="`already_registered`, `registration_closed`")
    @blp.doc(security=BEARER, parameters=[KEY_PARAMETER])
    def post(self, event_id):
        """Register: confirmed while seats are left, else waitlisted with a position"""
        return registration.register(caller(), event_id)

    @blp.arguments(RegistrationListArgsSchema, location="query")
    @blp.response(200, page_of(RegistrationSchema))
    @blp.doc(security=BEARER)
    def get(self, args, event_id):
        """Registrations of an event (its city's circle leaders, admin)"""
        return services.event_registrations(
            caller(), event_id, args.get("status"), args["cursor"], args["limit"]
        )


@blp.route("/events/<event_id>/registrations/me")
class MyEventRegistration(MethodView):
    decorators = [login_required]

    @blp.response(204)
    @blp.alt_response(409, description="`cancellation_closed`")
    @blp.doc(security=BEARER)
    def delete(self, event_id):
        """Cancel the caller's registration; the first waitlisted owner is promoted"""
        registration.cancel_registration(caller(), event_id)


@blp.route("/events/<event_id>/ticket")
class Ticket(MethodView):
    decorators = [login_required]

    @blp.response(200, TicketSchema)
    @blp.alt_response(409, description="`not_confirmed` (waitlisted)")
    @blp.doc(security=BEARER)
    def get(self, event_id):
        """The caller's signed ticket, for the QR code"""
        return tickets.issue_ticket(caller(), event_id)


@blp.route("/events/<event_id>/check-ins")
class CheckIns(MethodView):
    decorators = [login_required]

    @blp.arguments(CheckInSchema)
    @blp.response(201, RegistrationSchema)
    @blp.alt_response(200, schema=RegistrationSchema, description="Already checked in")
    @blp.alt_response(403, description="`self_check_in`: staff of the city also earn no points")
    @blp.alt_response(409, description="`check_in_closed` (before or long after the event)")
    @blp.alt_response(422, description="`invalid_ticket`")
    @blp.doc(security=BEARER)
    def post(self, data, event_id):
        """Check an owner in by ticket or user id (its city's circle leaders, admin)"""
        registration, checked_in = tickets.check_in(caller(), event_id, **data)
        return registration, 201 if checked_in else 200


@blp.route("/events/<event_id>/feedback")
class Feedback(MethodView):
    decorators = [login_required]

    @blp.arguments(FeedbackCreateSchema)
    @blp.response(201, FeedbackSchema)
    @blp.alt_response(403, description="`not_attended`")
    @blp.alt_response(409, description="`feedback_exists`, `feedback_closed`")
    @blp.doc(security=BEARER)
    def post(self, data, event_id):
        """Rate an event the caller attended, within 7 days after its end"""
        return feedback.give_feedback(caller(), event_id, **data)

    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, EventFeedbackSchema)
    @blp.doc(security=BEARER)
    def get(self, args, event_id):
        """An event's feedback and its averages (its leaders, admin)"""
        return feedback.event_feedback(caller(), event_id, args["cursor"], args["limit"])


@blp.route("/follow-ups")
class FollowUps(MethodView):
    decorators = [login_required]

    @blp.arguments(FollowUpArgsSchema, location="query")
    @blp.response(200, page_of(FollowUpSchema))
    @blp.doc(security=BEARER)
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
    decorators = [login_required]

    @blp.arguments(CloseFollowUpSchema)
    @blp.response(200, FollowUpSchema)
    @blp.alt_response(409, description="`follow_up_closed`")
    @blp.doc(security=BEARER)
    def post(self, data, follow_up_id):
        """Close a follow-up with a note on what was done (the city's leaders, admin)"""
        return feedback.close_follow_up(caller(), follow_up_id, data["note"])


@blp.route("/me/registrations")
class MyRegistrations(MethodView):
    decorators = [login_required]

    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, page_of(MyRegistrationSchema))
    @blp.doc(security=BEARER)
    def get(self, args):
        """The caller's registrations, newest first"""
        return services.my_registrations(caller().user, args["cursor"], args["limit"])


@blp.route("/cities/<code>/stats")
class CityStats(MethodView):
    decorators = [login_required]

    @blp.arguments(StatsArgsSchema, location="query")
    @blp.response(200, CityStatsSchema)
    @blp.doc(security=BEARER)
    def get(self, args, code):
        """Engagement figures of a city (its circle leaders, admin)"""
        return figures.city_stats(caller(), code, args.get("from_"), args.get("to"))
