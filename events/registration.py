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

import random
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import CIRCLE_LEADER
from app.auth import Caller
from app.buckets import turn
from app.clock import utcnow
from app.db import (
    KeptCopies,
    StaleCache,
    batch,
    caches_trusted,
    changes_in_one_transaction,
    decided_from,
    object_id,
    one_at_a_time,
    transaction,
)
from app.errors import NotFound
from app.observability import note
from app.outbox import record_event
from events import errors, seats
from events.access import seen_by, shown_to, visible_event
from events.domain_events import (
    REGISTRATION_CREATED,
    REGISTRATION_PROMOTED,
    RegistrationCreated,
    RegistrationPromoted,
)
from events.listings import OwnRegistration
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


@dataclass(frozen=True)
class ThroughDrop:
    """A place a drop allocated: the drop the event's seats are released through, and the
    entry that won it (one registration per entry, however often the drop's job runs)."""

    drop_id: ObjectId
    entry_id: ObjectId


@changes_in_one_transaction
def register(caller: Caller, event_id: str, *, drop: ThroughDrop | None = None) -> OwnRegistration:
    """Register the caller: confirmed while seats are left, else waitlisted (FCFS). An
    event released through a drop is registered for by its drop's job alone (`drop`), until
    its start, and a winner is seated or refused (`no_seat_left`), never waitlisted."""
    user = caller.user
    now = utcnow()
    event_oid = object_id(event_id)
    preferred = random.randrange(seats.MAX_BUCKETS)

    def unit(
        session: ClientSession, replacing: ObjectId | None, terms: dict[str, Any] | None
    ) -> OwnRegistration:
        copy = terms if caches_trusted() else None
        return decided_from(copy, partial(register_on, session, replacing, copy))

    def register_on(
        session: ClientSession, replacing: ObjectId | None, terms: dict[str, Any] | None
    ) -> OwnRegistration:
        found = terms
        if terms is None:
            found = seats.read_with_seats(session, event_oid) if event_oid else None
            _keep_terms(event_oid, found)
        event = seen_by(caller, found)
        assert found is not None
        if event.drop_id and (drop is None or drop.drop_id != event.drop_id):
            raise errors.DropOnly(drop_id=str(event.drop_id))
        # A drop's own window was the registration: its places are made once it closed.
        closes_at = event.starts_at if drop is not None else event.registration_closes_at
        if event.status != PUBLISHED or now >= closes_at:
            raise errors.RegistrationClosed()
        if event.verified_owners_only and not user.verified_owner:
            raise errors.NotVerifiedOwner()
        registrations = Registration._get_collection()
        writes = batch(session)
        # The snapshot decides; the conditions restate it for the invariant's sake.
        bucket = None
        if terms is not None:
            status, position = CONFIRMED, None
            seats.take_seat_on_terms(session, terms, StaleCache())
        elif found["free_seats"] > 0:
            status, position = CONFIRMED, None
            bucket = seats.take_seat(session, found, preferred, errors.RegistrationClosed())
        elif drop is not None:
            raise errors.NoSeatLeft()
        else:
            status, position = WAITLISTED, event.waitlist_seq + 1
            writes.update(
                Event._get_collection(),
                {
                    "_id": event.pk,
                    "status": PUBLISHED,
                    "seats_left": {"$lte": 0},
                    "waitlist_seq": event.waitlist_seq,
                },
                {"$inc": {"waitlist_seq": 1, "waitlisted": 1}},
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
        if drop is not None:
            registration["drop_entry_id"] = drop.entry_id
        if bucket is not None:
            registration["seat_bucket"] = bucket
        writes.insert(registrations, registration, duplicate=_Taken())
        record_event(
            session,
            REGISTRATION_CREATED,
            RegistrationCreated(str(user.pk), str(event.pk), status, position),
            subject_id=registration["_id"],
            actor_id=user.pk,
            city_code=event.city_code,
        )
        # Not decoded into a `Registration`: 4,493 -> 4,243 Python calls a keyed registration.
        return OwnRegistration.stored(registration)

    replacing: ObjectId | None = None
    terms = _terms_seen.get(event_oid) if event_oid and drop is None else None
    while True:
        try:
            with one_at_a_time(_turn(event_oid, preferred)):
                registration = transaction(
                    partial(unit, replacing=replacing, terms=terms),
                    answers_request=True,
                    reads_nothing=terms is not None,
                )
            break
        except _Taken:
            # One document per owner and event (the unique index). Rarely, a cancelled one:
            # the registration replaces it (looked up only then, to keep the usual path lean).
            mine = Registration._get_collection().find_one(
                {"user_id": user.pk, "event_id": object_id(event_id)}
            )
            if drop is not None and mine is not None and mine.get("drop_entry_id") == drop.entry_id:
                return OwnRegistration.stored(mine)  # the drop's job ran again
            if mine is not None and mine["status"] != CANCELLED:
                raise errors.AlreadyRegistered() from None
            replacing = mine["_id"] if mine is not None else None
    note(
        "registered",
        event_id=event_id,
        user_id=caller.id,
        status=registration.status,
        waitlist_position=registration.waitlist_position,
    )
    return registration


# Per event, as this process last read it: how many seat buckets, and whether every seat
# was taken (registrations are then waitlisted, on the event's document).
_seen: dict[ObjectId, tuple[int, bool]] = {}

# The terms of each event that keeps its seats on itself and had seats free, as this
# process last read them, so that a registration need not read it: its transaction is then
# the one command of its writes and the commit (`transaction(..., reads_nothing=True)`),
# one command of four. The seat's claim is conditioned on each term the decision used
# (`events.seats.take_seat_on_terms`): an edit made elsewhere, or the last seat gone, makes
# it match nothing, and the transaction runs again from a read (`app.db.StaleCache`),
# which waitlists when the event is full; a refusal decided from the copy is decided again
# from a read too. An event read with its last seat free is not copied: the next
# registration would find it full.
_terms_seen = KeptCopies()


def _keep_terms(event_id: ObjectId | None, found: dict[str, Any] | None) -> None:
    """Remember what a registration read of the event: its buckets, whether it was full, and
    its terms while more than one seat on itself was free."""
    if event_id is None:
        return
    _terms_seen.forget(event_id)
    if found is None:
        return
    _seen[event_id] = (seats.bucket_count(found), found["free_seats"] <= 0)
    if seats.bucket_count(found) == 1 and found["free_seats"] > 1:
        _terms_seen.keep(event_id, {name: found.get(name) for name in seats.TERMS})


def _turn(event_id: ObjectId | None, preferred: int) -> str:
    """What a process's registrations for the event take turns on: the event's document,
    unless its seats are split and some were free when last read (a bucket's)."""
    buckets, full = _seen.get(event_id, (1, True)) if event_id else (1, True)
    return turn(event_id, 1 if full else buckets, preferred)


def cancel_registration(caller: Caller, event_id: str) -> None:
    """The owner gives up their place; a seat goes to the first waitlisted owner at once."""
    now = utcnow()
    event_oid = object_id(event_id)

    def unit(session: ClientSession) -> str:
        found = seats.read_with_seats(session, event_oid) if event_oid else None
        event = shown_to(caller, found)
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
        passed = mine["status"] == CONFIRMED and _promote_first(
            session, event.pk, now, mine.get("seat_bucket")
        )
        if mine["status"] == WAITLISTED or passed:
            # Out of the line, or the seat passes to the first in it.
            writes.update(Event._get_collection(), {"_id": event.pk}, {"$inc": {"waitlisted": -1}})
        else:
            seats.give_back(
                session, event.pk, seats.bucket_count(event), mine.get("seat_bucket") or 0
            )
        return mine["status"]

    was = transaction(unit)
    log.info("registration_cancelled", event_id=event_id, user_id=caller.id, was=was)


def _promote_first(
    session: ClientSession, event_id: ObjectId, now: datetime, seat_bucket: int | None = None
) -> bool:
    """Queue the promotion of the first waitlisted owner, if anyone waits, to the seat of
    `seat_bucket` (when the event's seats are split); the caller moves the counters."""
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
        {
            "$set": {
                "status": CONFIRMED,
                "confirmed_at": now,
                "promoted_at": now,
                **({"seat_bucket": seat_bucket} if seat_bucket is not None else {}),
            }
        },
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
        event = seats.read_with_seats(session, event_id)
        if event is None or event["status"] != PUBLISHED or event["free_seats"] <= 0:
            return False
        if event["waitlisted"] == 0:
            return False
        bucket = seats.take_seat(session, event, 0, errors.RegistrationClosed())
        if not _promote_first(session, event_id, utcnow(), bucket):
            return False
        batch(session).update(
            Event._get_collection(), {"_id": event_id}, {"$inc": {"waitlisted": -1}}
        )
        return True

    promoted = 0
    while transaction(promote_one):
        promoted += 1
    if promoted:
        log.info("waitlist_promoted", event_id=str(event_id), promoted=promoted)
    return promoted


# --- drops: an event's seats released to many owners at once (the drops domain runs them)


@dataclass(frozen=True)
class EventTerms:
    """What a drop reads of the event whose seats it releases."""

    id: ObjectId
    title: str
    city_code: str
    status: str
    starts_at: datetime
    registration_closes_at: datetime
    seats_left: int
    verified_owners_only: bool
    drop_id: ObjectId | None


def event_terms(caller: Caller, event_id: str, session: ClientSession | None = None) -> EventTerms:
    """The event's terms, for a caller who manages it (its city's circle leaders, admins;
    404 for anyone else), in the caller's transaction."""
    event = visible_event(caller, event_id, session)
    caller.require(event.city_code, CIRCLE_LEADER)
    return EventTerms(
        id=event.pk,
        title=event.title,
        city_code=event.city_code,
        status=event.status,
        starts_at=event.starts_at,
        registration_closes_at=event.registration_closes_at,
        seats_left=seats.live_seats([event]).get(event.pk, event.seats_left),
        verified_owners_only=event.verified_owners_only,
        drop_id=event.drop_id,
    )


def reserve_for_drop(session: ClientSession, event_id: ObjectId, drop_id: ObjectId) -> bool:
    """Release the event's seats through the drop alone from now on (registrations answer
    409 `drop_only`), in the drop's transaction; False when it is not published or is in a
    drop already."""
    return bool(
        Event._get_collection()
        .update_one(
            {"_id": event_id, "status": PUBLISHED, "drop_id": None},
            {"$set": {"drop_id": drop_id}},
            session=session,
        )
        .matched_count
    )


def release_from_drop(event_id: ObjectId, drop_id: ObjectId) -> None:
    """The drop is decided: the seats it left are open to registration again."""
    Event._get_collection().update_one(
        {"_id": event_id, "drop_id": drop_id}, {"$unset": {"drop_id": ""}}
    )


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
