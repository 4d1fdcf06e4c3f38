"""Registration for an event, with a first-come first-served waitlist.

Concurrency model. Two counters on the event document decide who gets a place:
`seats_left` (capacity minus seated registrations) and `waitlist_seq` (the last waitlist
position handed out). Registrations claim from them with single-document conditional
updates (`seats_left > 0` → `$inc -1`), which the server serialises without aborts; a
multi-document transaction on that one hot document would make every concurrent
registration abort and retry (measured: 200 concurrent transactions took 17-28 s with
thousands of retries, single-document updates 0.8 s). Transactions are used where they are
cheap and needed: a state change together with its domain event (a promotion here; publish,
cancel and complete in `events.services`, check-in in `events.tickets`).

Every path that frees a seat or adds someone to the waitlist ends with
`fill_from_waitlist`, so a seat never stays free while someone waits, whatever the
interleaving of concurrent requests.
"""

from __future__ import annotations

from typing import Any

import structlog
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from app.auth import Caller
from app.clock import utcnow
from app.db import object_id, transaction
from app.errors import NotFound
from app.outbox import record_event
from events import errors
from events.access import visible_event
from events.models import (
    ACTIVE,
    BY_EVENT,
    BY_OWNER,
    CANCELLED,
    CONFIRMED,
    PUBLISHED,
    WAITLISTED,
    Event,
    Registration,
)

log = structlog.get_logger()


# --- registration ----------------------------------------------------------------------
# Filters below name the exact fields of an index (or `_id`) and test the rest in Python:
# SecantusDB scans the whole collection for a filter with a field its index lacks, and for
# every findAndModify. The one findAndModify left hands out waitlist positions, on the
# events collection, which stays small next to registrations.


def _take_seat(event_id: ObjectId) -> bool:
    return (
        Event._get_collection()
        .update_one(
            {"_id": event_id, "status": PUBLISHED, "seats_left": {"$gt": 0}},
            {"$inc": {"seats_left": -1}},
        )
        .modified_count
        == 1
    )


def _claim_place(event_id: ObjectId) -> tuple[str, int | None]:
    """A seat if one is free, else the next waitlist position; atomically either way."""
    events = Event._get_collection()
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
            raise errors.RegistrationClosed()
        # A seat came free between the two updates: go for it.


def _free_seat(event_id: ObjectId) -> None:
    Event._get_collection().update_one({"_id": event_id}, {"$inc": {"seats_left": 1}})
    fill_from_waitlist(event_id)


def _registration_of(event_id: ObjectId, user_id: ObjectId) -> dict[str, Any] | None:
    return Registration._get_collection().find_one({"event_id": event_id, "user_id": user_id})


def _write_registration(existing: dict[str, Any] | None, fields: dict[str, Any]) -> bool:
    """Insert the registration, or reuse the owner's cancelled one. False when another
    request made it active first (the unique (event, owner) index, or the status check)."""
    registrations = Registration._get_collection()
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
        raise errors.RegistrationClosed()
    if event.verified_owners_only and not user.verified_owner:
        raise errors.NotVerifiedOwner()
    existing = _registration_of(event.pk, user.pk)
    if existing is not None and existing["status"] in ACTIVE:
        raise errors.AlreadyRegistered()

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
        raise errors.AlreadyRegistered()
    registration = Registration.objects.get(event_id=event.pk, user_id=user.pk)
    if Event._get_collection().find_one({"_id": event.pk, "status": PUBLISHED}, {"_id": 1}) is None:
        # Cancelled while we claimed: the cancellation's sweep may have run before our
        # write, so undo it here.
        Registration._get_collection().update_one(
            {"_id": registration.pk, "status": status},
            {"$set": {"status": CANCELLED, "cancelled_by": BY_EVENT, "cancelled_at": utcnow()}},
        )
        raise errors.RegistrationClosed()
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
        raise errors.CancellationClosed()
    while True:
        previous = _registration_of(event.pk, caller.user.pk)
        if previous is None or previous["status"] not in (CONFIRMED, WAITLISTED):
            raise NotFound(message="You are not registered for this event.")
        # Conditional on the status we read: a promotion may turn waitlisted into
        # confirmed meanwhile, and then the seat must be freed.
        if (
            Registration._get_collection()
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
    registrations = Registration._get_collection()
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
            Event._get_collection().update_one({"_id": event_id}, {"$inc": {"seats_left": 1}})
            break
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
