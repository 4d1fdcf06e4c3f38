"""Failure behaviour with real Redis and real worker, dispatcher processes."""

from __future__ import annotations

import itertools
import time
from collections import Counter

import pytest
import redis

from app.db import database, transaction
from app.handlers import HandledEvent
from app.outbox import OutboxEvent, record_event
from tests.support import make_city, make_person, wait_until
from tests.workers.handlers import Probe, probe
from workers.metrics import outbox_figures
from workers.models import DeadLetter
from workers.tasks import handle_domain_events

HANDLERS = "tests.workers.handlers"


def results() -> Counter:
    return Counter(doc["event_id"] for doc in database()["test_results"].find())


def emit(type_: str, **payload) -> str:
    return transaction(
        lambda session: record_event(session, probe(type_), Probe(**payload), subject_id="1")
    )


def test_redis_down_requests_succeed_and_events_wait_then_arrive_once(client, background, servers):
    make_city("SZ")
    background("worker", "dispatcher", EXTRA_HANDLER_MODULES=HANDLERS)
    with servers.redis_down():
        for number in range(5):
            response = client.post(
                "/api/v1/auth/register",
                json={
                    "email": f"down{number}@example.com",
                    "password": "password-123",
                    "display_name": f"Down {number}",
                    "city_code": "SZ",
                },
            )
            assert response.status_code == 201, response.json
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.headers["Retry-After"]
        assert ready.json["checks"]["redis"] == "down"
        waiting = [e.pk for e in OutboxEvent.objects(type="user.registered")]
        assert len(waiting) == 5
        assert outbox_figures()[0] == OutboxEvent.objects.count()  # all still waiting

    wait_until(
        lambda: set(results()) == set(waiting), timeout=60, message="every waiting event handled"
    )
    wait_until(lambda: outbox_figures()[0] == 0, message="the outbox dispatched")
    assert client.get("/ready").status_code == 200
    assert set(results().values()) == {1}
    for event_id in waiting:
        assert HandledEvent.objects(event_id=event_id).count() == 1


@pytest.mark.slow
def test_a_retry_redis_cannot_take_is_queued_when_it_returns(app, background, servers):
    """A handler fails while Redis is down (a database and a Redis restart close together):
    Dramatiq would log that the retry could not be queued and ack the message, losing it."""
    background("worker", "dispatcher", EXTRA_HANDLER_MODULES=HANDLERS)
    event_id = emit("test.loses_redis")
    wait_until(
        lambda: servers.redis.process.poll() is not None, message="the handler to stop Redis"
    )
    servers.start_redis_again()

    wait_until(lambda: results()[event_id] == 1, timeout=60, message="the retried event")
    assert database()["test_progress"].count_documents({"event_id": event_id}) == 2
    assert HandledEvent.objects(event_id=event_id).count() == 1


@pytest.mark.slow
def test_a_retry_waiting_in_the_worker_outlives_a_redis_restart(app, background, servers):
    """A retry waits for its time in the worker's memory, taken from Redis's delay queue and
    counted as the worker's until it is queued again. Dramatiq forgets the waiting ones when
    its connection to Redis drops, while Redis still counts them as the (living) worker's:
    they were never run again."""
    background("worker", "dispatcher", EXTRA_HANDLER_MODULES=HANDLERS)
    event_id = emit("test.fails_once")
    progress = database()["test_progress"]
    wait_until(lambda: progress.find_one({"event_id": event_id}), message="the first attempt")
    client = redis.Redis.from_url(servers.redis_url)
    wait_until(
        lambda: (
            client.llen("dramatiq:domain_events.DQ") == 0
            and any(client.scard(key) for key in client.scan_iter("dramatiq:__acks__.*.DQ"))
        ),
        message="the retry taken into the worker to wait",
    )
    assert not results()
    with servers.redis_down():
        # The outage outlasts the worker's polls (every 0.1 s here) several times over.
        time.sleep(1)

    wait_until(lambda: results()[event_id] == 1, timeout=60, message="the retry, run")
    assert progress.count_documents({"event_id": event_id}) == 2
    assert HandledEvent.objects(event_id=event_id).count() == 1


