"""Backbone figures for `/metrics`, computed at scrape time from MongoDB and Redis, so every
API process reports the same values without counting anything itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.common import dq_name, xq_name
from flask import current_app
from prometheus_client.core import GaugeMetricFamily
from pymongo.errors import PyMongoError

from app import handlers as registry
from app.clock import utcnow
from app.outbox import OutboxEvent, id_floor
from workers.models import DeadLetter, DispatchCursor

log = structlog.get_logger()


def outbox_figures() -> tuple[int, float]:
    """How many events wait to be dispatched, and the age in seconds of the oldest.

    Those are the events that occurred after the last commit the dispatcher sent (all of
    them before it first ran). An event still committing then counts as sent: the figures
    can be short by what a transaction in flight holds."""
    cursor = DispatchCursor.read()
    waiting: dict[str, Any] = {}
    if through := cursor.get("dispatched_through"):
        waiting = {"_id": {"$gte": id_floor(through)}, "occurred_at": {"$gt": through}}
    outbox = OutboxEvent._get_collection()
    pending = outbox.count_documents(waiting)
    oldest = outbox.find_one(waiting, {"occurred_at": 1}, sort=[("occurred_at", 1)])
    lag = (utcnow() - oldest["occurred_at"]).total_seconds() if oldest else 0.0
    return pending, max(0.0, lag)


def queue_lengths(client: redis.Redis) -> dict[tuple[str, str], int]:
    """Messages per (queue, state): ready to run, delayed (retries, held pushes), and
    dead in Redis."""
    import workers.tasks  # noqa: F401 - declares the backbone's queues in this process

    registry.load_handler_modules(current_app.config["EXTRA_HANDLER_MODULES"])
    broker = dramatiq.get_broker()
    namespace = getattr(broker, "namespace", "dramatiq")
    queues = sorted(broker.get_declared_queues())
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(f"{namespace}:{queue}")
        pipe.hlen(f"{namespace}:{dq_name(queue)}.msgs")
        pipe.zcard(f"{namespace}:{xq_name(queue)}")
    counts = iter(pipe.execute())
    return {
        (queue, state): next(counts) for queue in queues for state in ("ready", "delayed", "dead")
    }


class BackboneCollector:
    def describe(self) -> list[GaugeMetricFamily]:
        return self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from app.health import redis_client

        families = {family.name: family for family in self._families()}
        try:
            pending, lag = outbox_figures()
            families["outbox_pending_events"].add_metric([], pending)
            families["outbox_lag_seconds"].add_metric([], lag)
            families["dead_letters_unreplayed"].add_metric(
                [], DeadLetter.objects(replayed_at=None).count()
            )
        except PyMongoError as exc:
            log.warning("metrics_mongodb_unavailable", error=str(exc))
        try:
            for (queue, state), length in queue_lengths(redis_client()).items():
                families["dramatiq_queue_messages"].add_metric([queue, state], length)
        except redis.exceptions.RedisError as exc:
            log.warning("metrics_redis_unavailable", error=str(exc))
        yield from families.values()

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "outbox_pending_events", "Domain events waiting in the outbox to be dispatched"
            ),
            GaugeMetricFamily(
                "outbox_lag_seconds", "Age of the oldest domain event not yet dispatched"
            ),
            GaugeMetricFamily(
                "dead_letters_unreplayed", "Messages whose retries ran out, not yet replayed"
            ),
            GaugeMetricFamily(
                "dramatiq_queue_messages",
                "Messages in Dramatiq's Redis queues",
                labels=["queue", "state"],
            ),
        ]
