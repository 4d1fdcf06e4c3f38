"""Test-only schedule and actor (EXTRA_SCHEDULE_MODULES / EXTRA_HANDLER_MODULES): the
reminder service every second, so two real schedulers can race on it within a test. (The
real `events.send_reminders` job keeps its own five-minute schedule; one actor name can be
scheduled only once.)"""

from __future__ import annotations

import dramatiq

from app.db import database
from app.domains import PeriodicJob
from events import notices

SCHEDULE = (PeriodicJob("tests.events.send_reminders", {"second": "*"}),)


@dramatiq.actor(
    actor_name="tests.events.send_reminders",
    queue_name="tests_events",
    max_retries=0,
    time_limit=30_000,
)
def send_reminders() -> None:
    sent = notices.send_reminders()
    database()["test_reminder_runs"].insert_one({"sent": sent})
