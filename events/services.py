"""Local owner events: lifecycle, registration with a waitlist, tickets, check-in, reminders
and city figures.

Concurrency model. Two counters on the event document decide who gets a place:
`seats_left` (capacity minus seated registrations) and `waitlist_seq` (the last waitlist
position handed out). Registrations claim from them with single-document conditional
updates (`seats_left > 0` → `$inc -1`), which the server serialises without aborts; a
multi-document transaction on that one hot document would make every concurrent
registration abort and retry (measured: 200 concurrent transactions took 17-28 s with
thousands of retries, single-document updates 0.8 s). Transactions are used where they are
cheap and needed: a state change together with its domain event (publish, cancel,
complete, promotion, check-in).

Every path that frees a seat or adds someone to the waitlist ends with
`fill_from_waitlist`, so a seat never stays free while someone waits, whatever the
interleaving of concurrent requests.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from bson import ObjectId
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from pymongo import ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from accounts.models import AMBASSADOR, CIRCLE_LEADER, DEFAULT_TIMEZONE, User
from accounts.services import city_timezones, member_counts, require_city
from app.auth import Caller, load_caller
from app.clock import utcnow
from app.db import get_or_404, object_id, transaction
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.outbox import record_event
from app.privacy import exporter
from app.web import paginate
from events.models import (
    ACTIVE,
    ATTENDED,
    BY_EVENT,
    BY_OWNER,
    CANCELLED,
    COMPLETED,
    CONFIRMED,
    DRAFT,
    NO_SHOW,
    PUBLISHED,
    SEATED,
    WAITLISTED,
    Event,
    Registration,
)
from loyalty.services import city_points_totals
from notifications.services import notify

log = structlog.get_logger()

TIME_FIELDS = ("starts_at", "ends_at", "registration_closes_at")
# A ticket stays valid a while after the event ends, for late check-ins by hand.
TICKET_GRACE = timedelta(hours=6)
# Check-in opens this long before the start (the doors open early) and closes with the
# tickets, TICKET_GRACE after the end.
CHECK_IN_OPENS = timedelta(hours=2)
_TICKET_SALT = "event-ticket"
# (template, sent when the start is at most this far away, ...and more than this far away)
REMINDERS = (
    ("event_reminder_24h", timedelta(hours=24), timedelta(hours=2)),
    ("event_reminder_2h", timedelta(hours=2), timedelta(0)),
)
DEFAULT_STATS_PERIOD = timedelta(days=30)


def _events():
    return Event._get_collection()


def _registrations():
    return Registration._get_collection()


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _already_registered() -> Conflict:
    return Conflict("already_registered", "You are already registered for this event.")


def _registration_closed() -> Conflict:
    return Conflict("registration_closed", "Registration for this event is closed.")


# --- reading ---------------------------------------------------------------------------


def managed_event(caller: Caller, event_id: str) -> Event:
    """An event the caller may manage: a circle leader of its city, or an admin. Others get
    404, so events of other cities do not reveal that they exist."""
    event = get_or_404(Event, event_id)
    caller.require(event.city_code, CIRCLE_LEADER)
    return event


def visible_event(caller: Caller, event_id: str) -> Event:
    """Drafts are visible only to those who manage them."""
    event = get_or_404(Event, event_id)
    if event.status == DRAFT:
        caller.require(event.city_code, CIRCLE_LEADER)
    return event


def city_zone(code: str, zones: dict[str, str] | None = None) -> str:
    """The city's time zone name (`zones` saves the lookup when describing many events)."""
    return (zones if zones is not None else city_timezones()).get(code, DEFAULT_TIMEZONE)


def waitlist_count(event_id: ObjectId) -> int:
    return Registration.objects(event_id=event_id, status=WAITLISTED).count()