@pytest.mark.slow
def test_worker_killed_mid_handler_redelivers_and_result_exists_once(app, background):
    group = background("worker", "dispatcher", EXTRA_HANDLER_MODULES=HANDLERS)
    event_id = emit("test.slow", seconds=4)
    progress = database()["test_progress"]
    wait_until(lambda: progress.find_one({"event_id": event_id}), message="the slow handler")

    group.kill("worker")
    assert not results()
    group.start("worker")

    wait_until(lambda: results()[event_id] == 1, timeout=90, message="the redelivered event")
    # Started twice (killed once), applied once.
    assert progress.count_documents({"event_id": event_id}) == 2
    assert results() == Counter({event_id: 1})
    assert HandledEvent.objects(event_id=event_id).count() == 1


def test_failing_handler_is_retried_then_dead_lettered_and_replayable(client, background):
    admin = make_person("SZ", role="admin")
    switches = database()["test_switches"]
    switches.insert_one({"_id": "flaky", "on": True})
    background("worker", "dispatcher", EXTRA_HANDLER_MODULES=HANDLERS)
    event_id = emit("test.flaky")

    letter = wait_until(lambda: DeadLetter.objects.first(), message="the dead letter")
    attempts = sorted(
        doc["attempt_at"] for doc in database()["test_progress"].find({"event_id": event_id})
    )
    assert len(attempts) == 3  # the first try and max_retries=2
    # Back-off: each retry waits at least min_backoff (100 ms).
    assert all(later - earlier >= 0.1 for earlier, later in itertools.pairwise(attempts))
    assert letter.actor_name == "outbox.handle"
    assert letter.args[0] == "tests.flaky"
    assert "flaky handler failing on purpose" in letter.error

    listed = client.get("/api/v1/admin/dead-letters", headers=admin.headers)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json["items"]] == [str(letter.pk)]
    assert listed.json["items"][0]["replayed_at"] is None

    switches.update_one({"_id": "flaky"}, {"$set": {"on": False}})
    replay = client.post(f"/api/v1/admin/dead-letters/{letter.pk}/replay", headers=admin.headers)
    assert replay.status_code == 202, replay.json
    assert replay.json["replayed_at"]
    wait_until(lambda: results()[event_id] == 1, message="the replayed event handled")

    again = client.post(f"/api/v1/admin/dead-letters/{letter.pk}/replay", headers=admin.headers)
    assert again.status_code == 409
    assert again.json["error"] == "already_replayed"
    assert DeadLetter.objects.count() == 1


def test_a_message_for_a_handler_that_no_longer_exists_is_a_dead_letter_at_once(client, background):
    admin = make_person("SZ", role="admin")
    background("worker")
    event = {"id": "e1", "type": "test.gone", "subject_type": "test", "subject_id": "1"}
    event["occurred_at"] = "2026-12-01T00:00:00+00:00"
    # Queued by a release that still had the handler.
    handle_domain_events.send_with_options(
        args=("tests.retired", [event]), max_retries=10, min_backoff=60_000
    )

    letter = wait_until(lambda: DeadLetter.objects.first(), message="the dead letter")
    assert letter.actor_name == "outbox.handle"
    assert letter.args == ["tests.retired", [event]]
    assert letter.retries == 0  # not retried: no retry can bring the handler back
    assert letter.options["max_retries"] == 10
    assert "No handler is named 'tests.retired'" in letter.error

    listed = client.get("/api/v1/admin/dead-letters", headers=admin.headers).json
    assert [item["id"] for item in listed["items"]] == [str(letter.pk)]
    replay = client.post(f"/api/v1/admin/dead-letters/{letter.pk}/replay", headers=admin.headers)
    assert replay.status_code == 202, replay.json
    # Still unknown to this release: parked again, never dropped.
    wait_until(lambda: DeadLetter.objects.count() == 2, message="the replay parked again")
