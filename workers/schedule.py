"""What the scheduler enqueues, and when. Each domain adds its periodic jobs here: one line,
naming an actor (declared in that domain's `tasks.py`) and an APScheduler cron trigger."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PeriodicJob:
    actor_name: str
    # APScheduler CronTrigger fields, in UTC: {"minute": "*/5"}, {"hour": 3, "minute": 0}.
    cron: dict[str, object] = field(default_factory=dict)


SCHEDULE: tuple[PeriodicJob, ...] = (
    PeriodicJob("points.expire_due", {"minute": 5}),
    PeriodicJob("points.warn_expiring", {"hour": 1, "minute": 15}),
    PeriodicJob("reconciliation.run", {"hour": 19, "minute": 30}),  # 03:30 in China
    PeriodicJob("events.send_reminders", {"minute": "*/5"}),
)
