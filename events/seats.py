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
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession

from app.buckets import MAX_BUCKETS as MAX_BUCKETS
from app.buckets import bucket_id, plan, read_with_buckets, split
from app.clock import utcnow
from app.db import batch
from events.models import Event, EventSeats


def bucket_count(event: dict[str, Any] | Event) -> int:
    count = event.get("seat_buckets") if isinstance(event, dict) else event.seat_buckets
    return count or 1


def read_with_seats(session: ClientSession | None, event_id: ObjectId) -> dict[str, Any] | None:
    """The event with `buckets` (its seat documents, none when it keeps its seats itself)
    and `free_seats` (the live total), in one command."""
    found = read_with_buckets(
        session, Event._get_collection(), event_id, EventSeats._get_collection(), "event_id"
    )
    if found is not None:
        found["free_seats"] = free_seats(found)
    return found


def free_seats(event: dict[str, Any]) -> int:
    if bucket_count(event) > 1:
        return sum(bucket["seats_left"] for bucket in event.get("buckets", ()))
    return event["seats_left"]


def live_seats(events: Iterable[Event]) -> dict[ObjectId, int]:
    """The free seats of each bucketed event among `events`, in one read; the others keep
    theirs on themselves."""
    totals: dict[ObjectId, int] = {event.pk: 0 for event in events if bucket_count(event) > 1}
    if totals:
        for bucket in EventSeats._get_collection().find(
            {"event_id": {"$in": list(totals)}}, {"event_id": 1, "seats_left": 1}
        ):
            totals[bucket["event_id"]] += bucket["seats_left"]
    return totals


def take_seat(
    session: ClientSession, event: dict[str, Any], preferred: int, refusal: Exception
) -> int | None:
    """Queue the conditional claim of one seat of the event read with `read_with_seats`
    (the caller saw one free); the bucket it comes from, None for the event's own."""
    writes = batch(session)
    if bucket_count(event) == 1:
        writes.update(
            Event._get_collection(),
            {"_id": event["_id"], "seats_left": {"$gt": 0}},
            {"$inc": {"seats_left": -1}},
            refusal=refusal,
        )
        return None
    counts = {bucket["bucket"]: bucket["seats_left"] for bucket in event["buckets"]}
    [number] = plan(counts, 1, preferred)
    writes.update(
        EventSeats._get_collection(),
        {"_id": bucket_id(event["_id"], number), "seats_left": {"$gt": 0}},
        {"$inc": {"seats_left": -1}},
        refusal=refusal,
    )
    return number


def give_back(session: ClientSession, event_id: ObjectId, bucket: int | None) -> None:
    """A seat free again, in its bucket (None: on the event), with nobody waiting for it;
    the event document is written too, so that a registration being waitlisted from an
    older snapshot conflicts with this and runs again."""
    writes = batch(session)
    if bucket is None:
        writes.update(Event._get_collection(), {"_id": event_id}, {"$inc": {"seats_left": 1}})
        return
    writes.update(
        EventSeats._get_collection(),
        {"_id": bucket_id(event_id, bucket)},
        {"$inc": {"seats_left": 1}},
    )
    writes.update(Event._get_collection(), {"_id": event_id}, {"$set": {"seat_freed_at": utcnow()}})


def set_seats(session: ClientSession, event_id: ObjectId, free: int, buckets: int) -> None:
    """Make the event hold `free` seats in `buckets` parts (1: on itself), whatever it held."""
    seats = EventSeats._get_collection()
    seats.delete_many({"event_id": event_id, "bucket": {"$gte": buckets}}, session=session)
    if buckets == 1:
        seats.delete_many({"event_id": event_id}, session=session)
    else:
        for number, part in enumerate(split(free, buckets)):
            seats.update_one(
                {"_id": bucket_id(event_id, number)},
                {"$set": {"event_id": event_id, "bucket": number, "seats_left": part}},
                upsert=True,
                session=session,
            )
    Event._get_collection().update_one(
        {"_id": event_id},
        {"$set": {"seats_left": free if buckets == 1 else 0, "seat_buckets": buckets}},
        session=session,
    )
