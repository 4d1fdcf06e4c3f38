"""The scheduler: enqueues the installed domains' periodic jobs (`workers/schedule.py`).

Run it with `python -m workers.scheduler`. Several may run (one per host, or two during a
deploy): each firing first takes a Redis lock keyed by job and scheduled fire time
(SET NX with an expiry), and only the scheduler that got it enqueues, so each period's job
is sent once. SIGTERM or SIGINT stops it between firings.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import dramatiq
import redis
import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from app.domains import PeriodicJob
from workers.schedule import SCHEDULE

log = structlog.get_logger()

# A firing later than this is skipped (the next one comes), so two schedulers can only
# disagree about a fire time within this window; the lock outlives it comfortably.
MISFIRE_GRACE = timedelta(seconds=60)
LOCK_TTL = timedelta(hours=1)


def load_schedule(extra_modules: Iterable[str] = ()) -> tuple[PeriodicJob, ...]:
    jobs = list(SCHEDULE)
    for module in extra_modules:
        jobs.extend(importlib.import_module(module).SCHEDULE)
    return tuple(jobs)


def trigger_for(job: PeriodicJob) -> CronTrigger:
    return CronTrigger(timezone=UTC, **job.cron)


def scheduled_fire_time(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The trigger's last fire time at or before `now`.

    APScheduler 3 does not tell a job which fire time it runs for, and the lock key needs
    it. Jobs coalesce and run within MISFIRE_GRACE of their time, so looking back that far
    finds it.
    """
    latest = None
    fire_time = trigger.get_next_fire_time(None, now - MISFIRE_GRACE)
    while fire_time is not None and fire_time <= now:
        latest = fire_time
        fire_time = trigger.get_next_fire_time(fire_time, fire_time + timedelta(microseconds=1))
    return latest


class Scheduler:
    def __init__(
        self,
        jobs: tuple[PeriodicJob, ...],
        locks: redis.Redis,
        broker: dramatiq.Broker | None = None,
    ) -> None:
        self.jobs = jobs
        self.locks = locks
        self.broker = broker or dramatiq.get_broker()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        # Fail at start-up, not at 3 a.m., when a job names an actor nobody declared.
        for job in jobs:
            self.broker.get_actor(job.actor_name)
        self.apscheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
            },
        )
        for job in jobs:
            self.apscheduler.add_job(
                self.fire, trigger_for(job), args=(job,), id=job.actor_name, name=job.actor_name
            )

    def fire(self, job: PeriodicJob, now: datetime | None = None) -> bool:
        """Enqueue `job` for its current fire time unless another scheduler already did.
        Returns whether this scheduler sent it."""
        fire_time = scheduled_fire_time(trigger_for(job), now or datetime.now(UTC))
        if fire_time is None:
            return False
        key = f"scheduler:{job.actor_name}:{fire_time.isoformat()}"
        try:
            if not self.locks.set(key, self.name, nx=True, ex=int(LOCK_TTL.total_seconds())):
                return False
            self.broker.get_actor(job.actor_name).send_with_options(
                scheduled_at=fire_time.isoformat()
            )
        except redis.exceptions.RedisError as exc:
            # Redis is down: this period is skipped, the next one comes on its own.
            log.warning(
                "scheduled_job_skipped",
                actor=job.actor_name,
                fire_time=fire_time.isoformat(),
                error=str(exc),
            )
            return False
        log.info(
            "scheduled_job_enqueued",
            actor=job.actor_name,
            fire_time=fire_time.isoformat(),
            scheduler=self.name,
        )
        return True

    def run(self, stop: threading.Event) -> None:
        self.apscheduler.start()
        log.info("scheduler_started", scheduler=self.name, jobs=[j.actor_name for j in self.jobs])
        stop.wait()
        self.apscheduler.shutdown(wait=True)
        log.info("scheduler_stopped", scheduler=self.name)


def main() -> None:
    from app import create_app
    from app import handlers as registry

    app = create_app(serves_http=False)
    # APScheduler logs every firing at INFO in plain text; ours are the JSON lines.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    import workers.tasks  # noqa: F401 - declares the backbone's actors

    registry.load_handler_modules(app.config["EXTRA_HANDLER_MODULES"])
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    locks = redis.Redis.from_url(
        app.config["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2
    )
    Scheduler(load_schedule(app.config["EXTRA_SCHEDULE_MODULES"]), locks).run(stop)


if __name__ == "__main__":
    main()
