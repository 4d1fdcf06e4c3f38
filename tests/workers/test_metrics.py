from __future__ import annotations

import re
from datetime import timedelta

import dramatiq

from app.clock import utcnow
from app.db import transaction
from app.outbox import OutboxEvent, record_event
from tests.workers.handlers import Probe, probe
from workers.metrics import outbox_figures
from workers.models import CURSOR_ID, DeadLetter, DispatchCursor


def sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} missing from /metrics"
    return float(match.group(1))


def test_metrics_show_outbox_lag_pending_dead_letters_and_queue_lengths(client):
    import workers.tasks  # noqa: F401 - declares outbox.handle on the test broker

    quiet = client.get("/metrics").text
    assert sample(quiet, "outbox_pending_events") == 0
    assert sample(quiet, "outbox_lag_seconds") == 0

    for _ in range(2):
        transaction(
            lambda session: record_event(session, probe("test.metrics"), Probe(), subject_id="1")
        )
    OutboxEvent.objects.update(set__occurred_at=utcnow() - timedelta(seconds=90))
    DeadLetter(message_id="m1", queue_name="domain_events", actor_name="outbox.handle").save()
    DeadLetter(
        message_id="m2",
        queue_name="domain_events",
        actor_name="outbox.handle",
        replayed_at=utcnow(),
    ).save()
    dramatiq.get_broker().get_actor("outbox.handle").send("nobody", [])

    text = client.get("/metrics").text
    assert sample(text, "outbox_pending_events") == 2
    assert 90 <= sample(text, "outbox_lag_seconds") < 120
    assert sample(text, "dead_letters_unreplayed") == 1
    assert sample(text, "dramatiq_queue_messages", '{queue="domain_events",state="ready"}') == 1
    assert sample(text, "dramatiq_queue_messages", '{queue="domain_events",state="delayed"}') == 0


def test_outbox_figures_count_what_occurred_after_the_last_commit_sent(app):
    for _ in range(2):
        transaction(
            lambda session: record_event(session, probe("test.metrics"), Probe(), subject_id="1")
        )
    OutboxEvent.objects.update(set__occurred_at=utcnow() - timedelta(seconds=90))
    assert outbox_figures()[0] == 2  # no dispatcher has run: all of them wait

    DispatchCursor(id=CURSOR_ID, dispatched_through=utcnow() - timedelta(seconds=60)).save()
    assert outbox_figures() == (0, 0.0)
    transaction(
        lambda session: record_event(session, probe("test.metrics"), Probe(), subject_id="2")
    )
    pending, lag = outbox_figures()
    assert pending == 1 and 0 <= lag < 5
