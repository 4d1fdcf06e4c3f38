"""Local owner events and their lifecycle: draft, published, cancelled, completed. A state
change and its domain event are written in one transaction, with whatever it does to the
event's registrations. How events are listed and shown: `events.listings`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import CIRCLE_LEADER, require_city
from app.auth import Caller
from app.clock import utcnow
from app.db import object_id, transaction
from app.errors import Conflict, ValidationFailed
from app.outbox import record_event
from app.screening import refuse_listed_words
from events import errors, seats
from events.access import managed_event
from events.domain_events import STATUS_EVENTS, EventStatusChanged
from events.listings import TIME_FIELDS, as_utc
from events.models import (
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
    seat_buckets: int = 1,
) -> Event:
    """A draft event in a city the caller leads (or any city, for an admin); its seats
    split in `seat_buckets` documents for a flagship event (`events.seats`)."""
    caller.require(city_code, CIRCLE_LEADER, hide=False)
    require_city(city_code)
    closes_at = registration_closes_at or starts_at
    _check_times(starts_at, ends_at, closes_at)
    _check_points_reward(points_reward)
    refuse_listed_words(title=title)
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
    if seat_buckets > 1:
        transaction(lambda session: seats.set_seats(session, event.pk, capacity, seat_buckets))
        event.reload()
    log.info("event_created", event_id=str(event.pk), city=city_code, by=caller.id)
    return event


def update_event(caller: Caller, event_id: str, changes: dict[str, Any]) -> Event:
    """Edit a draft or published event. Capacity moves `seats_left` by the same amount in
    one conditional update: it may not drop below the seats already taken, and a raise
    promotes waitlisted owners."""
    event = managed_event(caller, event_id)
    if event.status not in (DRAFT, PUBLISHED):
        raise errors.EventClosed(message=f"A {event.status} event cannot be changed.")
    changes = dict(changes)
    buckets = changes.pop("seat_buckets", None)
    split = (buckets or 1) > 1 or seats.bucket_count(event) > 1
    _check_times(*(changes.get(name, event[name]) for name in TIME_FIELDS))
    if "points_reward" in changes:
        _check_points_reward(changes["points_reward"])
    refuse_listed_words(title=changes.get("title"))
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
    if split and (delta or buckets):
        # Seats kept in buckets: the capacity and the split change together.
        if not _resize_split(event, delta, buckets or seats.bucket_count(event)):
            if wanted > held:
                budget.resize(event.pk, held)
            event.reload()
            raise errors.CapacityBelowConfirmed(confirmed=event.capacity - _free(event))
    elif delta:
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


def _resize_split(event: Event, delta: int, buckets: int) -> bool:
    """Move the capacity by `delta` and keep the free seats in `buckets` parts, in one
    transaction (concurrent registrations conflict with it and run again); False when the
    capacity would drop below the seats taken."""

    def unit(session: ClientSession) -> bool:
        found = seats.read_with_seats(session, event.pk)
        if found is None or found["capacity"] != event.capacity:
            return False
        free = found["free_seats"] + delta
        if free < 0:
            return False
        seats.set_seats(session, event.pk, free, buckets)
        Event._get_collection().update_one(
            {"_id": event.pk}, {"$inc": {"capacity": delta}}, session=session
        )
        return True

    return transaction(unit)


def _free(event: Event) -> int:
    return seats.live_seats([event]).get(event.pk, event.seats_left)


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
        # The payload carries the title and a cancellation's reason; the times are the
        # event's own `occurred_at`.
        record_event(
            session,
            STATUS_EVENTS[status],
            EventStatusChanged(event.title, changes.get("cancel_reason")),
            subject_id=event.pk,
            actor_id=caller.user.pk,
            city_code=event.city_code,
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
        {"cancel_reason": reason, "cancelled_at": now, "waitlisted": 0},
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
        {"completed_at": now, "waitlisted": 0},
        close_registrations,
    )
