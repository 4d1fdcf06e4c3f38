"""The outbox dispatcher: moves committed domain events to Dramatiq, one message per
registered handler.

Several dispatchers may run (one per host is typical): each claims a batch under a lease
with a token of its own, so two never send the same record at once; a dispatcher that dies
mid-batch leaves its lease to expire and another picks the batch up. A record sent but not
yet marked when the dispatcher dies is sent again: handlers are idempotent by event id.

Run it with `python -m workers.dispatcher`.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from datetime import timedelta

import redis.exceptions
import structlog

from accounts.models import utcnow
from app.outbox import DISPATCHED, PENDING, DomainEvent, OutboxEvent
from workers import registry

log = structlog.get_logger()


class Dispatcher:
    def __init__(self, batch_size: int = 200, lease_seconds: int = 30,
                 idle_seconds: float = 0.1, max_backoff_seconds: float = 5.0) -> None:
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.idle_seconds = idle_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def _claim(self) -> tuple[str, list[dict]]:
        outbox = OutboxEvent._get_collection()
        now = utcnow()
        claimable = {"status": PENDING,
                     "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}]}
        candidates = [doc["_id"] for doc in outbox.find(claimable, {"_id": 1})
                      .sort("occurred_at", 1).limit(self.batch_size)]
        if not candidates:
            return "", []
        token = f"{self.name}:{uuid.uuid4().hex}"
        outbox.update_many({"_id": {"$in": candidates}, **claimable},
                           {"$set": {"lease_owner": token, "lease_until": now + self.lease}})
        claimed = list(outbox.find({"lease_owner": token}).sort("occurred_at", 1))
        return token, claimed

    def dispatch_once(self) -> int:
        """Send one batch. Returns how many events were dispatched."""
        from workers.tasks import handle_domain_event

        token, claimed = self._claim()
        if not claimed:
            return 0
        outbox = OutboxEvent._get_collection()
        sent: list[str] = []
        try:
            for doc in claimed:
                event = DomainEvent.from_document(doc)
                for handler in registry.handlers_for(event.type):
                    handle_domain_event.send_with_options(
                        args=(handler.name, event.to_message()), **handler.message_options)
                sent.append(doc["_id"])
        finally:
            if sent:
                outbox.update_many(
                    {"_id": {"$in": sent}, "lease_owner": token},
                    {"$set": {"status": DISPATCHED, "dispatched_at": utcnow()},
                     "$unset": {"lease_owner": "", "lease_until": ""}})
            unsent = [doc["_id"] for doc in claimed if doc["_id"] not in set(sent)]
            if unsent:
                # Give them back at once rather than after the lease: Redis may return soon.
                outbox.update_many({"_id": {"$in": unsent}, "lease_owner": token},
                                   {"$unset": {"lease_owner": "", "lease_until": ""}})
        return len(sent)

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
