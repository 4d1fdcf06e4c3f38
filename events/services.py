"""Local owner events: reading them (times in the city's time zone, free seats, the
waitlist length) and their lifecycle: draft, published, cancelled, completed. A state change
and its domain event are written in one transaction, with whatever it does to the event's
registrations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import CIRCLE_LEADER, DEFAULT_TIMEZONE, Owner, city_timezones, require_city
from app.auth import Caller
from app.clock import utcnow
from app.db import object_id, transaction
from app.errors import Conflict, Forbidden, ValidationFailed
from app.outbox import record_event
from app.web import paginate
from events import errors
from events.access import managed_event, visible_event
from events.models import (
    ACTIVE,
    ATTENDED,
    BY_EVENT,
    CANCELLED,
    COMPLETED,
    CONFIRMED,
    DRAFT,
    NO_SHOW,
    PUBLISHED,
    WAITLISTED,
    Event,
    Registration,
)
from events.registration import fill_from_waitlist
from loyalty.rules import max_event_points
from partners import budget
from partners.services import active_partner

log = structlog.get_logger()


TIME_FIELDS = ("starts_at", "ends_at", "registration_closes_at")


def as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# --- reading ---------------------------------------------------------------------------


def city_zone(code: str, zones: dict[str, str] | None = None) -> str:
    """The city's time zone name (`zones` saves the lookup when describing many events)."""
    return (zones if zones is not None else city_timezones()).get(code, DEFAULT_TIMEZONE)


def waitlist_counts(event_ids: list[ObjectId]) -> dict[ObjectId, int]:
    """How many owners wait for each of the events (absent: none), in one aggregation."""
    rows = Registration._get_collection().aggregate(
        [
            {"$match": {"event_id": {"$in": event_ids}, "status": WAITLISTED}},
            {"$group": {"_id": "$event_id", "count": {"$sum": 1}}},
        ]
    )
    return {row["_id"]: row["count"] for row in rows}


def registrations_of(user_id: ObjectId, event_ids: list[ObjectId]) -> dict[ObjectId, Registration]:
    """The owner's registration for each of the events that has one, in one query."""
    found = Registration.objects(event_id__in=event_ids, user_id=user_id)
    return {registration.event_id: registration for registration in found}


def describe_events(events: list[Event], user_id: ObjectId | None = None) -> list[dict[str, Any]]:
    """Events as the API shows them: schedule times in the city's time zone, free seats, the
    waitlist length and, for a caller (`user_id`), their own registration. A page costs one
    time zone lookup, one waitlist aggregation and, for a caller, one read of their
    registrations, however many events it holds."""
    zones = city_timezones()
    waiting = waitlist_counts([event.pk for event in events])
    mine = registrations_of(user_id, [event.pk for event in events]) if user_id else {}
    documents = []
    for event in events:
        zone = city_zone(event.city_code, zones)
        document: dict[str, Any] = {name: getattr(event, name) for name in event._fields}
        for name in TIME_FIELDS:
            document[name] = event[name].astimezone(ZoneInfo(zone))
        document["timezone"] = zone
        document["waitlist_count"] = waiting.get(event.pk, 0)
        if user_id is not None:
            registration = mine.get(event.pk)
            active = registration is not None and registration.status in ACTIVE
            document["my_registration"] = registration if active else None
        documents.append(document)
    return documents


def describe_event(event: Event, user_id: ObjectId | None = None) -> dict[str, Any]:
    """One event as the API shows it (see `describe_events`) and, for a caller, their own
    registration."""
    [document] = describe_events([event], user_id)
    return document


def event_details(caller: Caller, event_id: str) -> dict[str, Any]:
    return describe_event(visible_event(caller, event_id), user_id=caller.user.pk)


def list_events(
    city: str | None,
    start: datetime | None,
    end: datetime | None,
    cursor: str | None,
    limit: int,
    user_id: ObjectId | None = None,
) -> dict[str, Any]:
    """Published events, soonest first; upcoming ones unless `start` says otherwise; each
    with `user_id`'s registration."""
    query = Event.objects(status=PUBLISHED, starts_at__gte=as_utc(start or utcnow()))
    if end is not None:
        query = query.filter(starts_at__lt=as_utc(end))
    if city:
        query = query.filter(city_code=city)
    page = paginate(query, cursor, limit, order=("starts_at", "id"))
    page["items"] = describe_events(page["items"], user_id)
    return page


