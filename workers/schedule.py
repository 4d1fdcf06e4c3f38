"""What the scheduler enqueues, and when: the periodic jobs every installed domain declares
with it in `app/domains.py` (an actor of its `tasks.py` and an APScheduler cron trigger)."""

from __future__ import annotations

from app.domains import PeriodicJob, schedule

SCHEDULE: tuple[PeriodicJob, ...] = schedule()
