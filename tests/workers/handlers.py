"""Test-only handlers and actors, loaded into real worker, dispatcher and scheduler
processes through EXTRA_HANDLER_MODULES. They write to `test_*` collections that the
tests read."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import dramatiq
import redis
from pymongo.client_session import ClientSession

from accounts.domain_events import USER_REGISTERED
from app.db import database
from app.handlers import handles
from app.outbox import DomainEvent, EventType, declare


@dataclass(frozen=True)
class Probe:
    """The payload of the tests' own event types."""

    seconds: float = 0


def probe(name: str) -> EventType[Probe]:
    """A test's event type (`test.slow`...), declared when first named."""
    return declare(name, Probe, subject_type="test", about="An event of the tests")


def results():
    return database()["test_results"]


@handles(USER_REGISTERED, name="tests.record_registration")
def record_registration(event: DomainEvent, session: ClientSession) -> None:
    results().insert_one({"event_id": event.id, "kind": "registered"}, session=session)


@handles(probe("test.slow"), name="tests.slow")
def slow(event: DomainEvent[Probe], session: ClientSession) -> None:
    # Outside the transaction, so the test sees that the handler is under way.
    database()["test_progress"].insert_one({"event_id": event.id, "at": time.time()})
    time.sleep(event.payload.seconds)
    results().insert_one({"event_id": event.id, "kind": "slow"}, session=session)


@handles(
    probe("test.flaky"), name="tests.flaky", max_retries=2, min_backoff_ms=100, max_backoff_ms=200
)
def flaky(event: DomainEvent, session: ClientSession) -> None:
    """Fails while the `flaky` switch is on."""
    database()["test_progress"].insert_one({"event_id": event.id, "attempt_at": time.time()})
    if database()["test_switches"].find_one({"_id": "flaky", "on": True}):
        raise RuntimeError("flaky handler failing on purpose")
    results().insert_one({"event_id": event.id, "kind": "flaky"}, session=session)


@handles(probe("test.loses_redis"), name="tests.loses_redis")
def loses_redis(event: DomainEvent, session: ClientSession) -> None:
    """The first time, stops Redis and fails: its retry must wait for Redis to return."""
    progress = database()["test_progress"]
    progress.insert_one({"event_id": event.id, "attempt_at": time.time()})
    if progress.count_documents({"event_id": event.id}) == 1:
        redis.Redis.from_url(os.environ["REDIS_URL"]).shutdown(nosave=True)
        raise RuntimeError("failing while Redis is down, on purpose")
    results().insert_one({"event_id": event.id, "kind": "loses_redis"}, session=session)


@handles(probe("test.fails_once"), name="tests.fails_once", min_backoff_ms=4_000)
def fails_once(event: DomainEvent, session: ClientSession) -> None:
    """Fails its first attempt; the retry waits in the worker for 4-8 s."""
    progress = database()["test_progress"]
    progress.insert_one({"event_id": event.id, "attempt_at": time.time()})
    if progress.count_documents({"event_id": event.id}) == 1:
        raise RuntimeError("failing once, on purpose")
    results().insert_one({"event_id": event.id, "kind": "fails_once"}, session=session)


@dramatiq.actor(actor_name="tests.tick", queue_name="tests_scheduled", max_retries=0)
def tick() -> None:
    """Enqueued by the test schedule; no worker consumes its queue in the tests."""
