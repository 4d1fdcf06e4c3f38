"""The dispatcher in this process, against the real MongoDB and Redis (no worker runs:
the tests read what was queued)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import dramatiq
import pytest
import redis
from bson import ObjectId

from app.clock import utcnow
from app.db import transaction
from app.handlers import HandledEvent, handles
from app.outbox import OutboxEvent, record_event
from tests.support import wait_until
from tests.workers.handlers import Probe, probe
from workers.dispatcher import Dispatcher
from workers.metrics import outbox_figures
from workers.models import CURSOR_ID, DispatchCursor


@handles(probe("test.dispatched"), name="tests.dispatched", max_retries=2)
def dispatched_handler(event, session) -> None:
    """Only messages matter here."""


@pytest.fixture
def handlers(app):
    import workers.tasks  # noqa: F401 - declares outbox.handle


def emit(count: int, type_: str = "test.dispatched") -> list[str]:
    return transaction(
        lambda session: [
            record_event(session, probe(type_), Probe(), subject_id=str(n)) for n in range(count)
        ]
    )


def queued_messages() -> list[dramatiq.Message]:
    broker = dramatiq.get_broker()
    raw = broker.client.hvals(f"{broker.namespace}:domain_events.msgs")
    return [dramatiq.Message.decode(data) for data in raw]


def sent_ids() -> list[str]:
    return [event["id"] for message in queued_messages() for event in message.args[1]]


def leader(**options) -> Dispatcher:
    dispatcher = Dispatcher(**options)
    assert dispatcher.acquire()
    return dispatcher


def test_first_start_sends_the_outbox_then_follows_commits_in_batches_per_handler(handlers):
    earlier = emit(120)
    dispatcher = leader()
    with dispatcher.open() as stream:
        # Nothing saved yet, so all the outbox went out first: the default batch is 50.
        messages = queued_messages()
        assert sorted(len(message.args[1]) for message in messages) == [20, 50, 50]
        assert sorted(sent_ids()) == sorted(earlier)
        assert messages[0].options["max_retries"] == 2

        later = emit(3)
        assert dispatcher.pump(stream) == 3
        assert dispatcher.pump(stream) == 0
    assert sorted(sent_ids()) == sorted(earlier + later)
    saved = DispatchCursor.read()
    assert saved["resume_token"] and saved["holder"] == dispatcher.name


def test_only_committed_events_go_out(handlers):
    dispatcher = leader()
    with dispatcher.open() as stream:

        def record_then_fail(session) -> None:
            record_event(session, probe("test.dispatched"), Probe(), subject_id="x")
            raise RuntimeError("the state change fails")

        with pytest.raises(RuntimeError):
            transaction(record_then_fail)
        client = OutboxEvent._get_collection().database.client
        with client.start_session() as session:
            session.start_transaction()
            in_flight = record_event(session, probe("test.dispatched"), Probe(), subject_id="y")
            assert dispatcher.pump(stream) == 0
            session.commit_transaction()
        assert dispatcher.pump(stream) == 1
    assert sent_ids() == [in_flight]


def test_one_dispatcher_leads_and_a_standby_takes_over_where_it_stopped(handlers):
    dispatchers = [Dispatcher(lease_seconds=6) for _ in range(2)]
    stops = [threading.Event() for _ in dispatchers]
    threads = [
        threading.Thread(target=d.run, args=(stop,), daemon=True)
        for d, stop in zip(dispatchers, stops, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: DispatchCursor.read().get("resume_token"), message="a leader's stream")
        first = emit(300)
        wait_until(lambda: len(sent_ids()) >= 300, message="the leader's sends")
        holder = DispatchCursor.read()["holder"]
        leading = next(i for i, d in enumerate(dispatchers) if d.name == holder)
        stops[leading].set()  # a clean stop hands the lead over at once
        threads[leading].join(10)

        later = emit(5)
        wait_until(lambda: len(sent_ids()) >= 305, message="the standby's sends")
        assert DispatchCursor.read()["holder"] == dispatchers[1 - leading].name
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(10)
    # Each exactly once: never both at once, and the standby resumed from the position.
    assert sorted(sent_ids()) == sorted(first + later)


def test_a_crashed_leaders_lease_runs_out_and_the_next_resumes_from_its_position(handlers):
    crashed = leader(lease_seconds=30)
    with crashed.open() as stream:
        first = emit(3)
        assert crashed.pump(stream) == 3
    # ... and its process dies without handing the lead over.
    later = emit(2)

    successor = Dispatcher(lease_seconds=30)
    assert not successor.acquire()  # the lease still runs
    assert successor.acquire(utcnow() + timedelta(seconds=31))
    assert not crashed.acquire()
    with successor.open() as stream:
        assert successor.pump(stream) == 2
    assert sorted(sent_ids()) == sorted(first + later)


def test_redis_down_keeps_the_position_and_everything_goes_when_it_returns(handlers, servers):
    dispatcher = leader()
    with dispatcher.open() as stream:
        waiting = emit(2)
        with servers.redis_down(), pytest.raises(redis.exceptions.ConnectionError):
            dispatcher.pump(stream)
    assert outbox_figures()[0] == 2

    # What `run` does after backing off: resume from the saved position.
    with dispatcher.open() as stream:
        assert dispatcher.pump(stream) == 2
    assert sorted(sent_ids()) == sorted(waiting)
    assert outbox_figures() == (0, 0.0)


def test_a_position_the_server_no_longer_has_falls_back_to_a_scan(handlers, servers):
    if servers.mongo is None:
        pytest.skip("crafts a resume token of the embedded server")
    from secantus.changestreams import make_resume_token, parse_resume_token

    dispatcher = leader()
    with dispatcher.open() as stream:
        before = emit(2)
        assert dispatcher.pump(stream) == 2
    missed = emit(3)
    saved = parse_resume_token(DispatchCursor.read()["resume_token"])
    saved.seq = -1  # before the oldest history the server keeps, as after pruning
    DispatchCursor._get_collection().update_one(
        {"_id": CURSOR_ID}, {"$set": {"resume_token": make_resume_token(saved)}}
    )

    with dispatcher.open() as stream:
        # Everything since a little before the last commit sent: the missed events, and
        # those sent before again (handlers shrug that off).
        assert Counter(sent_ids()) == Counter(
            {**dict.fromkeys(missed, 1), **dict.fromkeys(before, 2)}
        )
        after = emit(1)
        assert dispatcher.pump(stream) == 1
    assert after[0] in sent_ids()


def test_events_without_handlers_move_the_position_on(handlers):
    dispatcher = leader()
    with dispatcher.open() as stream:
        emit(2, type_="test.nobody_listens")
        assert dispatcher.pump(stream) == 2
    assert queued_messages() == []
    assert outbox_figures() == (0, 0.0)


def test_sweep_keeps_what_may_not_have_been_sent_and_recent_markers(handlers):
    now = utcnow()

    def event_id(age: timedelta) -> str:
        return str(ObjectId.from_datetime(now - age))

    old, recent = event_id(timedelta(days=8)), event_id(timedelta(hours=1))
    OutboxEvent._get_collection().insert_many(
        [
            {
                "_id": old,
                "type": "test.dispatched",
                "subject_type": "test",
                "subject_id": "1",
                "occurred_at": now - timedelta(days=8),
            },
            {
                "_id": recent,
                "type": "test.dispatched",
                "subject_type": "test",
                "subject_id": "2",
                "occurred_at": now - timedelta(hours=1),
            },
        ]
    )
    # A marker goes when both its event and its handling are past 30 days; a UUID event
    # id (as before ids were ObjectIds) may sort anywhere, so its handling time decides.
    uuid_id = "00000000" + "0" * 24
    HandledEvent._get_collection().insert_many(
        [
            {
                **HandledEvent.document(event_id(timedelta(days=31)), "h"),
                "handled_at": now - timedelta(days=31),
            },
            HandledEvent.document(recent, "h"),
            HandledEvent.document(uuid_id, "h"),
        ]
    )
    dispatcher = leader()
    # The last commit sent is older than the old event: it may never have gone out.
    DispatchCursor._get_collection().update_one(
        {"_id": CURSOR_ID}, {"$set": {"dispatched_through": now - timedelta(days=9)}}
    )

    dispatcher.sweep()
    assert sorted(OutboxEvent.objects.scalar("id")) == sorted([old, recent])
    assert sorted(marker.event_id for marker in HandledEvent.objects) == sorted([recent, uuid_id])

    DispatchCursor._get_collection().update_one(
        {"_id": CURSOR_ID}, {"$set": {"dispatched_through": now}}
    )
    dispatcher.sweep()
    assert list(OutboxEvent.objects.scalar("id")) == [recent]
