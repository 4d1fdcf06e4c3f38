"""An event's free seats, on the event or split into buckets.

An event keeps its free seats in `seats_left`, which every registration writes in its
transaction: a flagship event opened to everyone at once queues on that one document. An
event created or changed with `seat_buckets` > 1 keeps them in that many `event_seats`
documents instead (its own `seats_left` stays 0), as `app.buckets` describes: a
registration reads the event and its buckets in one command, so its command budget does
not change, and a seat is taken from one bucket, chosen at random, so concurrent
registrations land on different documents and no bucket goes below zero (invariant 3).

The waitlist stays on the event (`waitlist_seq`, `waitlisted`): positions stay 1, 2, 3...,
each once, promoted first come first served. A registration is waitlisted only when its
snapshot shows every bucket empty, and a seat given back to a bucket (a cancellation with
nobody waiting) also writes the event document, so that a registration being waitlisted
at that moment conflicts with it and runs again: a seat never stays free while someone
waits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from bson import ObjectId
from pymongo.client_session import ClientSession

from app.buckets import MAX_BUCKETS as MAX_BUCKETS
from app.buckets import SplitCounter
from app.clock import utcnow
from app.db import batch
from events.models import Event, EventSeats

SEATS = SplitCounter(
    owners=Event._get_collection,
    buckets=EventSeats._get_collection,
    owner_field="event_id",
    field="seats_left",
    split_field="seat_buckets",
)


def bucket_count(event: dict[str, Any] | Event) -> int:
    return (event.get("seat_buckets") if isinstance(event, dict) else event.seat_buckets) or 1


def read_with_seats(session: ClientSession | None, event_id: ObjectId) -> dict[str, Any] | None:
    """The event with `buckets` (its seat documents, none when it keeps its seats itself)
    and `free_seats` (the live total), in one command."""
    found = SEATS.read(session, event_id)
    if found is not None:
        found["free_seats"] = found.pop("left")
    return found


class SeatedEvent(Protocol):
    """An event as `live_seats` reads it: an `Event`, or a list's view of one."""

    @property
    def pk(self) -> ObjectId: ...

    @property
    def seat_buckets(self) -> int | None: ...


def live_seats(events: Iterable[SeatedEvent]) -> dict[ObjectId, int]:
    """The free seats of each bucketed event among `events`, in one read; the others keep
    theirs on themselves."""
    return SEATS.live({"_id": event.pk, "seat_buckets": event.seat_buckets} for event in events)


def take_seat(
    session: ClientSession, event: dict[str, Any], preferred: int, refusal: Exception
) -> int | None:
    """Queue the conditional claim of one seat of the event read with `read_with_seats`
    (the caller saw one free); the bucket it comes from, None for the event's own."""
    taken = SEATS.take(session, event, 1, preferred, refusal)
    return next(iter(taken), None)


# What a registration decides from, as the event stores it: a copy of them (with the
# event's id) stands for a read of the event when a seat is taken on them.
TERMS = (
    "_id",
    "city_code",
    "status",
    "starts_at",
    "registration_closes_at",
    "verified_owners_only",
    "drop_id",
)


def take_seat_on_terms(session: ClientSession, terms: dict[str, Any], refusal: Exception) -> None:
    """Queue the claim of one seat of an event that keeps its seats on itself, on condition
    that one is free and that its `TERMS` are still those of `terms` (each as stored; None
    matches one never set)."""
    batch(session).update(
        Event._get_collection(),
        {**terms, "seats_left": {"$gte": 1}},
        {"$inc": {"seats_left": -1}},
        refusal=refusal,
    )


def give_back(session: ClientSession, event_id: ObjectId, buckets: int, bucket: int) -> None:
    """A seat free again, in `bucket` (of `buckets`; the event's own when 1), with nobody
    waiting for it. A split event's document is written too, so that a registration being
    waitlisted from an older snapshot conflicts with this and runs again."""
    SEATS.give_back(session, event_id, buckets, 1, bucket)
    if buckets > 1:
        batch(session).update(
            Event._get_collection(), {"_id": event_id}, {"$set": {"seat_freed_at": utcnow()}}
        )


def set_seats(session: ClientSession, event_id: ObjectId, free: int, buckets: int) -> None:
    """Make the event hold `free` seats in `buckets` parts (1: on itself), whatever it held."""
    SEATS.store(session, event_id, free, buckets)
