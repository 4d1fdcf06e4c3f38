from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dramatiq
import pytest
import redis

from app.domains import PeriodicJob
from tests.support import wait_until
from workers.scheduler import Scheduler, scheduled_fire_time, trigger_for

TEST_SCHEDULE = {
    "EXTRA_HANDLER_MODULES": "tests.workers.handlers",
    "EXTRA_SCHEDULE_MODULES": "tests.workers.schedule",
}


def test_fire_time_is_the_last_one_at_or_before_now():
    every_five_minutes = trigger_for(PeriodicJob("x", {"minute": "*/5"}))
    now = datetime(2026, 3, 1, 10, 5, 20, tzinfo=UTC)
    assert scheduled_fire_time(every_five_minutes, now) == now.replace(minute=5, second=0)
    exactly = datetime(2026, 3, 1, 10, 10, tzinfo=UTC)
    assert scheduled_fire_time(every_five_minutes, exactly) == exactly
    daily = trigger_for(PeriodicJob("x", {"hour": 3, "minute": 0}))
    # Long after the firing (beyond the misfire grace): nothing to run now.
    assert scheduled_fire_time(daily, datetime(2026, 3, 1, 9, 0, tzinfo=UTC)) is None


def test_one_scheduler_per_fire_time_wins_the_lock(app, servers):
    import tests.workers.handlers  # noqa: F401 - declares tests.tick

    locks = redis.Redis.from_url(servers.redis_url)
    job = PeriodicJob("tests.tick", {"second": "*/2"})
    first, second = Scheduler((job,), locks), Scheduler((job,), locks)
    now = datetime(2026, 3, 1, 10, 0, 0, 100_000, tzinfo=UTC)
    assert first.fire(job, now) is True
    assert second.fire(job, now + timedelta(milliseconds=500)) is False
    assert second.fire(job, now + timedelta(seconds=2)) is True
    broker = dramatiq.get_broker()
    assert broker.client.hlen(f"{broker.namespace}:tests_scheduled.msgs") == 2


def scheduled_messages() -> list[dramatiq.Message]:
    broker = dramatiq.get_broker()
    return [
        dramatiq.Message.decode(raw)
        for raw in broker.client.hvals(f"{broker.namespace}:tests_scheduled.msgs")
    ]


@pytest.mark.slow
def test_two_real_schedulers_enqueue_each_period_once(background):
    group = background(**TEST_SCHEDULE)
    schedulers = [group.start("scheduler"), group.start("scheduler", alias="scheduler-2")]

    wait_until(
        lambda: len(scheduled_messages()) >= 4, timeout=60, message="four periods of the test job"
    )
    assert all(process.poll() is None for process in schedulers)
    group.stop_all()  # SIGTERM: both stop cleanly
    assert [process.returncode for process in schedulers] == [0, 0]

    fire_times = sorted(
        datetime.fromisoformat(message.options["scheduled_at"]) for message in scheduled_messages()
    )
    assert len(fire_times) == len(set(fire_times)), "a period was enqueued twice"
    # And no period in between was skipped.
    assert all(
        later - earlier == timedelta(seconds=2)
        for earlier, later in zip(fire_times, fire_times[1:], strict=False)
    )