def managed_events(
    caller: Caller, city: str | None, status: str | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    """Events of the cities the caller leads (admins: every city) in any status, drafts
    included, soonest first; 403 for someone who leads no city, or not `city`."""
    cities = caller.cities_for(CIRCLE_LEADER)
    if cities is not None and (not cities or (city and city not in cities)):
        raise Forbidden(message="Only the city's circle leaders and admins see its events.")
    query = Event.objects(city_code=city) if city else Event.objects()
    if cities is not None and not city:
        query = query.filter(city_code__in=sorted(cities))
    if status:
        query = query.filter(status=status)
    page = paginate(query, cursor, limit, order=("starts_at", "id"))
    page["items"] = describe_events(page["items"])
    return page


def event_registrations(
    caller: Caller, event_id: str, status: str | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    event = managed_event(caller, event_id)
    query = Registration.objects(event_id=event.pk)
    if status:
        query = query.filter(status=status)
    return paginate(query, cursor, limit, order=("id",))


def my_registrations(user: Owner, cursor: str | None, limit: int) -> dict[str, Any]:
    page = paginate(Registration.objects(user_id=user.pk), cursor, limit)
    events = Event.objects(pk__in=[registration.event_id for registration in page["items"]])
    by_id = {document["id"]: document for document in describe_events(list(events))}
    page["items"] = [
        {
            **registration.to_mongo().to_dict(),
            "id": registration.pk,
            "event": by_id[registration.event_id],
        }
        for registration in page["items"]
        if registration.event_id in by_id
    ]
    return page


# --- lifecycle -------------------------------------------------------------------------


def _check_times(starts_at: datetime, ends_at: datetime, closes_at: datetime) -> None:
    problems = {}
    if ends_at <= starts_at:
        problems["ends_at"] = ["Must be after starts_at."]
    if closes_at > starts_at:
        problems["registration_closes_at"] = ["Must not be after starts_at."]
    if problems:
        raise errors.InvalidTimes(errors=problems)


def _club_id(value: str | None) -> ObjectId | None:
    if value is None:
        return None
    club_id = object_id(value)
    if club_id is None:
        raise ValidationFailed(errors={"club_id": ["Not a valid id."]})
    return club_id


def _check_points_reward(points_reward: int) -> None:
    # A circle leader sets each event's points: bounded by admins, or a leader could mint
    # points for friends at will. The bound costs one read, on the writes that set points.
    maximum = max_event_points()
    if points_reward > maximum:
        raise errors.PointsRewardTooHigh(
            max_points=maximum, errors={"points_reward": [f"At most {maximum}."]}
        )


def create_event(
    caller: Caller,
    *,
    city_code: str,
    title: str,
    venue: str,
    starts_at: datetime,
    ends_at: datetime,
    capacity: int,
    registration_closes_at: datetime | None = None,
    description: str = "",
    points_reward: int = 100,
    verified_owners_only: bool = False,
    club_id: str | None = None,
) -> Event:
    """A draft event in a city the caller leads (or any city, for an admin)."""
    caller.require(city_code, CIRCLE_LEADER, hide=False)
    require_city(city_code)
    closes_at = registration_closes_at or starts_at
    _check_times(starts_at, ends_at, closes_at)
    _check_points_reward(points_reward)
    event = Event(
        city_code=city_code,
        club_id=_club_id(club_id),
        organizer_id=caller.user.pk,
        title=title.strip(),
        description=description,
        venue=venue.strip(),
        starts_at=as_utc(starts_at),
        ends_at=as_utc(ends_at),
        registration_closes_at=as_utc(closes_at),
        capacity=capacity,
        seats_left=capacity,
        points_reward=points_reward,
        verified_owners_only=verified_owners_only,
    )
    event.save(force_insert=True)
    log.info("event_created", event_id=str(event.pk), city=city_code, by=caller.id)
    return event


def update_event(caller: Caller, event_id: str, changes: dict[str, Any]) -> Event:
    """Edit a draft or published event. Capacity moves `seats_left` by the same amount in
    one conditional update: it may not drop below the seats already taken, and a raise
    promotes waitlisted owners."""
    event = managed_event(caller, event_id)
    if event.status not in (DRAFT, PUBLISHED):
        raise errors.EventClosed(message=f"A {event.status} event cannot be changed.")
    _check_times(*(changes.get(name, event[name]) for name in TIME_FIELDS))
    if "points_reward" in changes:
        _check_points_reward(changes["points_reward"])
    sets: dict[str, Any] = {
        name: as_utc(value) if name in TIME_FIELDS else value
        for name, value in changes.items()
        if name != "capacity"
    }
    if "club_id" in sets:
        sets["club_id"] = _club_id(sets["club_id"])
    query: dict[str, Any] = {"_id": event.pk, "status": {"$in": [DRAFT, PUBLISHED]}}
    update: dict[str, Any] = {"$set": sets} if sets else {}
    delta = changes.get("capacity", event.capacity) - event.capacity
    # A partner's published event keeps the reward of every seat not yet checked in
    # reserved: more is reserved before the change (409 `budget_exceeded` refuses it), and
    # what is no longer needed is released once the change is made.
    held = wanted = 0
    if event.status == PUBLISHED and event.city_partner_id is not None:
        attended = Registration.objects(event_id=event.pk, status=ATTENDED).count()
        held = max(event.capacity - attended, 0) * event.points_reward
        wanted = max(changes.get("capacity", event.capacity) - attended, 0) * changes.get(
            "points_reward", event.points_reward
        )
    if wanted > held:
        budget.resize(event.pk, wanted)
    if delta:
        # Conditional on the capacity we computed the delta from: a concurrent edit makes
        # this one fail rather than apply a stale difference.
        query["capacity"] = event.capacity
        if delta < 0:
            query["seats_left"] = {"$gte": -delta}
        update["$inc"] = {"capacity": delta, "seats_left": delta}
    if update and Event._get_collection().update_one(query, update).matched_count == 0:
        if wanted > held:
            budget.resize(event.pk, held)
        event.reload()
        if event.status not in (DRAFT, PUBLISHED):
            raise errors.EventClosed(message=f"A {event.status} event cannot be changed.")
        seated = event.capacity - event.seats_left
        raise errors.CapacityBelowConfirmed(confirmed=seated)
    if wanted < held:
        budget.resize(event.pk, wanted)
    if delta > 0:
        fill_from_waitlist(event.pk)
    event.reload()
    log.info("event_updated", event_id=event_id, fields=sorted(changes), by=caller.id)
    return event


def _transition(
    caller: Caller,
    event: Event,
    allowed: tuple[str, ...],
    refusal: type[Conflict],
    status: str,
    changes: dict[str, Any],
    cascade: Callable[[ClientSession], None] | None = None,
) -> Event:
    """Move the event to `status` with its domain event (`event.<status>`), and whatever
    `cascade` does to its registrations, in one transaction."""

    def unit(session: ClientSession) -> bool:
        moved = Event._get_collection().update_one(
            {"_id": event.pk, "status": {"$in": list(allowed)}},
            {"$set": {"status": status, **changes}},
            session=session,
        )
        if moved.matched_count == 0:
            return False
        if cascade is not None:
            cascade(session)
        # The payload carries the title and the text changes (a cancellation's reason);
        # the times are the event's own `occurred_at`.
        record_event(
            session,
            f"event.{status}",
            subject_type="event",
            subject_id=event.pk,
            actor_id=caller.user.pk,
            city_code=event.city_code,
            payload={
                "title": event.title,
                **{k: v for k, v in changes.items() if isinstance(v, str)},
            },
        )
        return True

    if not transaction(unit):
        event.reload()
        raise refusal(message=f"This event is {event.status}.")
    log.info("event_" + status, event_id=str(event.pk), by=caller.id)
    event.reload()
    return event


def publish_event(caller: Caller, event_id: str) -> Event:
    """Publish a draft. In a city run by a partner, the event is the partner's and reserves
    capacity x reward of its budget for the month it starts in (409 `budget_exceeded`)."""
    event = managed_event(caller, event_id)
    now = utcnow()
    if event.status == DRAFT and event.starts_at <= now:
        raise errors.EventStarted()
    changes: dict[str, Any] = {"published_at": now}
    reserve = None
    partner = active_partner(event.city_code, now)
    if partner is not None:
        month = budget.month_of(event.starts_at, event.city_code)
        changes.update(city_partner_id=partner["_id"], budget_month=month)

        def reserve(session: ClientSession) -> None:
            points = event.capacity * event.points_reward
            budget.reserve(session, partner["_id"], month, event.pk, points)

    return _transition(caller, event, (DRAFT,), errors.NotDraft, PUBLISHED, changes, reserve)


def cancel_event(caller: Caller, event_id: str, reason: str) -> Event:
    """Cancel the event and every open registration; the `event.cancelled` handler then
    notifies each registrant."""
    event = managed_event(caller, event_id)
    now = utcnow()

    def cancel_registrations(session: ClientSession) -> None:
        Registration._get_collection().update_many(
            {"event_id": event.pk, "status": {"$in": [CONFIRMED, WAITLISTED]}},
            {"$set": {"status": CANCELLED, "cancelled_by": BY_EVENT, "cancelled_at": now}},
            session=session,
        )
        if event.city_partner_id is not None:
            budget.release_rest(session, event.pk)

    return _transition(
        caller,
        event,
        (DRAFT, PUBLISHED),
        errors.EventClosed,
        CANCELLED,
        {"cancel_reason": reason, "cancelled_at": now},
        cancel_registrations,
    )


def complete_event(caller: Caller, event_id: str) -> Event:
    """Close a started event: confirmed owners who never checked in become no-shows, and
    those still waiting lose their place."""
    event = managed_event(caller, event_id)
    now = utcnow()
    if event.status == PUBLISHED and event.starts_at > now:
        raise errors.EventNotStarted()

    def close_registrations(session: ClientSession) -> None:
        registrations = Registration._get_collection()
        registrations.update_many(
            {"event_id": event.pk, "status": CONFIRMED},
            {"$set": {"status": NO_SHOW}},
            session=session,
        )
        registrations.update_many(
            {"event_id": event.pk, "status": WAITLISTED},
            {"$set": {"status": CANCELLED, "cancelled_by": BY_EVENT, "cancelled_at": now}},
            session=session,
        )
        if event.city_partner_id is not None:
            budget.release_rest(session, event.pk)

    return _transition(
        caller,
        event,
        (PUBLISHED,),
        errors.NotPublished,
        COMPLETED,
        {"completed_at": now},
        close_registrations,
    )
