"""The dispatcher in this process, against the real MongoDB and Redis."""

from __future__ import annotations

import threading
from datetime import timedelta

import dramatiq
import pytest
import redis

from app.clock import utcnow
from app.db import transaction
from app.outbox import DISPATCHED, PENDING, OutboxEvent, record_event
from workers.dispatcher import Dispatcher
from workers.models import DispatchRound
from workers.registry import handles


@handles("test.dispatched", max_retries=2)
def dispatched_handler(event, session) -> None:
    """Only messages matter here: no worker runs in these tests."""


@pytest.fixture
def handlers(app):
    import workers.tasks  # noqa: F401 - declares outbox.handle


def emit(count: int, type_: str = "test.dispatched") -> list[str]:
    return transaction(lambda session: [
        record_event(session, type_, subject_type="test", subject_id=str(n))
        for n in range(count)])


def queued_messages() -> list[dramatiq.Message]:
    broker = dramatiq.get_broker()
    raw = broker.client.hvals(f"{broker.namespace}:domain_events.msgs")
    return [dramatiq.Message.decode(data) for data in raw]


def test_events_go_out_in_batches_per_handler_and_are_marked(handlers):
    ids = emit(120)
    dispatched = Dispatcher(batch_size=500).dispatch_once()

    assert dispatched == 120
    assert OutboxEvent.objects(status=DISPATCHED).count() == 120
    messages = queued_messages()
    # The default batch size is 50: 50 + 50 + 20.
    assert sorted(len(message.args[1]) for message in messages) == [20, 50, 50]
    sent = [event["id"] for message in messages for event in message.args[1]]
    assert sorted(sent) == sorted(ids)
    assert messages[0].options["max_retries"] == 2
    assert DispatchRound.objects.count() == 0


def test_two_dispatchers_never_send_the_same_event(handlers):
    ids = emit(300)
    dispatchers = [Dispatcher(batch_size=40) for _ in range(2)]
    barrier = threading.Barrier(2)

    def drain(dispatcher: Dispatcher) -> None:
        barrier.wait()
        while dispatcher.dispatch_once():
            pass

    threads = [threading.Thread(target=drain, args=(d,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    sent = [event["id"] for message in queued_messages() for event in message.args[1]]
    assert sorted(sent) == sorted(ids)  # each exactly once


def test_a_dead_dispatchers_round_is_undone_after_its_lease(handlers):
    ids = emit(3)
    crashed = Dispatcher(lease_seconds=30)
    round_id, claimed = crashed.claim()  # ... and the process dies before sending
    assert len(claimed) == 3
    assert OutboxEvent.objects(status=DISPATCHED).count() == 3

    survivor = Dispatcher()
    assert survivor.upkeep(utcnow()) == 0  # the lease still runs
    assert survivor.upkeep(utcnow() + timedelta(seconds=31)) == 3
    assert OutboxEvent.objects(status=PENDING).count() == 3
    assert survivor.dispatch_once() == 3
    assert sorted(e["id"] for m in queued_messages() for e in m.args[1]) == sorted(ids)


def test_redis_down_gives_the_round_back_at_once(handlers, servers):
    emit(2)
    servers.stop_redis()
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            Dispatcher().dispatch_once()
    finally:
        servers.start_redis_again()
    assert OutboxEvent.objects(status=PENDING).count() == 2
    assert DispatchRound.objects.count() == 0
    assert Dispatcher().dispatch_once() == 2


def test_events_without_handlers_are_marked_dispatched(handlers):
    emit(2, type_="test.nobody_listens")
    assert Dispatcher().dispatch_once() == 2
    assert queued_messages() == []
    assert OutboxEvent.objects(status=DISPATCHED).count() == 2
