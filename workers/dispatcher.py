"""The outbox dispatcher: moves committed domain events to Dramatiq.

Each round records itself (a `DispatchRound` with a lease), marks the oldest pending
events (about `batch_size`) dispatched under its id, sends them, and deletes the round.
Several dispatchers may run (one per host is typical): an update claims each event for
exactly one round. If a dispatcher dies mid-round, its round outlives its lease and
another dispatcher puts the round's events back to pending; events sent before the crash
are then sent again, which handlers shrug off (they are idempotent by event id).

Messages group up to `Handler.batch_size` events for one handler, so a worker applies
them in one transaction (see workers/tasks.py). Run it with `python -m workers.dispatcher`.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import redis.exceptions
import structlog

from app.clock import utcnow
from app.outbox import DISPATCHED, PENDING, DomainEvent, OutboxEvent
from workers import registry
from workers.models import DispatchRound

log = structlog.get_logger()

# Dispatched events stay this long for audit, then go.
RETENTION = timedelta(days=7)


class Dispatcher:
    def __init__(self, batch_size: int = 500, lease_seconds: int = 30,
                 idle_seconds: float = 0.1, max_backoff_seconds: float = 5.0) -> None:
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.idle_seconds = idle_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._next_upkeep = utcnow()

    def upkeep(self, now: datetime) -> int:
        """Undo the rounds of dispatchers that died mid-round, and sweep old events.
        Returns how many events went back to pending."""
        restored = 0
        for stale in DispatchRound.objects(lease_until__lt=now):
            restored += self.undo_round(stale.pk)
        OutboxEvent._get_collection().delete_many(
            {"status": DISPATCHED, "occurred_at": {"$lt": now - RETENTION}})
        if restored:
            log.warning("outbox_rounds_undone", events=restored)
        return restored

    def undo_round(self, round_id: str) -> int:
        result = OutboxEvent._get_collection().update_many(
            {"dispatch_round": round_id},
            {"$set": {"status": PENDING}, "$unset": {"dispatch_round": "", "dispatched_at": ""}})
        DispatchRound.objects(pk=round_id).delete()
        return result.modified_count

    def claim(self) -> tuple[str, list[dict[str, Any]]]:
        """Open a round and mark the oldest pending events (about `batch_size`) with it."""
        outbox = OutboxEvent._get_collection()
        now = utcnow()
        if now >= self._next_upkeep:
            self.upkeep(now)
            self._next_upkeep = now + self.lease / 3
        # Claimed by a range of occurred_at rather than a list of ids: one indexed update
        # instead of an `$in` of hundreds (several times slower). Events sharing the
        # boundary's millisecond all come along, which only makes the round larger.
        boundary = list(outbox.find({"status": PENDING}, {"occurred_at": 1})
                        .sort("occurred_at", 1).skip(self.batch_size - 1).limit(1))
        claimable: dict[str, Any] = {"status": PENDING}
        if boundary:
            claimable["occurred_at"] = {"$lte": boundary[0]["occurred_at"]}
        round_id = f"{self.name}:{uuid.uuid4().hex}"
        DispatchRound(id=round_id, dispatcher=self.name, lease_until=now + self.lease).save(
            force_insert=True)
        result = outbox.update_many(claimable, {"$set": {
            "status": DISPATCHED, "dispatch_round": round_id, "dispatched_at": now}})
        if not result.modified_count:
            DispatchRound.objects(pk=round_id).delete()
            return round_id, []
        # Sorted here: the server's sort made the read half as slow again.
        return round_id, sorted(outbox.find({"dispatch_round": round_id}),
                                key=lambda doc: doc["occurred_at"])

    def dispatch_once(self) -> int:
        """Send one round. Returns how many events were dispatched."""
        from workers.tasks import handle_domain_events

        round_id, claimed = self.claim()
        if not claimed:
            return 0
        try:
            for handler, events in _by_handler(claimed):
                for start in range(0, len(events), handler.batch_size):
                    handle_domain_events.send_with_options(
                        args=(handler.name, events[start:start + handler.batch_size]),
                        **handler.message_options)
        except BaseException:
            # Give them back at once rather than after the lease: Redis may return soon.
            # Messages already sent are sent again then, which handlers shrug off.
            self.undo_round(round_id)
            raise
        DispatchRound.objects(pk=round_id).delete()
        return len(claimed)

    def run(self, stop: threading.Event) -> None:
        log.info("dispatcher_started", dispatcher=self.name)
        backoff = 0.0
        while not stop.is_set():
            try:
                dispatched = self.dispatch_once()
                backoff = 0.0
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                backoff = min(self.max_backoff_seconds, max(0.25, backoff * 2))
                log.warning("dispatcher_redis_unavailable", error=str(exc), retry_in=backoff)
                stop.wait(backoff)
                continue
            except Exception:  # noqa: BLE001 - MongoDB hiccups must not kill the loop
                backoff = min(self.max_backoff_seconds, max(0.25, backoff * 2))
                log.exception("dispatcher_error", retry_in=backoff)
                stop.wait(backoff)
                continue
            if dispatched < self.batch_size:
                stop.wait(self.idle_seconds)
        log.info("dispatcher_stopped", dispatcher=self.name)


def _by_handler(claimed: list[dict[str, Any]]
                ) -> list[tuple[registry.Handler, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    handlers: dict[str, registry.Handler] = {}
    for doc in claimed:
        event = DomainEvent.from_document(doc).to_message()
        for handler in registry.handlers_for(doc["type"]):
            handlers[handler.name] = handler
            groups[handler.name].append(event)
    return [(handlers[name], events) for name, events in groups.items()]


def main() -> None:
    from app import create_app

    app = create_app()
    registry.load_handler_modules(app.config["EXTRA_HANDLER_MODULES"])
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with app.app_context():
        Dispatcher().run(stop)


if __name__ == "__main__":
    main()
