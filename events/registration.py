"""Registration for an event, with a first-come first-served waitlist.

Concurrency model. Three counters on the event document decide who gets a place and what
lists show: `seats_left` (capacity minus seated registrations), `waitlist_seq` (the last
waitlist position handed out) and `waitlisted` (how many wait). Every change of a
registration's status changes them in the same transaction, so they never drift and a crash
cannot leave a seat claimed without its registration. A registration is one transaction: the
event read in its snapshot, then one command carrying the claim, the registration, its
domain event and the request's Idempotency-Key record, then the commit. Registrations for
one event all write its document, so concurrent ones conflict and `with_transaction` runs
the later ones again with a fresh snapshot: a burst on one event queues on that document
(bench/registration.py measures it; docs/capacity.md says why bursts spread over events).

A confirmed owner who cancels hands the seat to the first waitlisted owner in the same
transaction; a capacity raise promotes one waitlisted owner per transaction
(`fill_from_waitlist`). So a seat never stays free while someone waits.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from app import compat
from app.auth import Caller
from app.clock import utcnow
from app.db import batch, changes_in_one_transaction, object_id, one_at_a_time, transaction
from app.errors import NotFound
from app.outbox import record_event
from events import errors
from events.access import visible_event
from events.domain_events import (
    REGISTRATION_CREATED,
    REGISTRATION_PROMOTED,
    RegistrationCreated,
    RegistrationPromoted,
)
from events.models import (
    BY_OWNER,
    CANCELLED,
    CONFIRMED,
    PUBLISHED,
    WAITLISTED,
    Event,
    Registration,
)

log = structlog.get_logger()


class _Taken(Exception):
    """The owner already has a registration document for the event (raised out of the
    transaction): active, or cancelled and to be replaced."""


@changes_in_one_transaction
def register(caller: Caller, event_id: str) -> Registration:
    """Register the caller: confirmed while seats are left, else waitlisted (FCFS)."""
    user = caller.user
    now = utcnow()

    def unit(session: ClientSession, replacing: ObjectId | None) -> Registration:
        event = visible_event(caller, event_id, session)
        if event.status != PUBLISHED or now >= event.registration_closes_at:
            raise errors.RegistrationClosed()
        if event.verified_owners_only and not user.verified_owner:
            raise errors.NotVerifiedOwner()
        events, registrations = Event._get_collection(), Registration._get_collection()
        writes = batch(session)
        # The snapshot decides; the conditions restate it for the invariant's sake.
        if event.seats_left > 0:
            status, position = CONFIRMED, None
            claim = {"seats_left": {"$gt": 0}}, {"$inc": {"seats_left": -1}}
        else:
            status, position = WAITLISTED, event.waitlist_seq + 1
            claim = (
                {"seats_left": {"$lte": 0}, "waitlist_seq": event.waitlist_seq},
                {"$inc": {"waitlist_seq": 1, "waitlisted": 1}},
            )
        writes.update(
            events,
            {"_id": event.pk, "status": PUBLISHED, **claim[0]},
            claim[1],
            refusal=errors.RegistrationClosed(),
        )
        if replacing is not None:
            writes.delete(registrations, {"_id": replacing, "status": CANCELLED})
        registration = {
            "_id": ObjectId(),
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
        writes.insert(registrations, registration, duplicate=_Taken())
        record_event(
            session,
            REGISTRATION_CREATED,
            RegistrationCreated(str(user.pk), str(event.pk), status, position),
            subject_id=registration["_id"],
            actor_id=user.pk,
            city_code=event.city_code,
        )
        return compat.from_son(Registration, registration)

    replacing: ObjectId | None = None
    while True:
        try:
            with one_at_a_time(event_id):
                registration = transaction(partial(unit, replacing=replacing), answers_request=True)
            break
        except _Taken:
            # One document per owner and event (the unique index). Rarely, a cancelled one:
            # the registration replaces it (looked up only then, to keep the usual path lean).
            mine = Registration._get_collection().find_one(
                {"user_id": user.pk, "event_id": object_id(event_id)}, {"status": 1}
            )
            if mine is not None and mine["status"] != CANCELLED:
                raise errors.AlreadyRegistered() from None
            replacing = mine["_id"] if mine is not None else None
    log.info(
        "registered",
        event_id=event_id,
        user_id=caller.id,
        status=registration.status,
        waitlist_position=registration.waitlist_position,
    )
    return registration


def cancel_registration(caller: Caller, event_id: str) -> None:
    """The owner gives up their place; a seat goes to the first waitlisted owner at once."""
    now = utcnow()

    def unit(session: ClientSession) -> str:
        event = visible_event(caller, event_id, session)
        if event.status != PUBLISHED or now >= event.starts_at:
            raise errors.CancellationClosed()
        registrations = Registration._get_collection()
        mine = registrations.find_one(
            {"event_id": event.pk, "user_id": caller.user.pk}, session=session
        )
        if mine is None or mine["status"] not in (CONFIRMED, WAITLISTED):
            raise NotFound(message="You are not registered for this event.")
        writes = batch(session)
        writes.update(
            registrations,
            {"_id": mine["_id"], "status": mine["status"]},
            {
                "$set": {"status": CANCELLED, "cancelled_by": BY_OWNER, "cancelled_at": now},
                "$unset": {"waitlist_position": ""},
            },
        )
        if mine["status"] == WAITLISTED:
            counters = {"waitlisted": -1}
        elif _promote_first(session, event.pk, now):
            counters = {"waitlisted": -1}  # the seat passes on
        else:
            counters = {"seats_left": 1}
        writes.update(Event._get_collection(), {"_id": event.pk}, {"$inc": counters})
        return mine["status"]

    was = transaction(unit)
    log.info("registration_cancelled", event_id=event_id, user_id=caller.id, was=was)


def _promote_first(session: ClientSession, event_id: ObjectId, now: datetime) -> bool:
    """Queue the promotion of the first waitlisted owner, if anyone waits; the caller moves
    the event's counters."""
    registrations = Registration._get_collection()
    first = next(
        registrations.find({"event_id": event_id, "status": WAITLISTED}, session=session)
        .sort("waitlist_position", 1)
        .limit(1),
        None,
    )
    if first is None:
        return False
    batch(session).update(
        registrations,
        {"_id": first["_id"], "status": WAITLISTED},
        {"$set": {"status": CONFIRMED, "confirmed_at": now, "promoted_at": now}},
    )
    record_event(
        session,
        REGISTRATION_PROMOTED,
        RegistrationPromoted(str(first["user_id"]), str(event_id), first.get("waitlist_position")),
        subject_id=first["_id"],
        city_code=first["city_code"],
    )
    return True


def fill_from_waitlist(event_id: ObjectId) -> int:
    """Give free seats to waitlisted owners, first come first served, one transaction each.
    Returns how many were promoted."""

    def promote_one(session: ClientSession) -> bool:
        events = Event._get_collection()
        event = events.find_one({"_id": event_id}, session=session)
        if event is None or event["status"] != PUBLISHED or event["seats_left"] <= 0:
            return False
        if event["waitlisted"] == 0 or not _promote_first(session, event_id, utcnow()):
            return False
        batch(session).update(
            events,
            {"_id": event_id, "seats_left": {"$gt": 0}},
            {"$inc": {"seats_left": -1, "waitlisted": -1}},
        )
        return True

    promoted = 0
    while transaction(promote_one):
        promoted += 1
    if promoted:
        log.info("waitlist_promoted", event_id=str(event_id), promoted=promoted)
    return promoted


# --- personal data ---------------------------------------------------------------------


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