def describe_event(
    event: Event, zones: dict[str, str] | None = None, user_id: ObjectId | None = None
) -> dict[str, Any]:
    """The event as the API shows it: schedule times in the city's time zone, free seats,
    the waitlist length and, for a caller, their own registration."""
    zone = city_zone(event.city_code, zones)
    document: dict[str, Any] = {name: getattr(event, name) for name in event._fields}
    for name in TIME_FIELDS:
        document[name] = event[name].astimezone(ZoneInfo(zone))
    document["timezone"] = zone
    document["waitlist_count"] = waitlist_count(event.pk)
    if user_id is not None:
        mine = Registration.objects(event_id=event.pk, user_id=user_id).first()
        document["my_registration"] = mine if mine and mine.status in ACTIVE else None
    return document


def event_details(caller: Caller, event_id: str) -> dict[str, Any]:
    return describe_event(visible_event(caller, event_id), user_id=caller.user.pk)


def list_events(
    city: str | None, start: datetime | None, end: datetime | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    """Published events, soonest first; upcoming ones unless `start` says otherwise."""
    query = Event.objects(status=PUBLISHED, starts_at__gte=_as_utc(start or utcnow()))
    if end is not None:
        query = query.filter(starts_at__lt=_as_utc(end))
    if city:
        query = query.filter(city_code=city)
    page = paginate(query, cursor, limit, order=("starts_at", "id"))
    zones = city_timezones()
    page["items"] = [describe_event(event, zones) for event in page["items"]]
    return page


def event_registrations(
    caller: Caller, event_id: str, status: str | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    event = managed_event(caller, event_id)
    query = Registration.objects(event_id=event.pk)
    if status:
        query = query.filter(status=status)
    return paginate(query, cursor, limit, order=("id",))


def my_registrations(user: User, cursor: str | None, limit: int) -> dict[str, Any]:
    page = paginate(Registration.objects(user_id=user.pk), cursor, limit)
    events = Event.objects(pk__in=[registration.event_id for registration in page["items"]])
    by_id = {event.pk: event for event in events}
    zones = city_timezones()
    page["items"] = [
        {
            **registration.to_mongo().to_dict(),
            "id": registration.pk,
            "event": describe_event(by_id[registration.event_id], zones),
        }
        for registration in page["items"]
        if registration.event_id in by_id
    ]
    return page


# --- lifecycle -------------------------------------------------------------------------


def _check_times(starts_at: datetime, ends_at: datetime, closes_at: datetime) -> None:
    errors = {}
    if ends_at <= starts_at:
        errors["ends_at"] = ["Must be after starts_at."]
    if closes_at > starts_at:
        errors["registration_closes_at"] = ["Must not be after starts_at."]
    if errors:
        raise ValidationFailed(
            "invalid_times", "The event's times are not consistent.", errors=errors
        )


def _club_id(value: str | None) -> ObjectId | None:
    if value is None:
        return None
    club_id = object_id(value)
    if club_id is None:
        raise ValidationFailed(errors={"club_id": ["Not a valid id."]})
    return club_id


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
    event = Event(
        city_code=city_code,
        club_id=_club_id(club_id),
        organizer_id=caller.user.pk,
        title=title.strip(),
        description=description,
        venue=venue.strip(),
        starts_at=_as_utc(starts_at),
        ends_at=_as_utc(ends_at),
        registration_closes_at=_as_utc(closes_at),
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
        raise Conflict("event_closed", f"A {event.status} event cannot be changed.")
    _check_times(*(changes.get(name, event[name]) for name in TIME_FIELDS))
    sets = {
        name: _as_utc(value) if name in TIME_FIELDS else value
        for name, value in changes.items()
        if name != "capacity"
    }
    if "club_id" in sets:
        sets["club_id"] = _club_id(sets["club_id"])
    query: dict[str, Any] = {"_id": event.pk, "status": {"$in": [DRAFT, PUBLISHED]}}
    update: dict[str, Any] = {"$set": sets} if sets else {}
    delta = changes.get("capacity", event.capacity) - event.capacity
    if delta:
        # Conditional on the capacity we computed the delta from: a concurrent edit makes
        # this one fail rather than apply a stale difference.
        query["capacity"] = event.capacity
        if delta < 0:
            query["seats_left"] = {"$gte": -delta}
        update["$inc"] = {"capacity": delta, "seats_left": delta}
    if update and _events().update_one(query, update).matched_count == 0:
        event.reload()
        if event.status not in (DRAFT, PUBLISHED):
            raise Conflict("event_closed", f"A {event.status} event cannot be changed.")
        seated = event.capacity - event.seats_left
        raise Conflict(
            "capacity_below_confirmed",
            f"{seated} places are taken; capacity cannot go below that.",
            confirmed=seated,
        )
    if delta > 0:
        fill_from_waitlist(event.pk)
    event.reload()
    log.info("event_updated", event_id=event_id, fields=sorted(changes), by=caller.id)
    return event


def _transition(
    caller: Caller,
    event: Event,
    allowed: tuple[str, ...],
    refusal: str,
    status: str,
    changes: dict[str, Any],
    cascade: Callable[[ClientSession], None] | None = None,
) -> Event:
    """Move the event to `status` with its domain event (`event.<status>`), and whatever
    `cascade` does to its registrations, in one transaction."""

    def unit(session: ClientSession) -> bool:
        moved = _events().update_one(
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
        raise Conflict(refusal, f"This event is {event.status}.")
    log.info("event_" + status, event_id=str(event.pk), by=caller.id)
    event.reload()
    return event


def publish_event(caller: Caller, event_id: str) -> Event:
    event = managed_event(caller, event_id)
    if event.status == DRAFT and event.starts_at <= utcnow():
        raise Conflict("event_started", "An event that has already started cannot be published.")
    return _transition(caller, event, (DRAFT,), "not_draft", PUBLISHED, {"published_at": utcnow()})


def cancel_event(caller: Caller, event_id: str, reason: str) -> Event:
    """Cancel the event and every open registration; the `event.cancelled` handler then
    notifies each registrant."""
    event = managed_event(caller, event_id)
    now = utcnow()

    def cancel_registrations(session: ClientSession) -> None:
        _registrations().update_many(
            {"event_id": event.pk, "status": {"$in": [CONFIRMED, WAITLISTED]}},
            {"$set": {"status": CANCELLED, "cancelled_by": BY_EVENT, "cancelled_at": now}},
            session=session,
        )

    return _transition(
        caller,
        event,
        (DRAFT, PUBLISHED),
        "event_closed",
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
        raise Conflict("event_not_started", "An event can be completed once it has started.")

    def close_registrations(session: ClientSession) -> None:
        registrations = _registrations()
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

    return _transition(
        caller,
        event,
        (PUBLISHED,),
        "not_published",
        COMPLETED,
        {"completed_at": now},
        close_registrations,
    )


# --- registration ----------------------------------------------------------------------
# Filters below name the exact fields of an index (or `_id`) and test the rest in Python:
# SecantusDB scans the whole collection for a filter with a field its index lacks, and for
# every findAndModify. The one findAndModify left hands out waitlist positions, on the
# events collection, which stays small next to registrations.


def _take_seat(event_id: ObjectId) -> bool:
    return (
        _events()
        .update_one(
            {"_id": event_id, "status": PUBLISHED, "seats_left": {"$gt": 0}},
            {"$inc": {"seats_left": -1}},
        )
        .modified_count
        == 1
    )


def _claim_place(event_id: ObjectId) -> tuple[str, int | None]:
    """A seat if one is free, else the next waitlist position; atomically either way."""
    events = _events()
    while True:
        if _take_seat(event_id):
            return CONFIRMED, None
        queued = events.find_one_and_update(
            {"_id": event_id, "status": PUBLISHED, "seats_left": {"$lte": 0}},
            {"$inc": {"waitlist_seq": 1}},
            projection={"waitlist_seq": 1},
            return_document=ReturnDocument.AFTER,
        )
        if queued:
            return WAITLISTED, queued["waitlist_seq"]
        if events.find_one({"_id": event_id, "status": PUBLISHED}, {"_id": 1}) is None:
            raise _registration_closed()
        # A seat came free between the two updates: go for it.


def _free_seat(event_id: ObjectId) -> None:
    _events().update_one({"_id": event_id}, {"$inc": {"seats_left": 1}})
    fill_from_waitlist(event_id)


def _registration_of(event_id: ObjectId, user_id: ObjectId) -> dict[str, Any] | None:
    return _registrations().find_one({"event_id": event_id, "user_id": user_id})


def _write_registration(existing: dict[str, Any] | None, fields: dict[str, Any]) -> bool:
    """Insert the registration, or reuse the owner's cancelled one. False when another
    request made it active first (the unique (event, owner) index, or the status check)."""
    registrations = _registrations()
    if existing is None:
        try:
            registrations.insert_one(fields)
        except DuplicateKeyError:
            return False
        return True
    return (
        registrations.update_one(
            {"_id": existing["_id"], "status": CANCELLED}, {"$set": fields}
        ).modified_count
        == 1
    )


def register(caller: Caller, event_id: str) -> Registration:
    """Register the caller: confirmed while seats are left, else waitlisted (FCFS)."""
    user = caller.user
    event = visible_event(caller, event_id)
    now = utcnow()
    if event.status != PUBLISHED or now >= event.registration_closes_at:
        raise _registration_closed()
    if event.verified_owners_only and not user.verified_owner:
        raise Forbidden("not_verified_owner", "This event is for verified owners only.")
    existing = _registration_of(event.pk, user.pk)
    if existing is not None and existing["status"] in ACTIVE:
        raise _already_registered()

    status, position = _claim_place(event.pk)
    fields = {
        "event_id": event.pk,
        "user_id": user.pk,
        "city_code": event.city_code,
        "status": status,
        "waitlist_position": position,
        "created_at": now,
        "confirmed_at": now if status == CONFIRMED else None,
        "cancelled_by": None,
        "cancelled_at": None,
        "promoted_at": None,
    }
    if not _write_registration(existing, fields):
        if status == CONFIRMED:
            _free_seat(event.pk)
        raise _already_registered()
    registration = Registration.objects.get(event_id=event.pk, user_id=user.pk)
    if _events().find_one({"_id": event.pk, "status": PUBLISHED}, {"_id": 1}) is None:
        # Cancelled while we claimed: the cancellation's sweep may have run before our
        # write, so undo it here.
        _registrations().update_one(
            {"_id": registration.pk, "status": status},
            {"$set": {"status": CANCELLED, "cancelled_by": BY_EVENT, "cancelled_at": utcnow()}},
        )
        raise _registration_closed()
    if status == WAITLISTED:
        fill_from_waitlist(event.pk)
    log.info(
        "registered",
        event_id=event_id,
        user_id=caller.id,
        status=status,
        waitlist_position=position,
    )
    return registration


def cancel_registration(caller: Caller, event_id: str) -> None:
    """The owner gives up their place; a freed seat goes to the first waitlisted owner."""
    event = visible_event(caller, event_id)
    if event.status != PUBLISHED or utcnow() >= event.starts_at:
        raise Conflict("cancellation_closed", "This registration can no longer be cancelled.")
    while True:
        previous = _registration_of(event.pk, caller.user.pk)
        if previous is None or previous["status"] not in (CONFIRMED, WAITLISTED):
            raise NotFound(message="You are not registered for this event.")
        # Conditional on the status we read: a promotion may turn waitlisted into
        # confirmed meanwhile, and then the seat must be freed.
        if (
            _registrations()
            .update_one(
                {"_id": previous["_id"], "status": previous["status"]},
                {
                    "$set": {
                        "status": CANCELLED,
                        "cancelled_by": BY_OWNER,
                        "cancelled_at": utcnow(),
                    },
                    "$unset": {"waitlist_position": ""},
                },
            )
            .modified_count
            == 1
        ):
            break
    if previous["status"] == CONFIRMED:
        _free_seat(event.pk)
    log.info("registration_cancelled", event_id=event_id, user_id=caller.id, was=previous["status"])


def _promote_first(session: ClientSession, event_id: ObjectId) -> dict[str, Any] | None:
    registrations = _registrations()
    first = next(
        registrations.find({"event_id": event_id, "status": WAITLISTED}, session=session)
        .sort("waitlist_position", 1)
        .limit(1),
        None,
    )
    if first is None:
        return None
    now = utcnow()
    # In the transaction's snapshot: a concurrent promotion of the same owner is a write
    # conflict, and the unit is retried with a fresh snapshot.
    registrations.update_one(
        {"_id": first["_id"], "status": WAITLISTED},
        {"$set": {"status": CONFIRMED, "confirmed_at": now, "promoted_at": now}},
        session=session,
    )
    record_event(
        session,
        "registration.promoted",
        subject_type="registration",
        subject_id=first["_id"],
        city_code=first["city_code"],
        payload={
            "user_id": str(first["user_id"]),
            "event_id": str(event_id),
            "waitlist_position": first.get("waitlist_position"),
        },
    )
    return first


def fill_from_waitlist(event_id: ObjectId) -> int:
    """Give free seats to waitlisted owners, first come first served. Returns how many
    were promoted."""
    promoted = 0
    while _take_seat(event_id):
        if transaction(lambda session: _promote_first(session, event_id)) is None:
            # Nobody waits: give the seat back. A registration waitlisted meanwhile runs
            # this function itself once its row is written, and takes the seat.
            _events().update_one({"_id": event_id}, {"$inc": {"seats_left": 1}})
            break
        promoted += 1
    if promoted:
        log.info("waitlist_promoted", event_id=str(event_id), promoted=promoted)
    return promoted


# --- tickets and check-in --------------------------------------------------------------


def _ticket_serializer() -> URLSafeSerializer:
    # itsdangerous signs with the last key and verifies with each: a key rotation keeps
    # issued tickets valid.
    keys = [current_app.config.get("SECRET_KEY_PREVIOUS"), current_app.config["SECRET_KEY"]]
    return URLSafeSerializer([key for key in keys if key], salt=_TICKET_SALT)


def ticket_token(event_id: Any, user_id: Any, expires_at: datetime) -> str:
    return _ticket_serializer().dumps(
        {"e": str(event_id), "u": str(user_id), "x": int(expires_at.timestamp())}
    )


def _invalid_ticket() -> ValidationFailed:
    return ValidationFailed("invalid_ticket", "This ticket is not valid for this event.")


def read_ticket(token: str, event_id: ObjectId) -> ObjectId:
    """The owner a ticket was issued to, if it is genuine, unexpired and for this event."""
    try:
        claims = _ticket_serializer().loads(token)
    except BadSignature:
        raise _invalid_ticket() from None
    if not isinstance(claims, dict) or claims.get("e") != str(event_id):
        raise _invalid_ticket()
    expiry = claims.get("x")
    owner_id = object_id(claims.get("u"))
    if not isinstance(expiry, int) or expiry < utcnow().timestamp() or owner_id is None:
        raise _invalid_ticket()
    return owner_id


def issue_ticket(caller: Caller, event_id: str) -> dict[str, Any]:
    """A signed ticket for a confirmed owner, valid until a while after the event ends."""
    event = visible_event(caller, event_id)
    registration = Registration.objects(event_id=event.pk, user_id=caller.user.pk).first()
    if registration is None or registration.status not in ACTIVE:
        raise NotFound(message="You are not registered for this event.")
    if registration.status == WAITLISTED:
        raise Conflict("not_confirmed", "Waitlisted registrations have no ticket yet.")
    expires_at = event.ends_at + TICKET_GRACE
    return {
        "token": ticket_token(event.pk, caller.user.pk, expires_at),
        "event_id": event.pk,
        "expires_at": expires_at,
    }


def check_in(
    caller: Caller, event_id: str, *, token: str | None = None, user_id: str | None = None
) -> tuple[Registration, bool]:
    """Mark a confirmed owner as attended, with `event.attended` in the same transaction.
    Returns the registration and whether this call checked them in (False on a replay).

    Staff cannot pay themselves: nobody checks themselves in (403 `self_check_in`), and
    staff of the event's city (its circle leaders and ambassadors, and admins) are checked
    in with no points, so two leaders cannot check each other in for the reward either.
    Check-in is open from CHECK_IN_OPENS before the start until the tickets expire
    (409 `check_in_closed` otherwise).
    """
    event = managed_event(caller, event_id)
    owner_id = read_ticket(token, event.pk) if token is not None else object_id(user_id)
    if owner_id == caller.user.pk:
        raise Forbidden("self_check_in", "Another organizer must check you in.")
    if event.status != PUBLISHED:
        raise Conflict("event_closed", f"Check-in is closed: the event is {event.status}.")
    registration = Registration.objects(event_id=event.pk, user_id=owner_id).first()
    if registration is None or registration.status == CANCELLED:
        raise NotFound(message="This owner is not registered for this event.")
    if registration.status == ATTENDED:
        return registration, False
    now = utcnow()
    opens_at, closes_at = event.starts_at - CHECK_IN_OPENS, event.ends_at + TICKET_GRACE
    if not opens_at <= now <= closes_at:
        raise Conflict(
            "check_in_closed",
            "Check-in is open from shortly before the start until a while after the end.",
            opens_at=opens_at.isoformat(),
            closes_at=closes_at.isoformat(),
        )
    if registration.status != CONFIRMED:
        raise Conflict("not_confirmed", f"This registration is {registration.status}.")
    attendee = load_caller(owner_id)
    staff = attendee is not None and attendee.acts_in(event.city_code, CIRCLE_LEADER, AMBASSADOR)

    def unit(session: ClientSession) -> bool:
        attended = _registrations().update_one(
            {"_id": registration.pk, "status": CONFIRMED},
            {
                "$set": {
                    "status": ATTENDED,
                    "attended_at": now,
                    "checked_in_by": caller.user.pk,
                }
            },
            session=session,
        )
        if attended.matched_count == 0:
            return False
        record_event(
            session,
            "event.attended",
            subject_type="registration",
            subject_id=registration.pk,
            actor_id=caller.user.pk,
            city_code=event.city_code,
            payload={
                "user_id": str(owner_id),
                "event_id": str(event.pk),
                "points_reward": 0 if staff else event.points_reward,
            },
        )
        return True

    checked_in = transaction(unit)
    registration.reload()
    if not checked_in and registration.status != ATTENDED:
        raise Conflict("not_confirmed", f"This registration is {registration.status}.")
    if checked_in:
        log.info("checked_in", event_id=event_id, user_id=str(owner_id), by=caller.id)
    return registration, checked_in


# --- notifications ---------------------------------------------------------------------


def _notice_params(event: dict[str, Any] | Event, zone: str) -> dict[str, Any]:
    local_start = event["starts_at"].astimezone(ZoneInfo(zone))
    return {
        "event_id": str(event["_id"] if isinstance(event, dict) else event.pk),
        "title": event["title"],
        "venue": event["venue"],
        "starts_at": local_start.strftime("%Y-%m-%d %H:%M (UTC%z)"),
    }


def notify_event_cancelled(session: ClientSession | None, event_id: str, cause: str) -> int:
    """Tell every owner whose registration the cancellation ended. `cause` (the domain
    event id) makes each message unique, so a redelivery sends nothing twice."""
    event = _events().find_one({"_id": ObjectId(event_id)}, session=session)
    if event is None:
        return 0
    params = {
        **_notice_params(event, city_zone(event["city_code"])),
        "reason": event.get("cancel_reason") or "",
    }
    sent = 0
    for registration in _registrations().find(
        {"event_id": event["_id"], "status": CANCELLED},
        {"user_id": 1, "cancelled_by": 1},
        session=session,
    ):
        if registration.get("cancelled_by") != BY_EVENT:
            continue  # left on their own before the cancellation
        sent += notify(
            session,
            registration["user_id"],
            "events",
            "event_cancelled",
            params,
            dedupe_key=f"{cause}:event_cancelled:{registration['user_id']}",
        )
    return sent


def notify_promoted(session: ClientSession | None, event_id: str, user_id: str, cause: str) -> bool:
    event = _events().find_one({"_id": ObjectId(event_id)}, session=session)
    if event is None:
        return False
    params = _notice_params(event, city_zone(event["city_code"]))
    return notify(
        session,
        user_id,
        "events",
        "registration_promoted",
        params,
        dedupe_key=f"{cause}:registration_promoted",
    )


def send_reminders(now: datetime | None = None) -> int:
    """Remind confirmed owners 24 hours and 2 hours before the start, once each: the
    notification's dedupe key names the registration and the reminder, so concurrent or
    repeated runs (two schedulers) cannot send one twice."""
    now = now or utcnow()
    zones = city_timezones()
    horizon = max(within for _, within, _ in REMINDERS)
    sent = 0
    for event in _events().find(
        {"status": PUBLISHED, "starts_at": {"$gt": now, "$lte": now + horizon}}
    ):
        left = event["starts_at"] - now
        template = next(name for name, within, beyond in REMINDERS if beyond < left <= within)
        params = _notice_params(event, city_zone(event["city_code"], zones))
        for registration in _registrations().find(
            {"event_id": event["_id"], "status": CONFIRMED}, {"user_id": 1}
        ):
            # A concurrent run may insert the same reminder first: it is sent once.
            with suppress(DuplicateKeyError):
                sent += notify(
                    None,
                    registration["user_id"],
                    "events",
                    template,
                    params,
                    dedupe_key=f"reminder:{registration['_id']}:{template}",
                )
    if sent:
        log.info("reminders_sent", count=sent)
    return sent


# --- city figures ----------------------------------------------------------------------


def city_stats(
    caller: Caller, code: str, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """Engagement figures of one city for [start, end): the city's leaders and admins only
    (404 for others, like every city-scoped thing). Every count is an aggregation or count
    on indexed fields."""
    caller.require(code, CIRCLE_LEADER)
    if code not in city_timezones():
        raise NotFound(message="City not found.")
    end = _as_utc(end or utcnow())
    start = _as_utc(start or end - DEFAULT_STATS_PERIOD)
    if start >= end:
        raise ValidationFailed(errors={"from": ["Must be before `to`."]})
    events = {
        row["_id"]: row
        for row in _events().aggregate(
            [
                {
                    "$match": {
                        "city_code": code,
                        "status": {"$in": [PUBLISHED, COMPLETED]},
                        "starts_at": {"$gte": start, "$lt": end},
                    }
                },
                {"$group": {"_id": "$status", "count": {"$sum": 1}, "ids": {"$push": "$_id"}}},
            ]
        )
    }
    event_ids = [event_id for row in events.values() for event_id in row["ids"]]
    by_status = {
        row["_id"]: row["count"]
        for row in _registrations().aggregate(
            [
                {"$match": {"event_id": {"$in": event_ids}, "status": {"$in": list(ACTIVE)}}},
                {"$group": {"_id": "$status", "count": {"$sum": 1}}},
            ]
        )
    }
    attended, no_show = by_status.get(ATTENDED, 0), by_status.get(NO_SHOW, 0)
    points = city_points_totals(code, start, end)
    return {
        "city_code": code,
        "from": start,
        "to": end,
        **member_counts(code, end),
        "events_held": events.get(COMPLETED, {}).get("count", 0),
        "events_scheduled": events.get(PUBLISHED, {}).get("count", 0),
        "registrations": sum(by_status.values()),
        "seated": sum(by_status.get(status, 0) for status in SEATED),
        "attended": attended,
        "no_show": no_show,
        "attendance_rate": round(attended / (attended + no_show), 4)
        if attended + no_show
        else None,
        "points_issued": points["issued"],
        "points_redeemed": points["redeemed"],
    }


# --- personal data ---------------------------------------------------------------------


@exporter("event_registrations")
def export_registrations(user_id: Any) -> list[dict[str, Any]]:
    return [
        {
            field: registration[field]
            for field in (
                "event_id",
                "status",
                "waitlist_position",
                "created_at",
                "confirmed_at",
                "cancelled_at",
                "attended_at",
            )
        }
        for registration in Registration.objects(user_id=object_id(user_id))
    ]
