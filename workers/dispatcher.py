"""The outbox dispatcher: moves committed domain events to Dramatiq, in commit order.

It follows the outbox collection's change stream, which shows an event once the
transaction that recorded it has committed, and never one that was rolled back. Events
are written once and never marked, so dispatching costs MongoDB one small write per batch
rather than one per event.

One dispatcher leads at a time, by a lease on the cursor document (`DispatchCursor`);
others stand by and take over when the lease runs out, or at once when the leader stops
cleanly. After each batch is sent, the leader saves the stream's resume token in the same
conditional write that renews its lease, so a dispatcher that lost the lead cannot move
the cursor. After any failure (Redis down, a crash, a change of leader) dispatching
resumes from the saved token: events sent after it are sent again, which handlers shrug
off (they are idempotent by event id).

With no saved token, or one the server no longer holds history for (the oplog is
bounded: an hour or 100,000 writes on the embedded server), the leader opens a new stream
and first sends every outbox event from a little before the last commit it sent, so
nothing committed while no dispatcher ran is lost.

Messages group up to `Handler.batch_size` events for one handler, so a worker applies
them in one transaction (see workers/tasks.py). Run it with `python -m workers.dispatcher`.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import redis.exceptions
import structlog
from pymongo.change_stream import ChangeStream, CollectionChangeStream
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from app import handlers as registry
from app.clock import utcnow
from app.handlers import HandledEvent
from app.outbox import DomainEvent, OutboxEvent, id_floor
from workers.models import CURSOR_ID, DispatchCursor

log = structlog.get_logger()

# Events stay this long for audit and catch-up, then go.
RETENTION = timedelta(days=7)
# Handlers' markers must outlive every redelivery: Dramatiq retries for hours, and a
# catch-up resends events up to RETENTION old.
MARKER_RETENTION = timedelta(days=30)
SWEEP_EVERY = timedelta(minutes=10)
# An event commits after its `occurred_at`, at most a transaction's lifetime later (60 s
# on MongoDB and the embedded server), so a catch-up scan reaches back this far.
COMMIT_DELAY = timedelta(minutes=2)
# The server's answer when a resume token points before the history it keeps.
CHANGE_STREAM_HISTORY_LOST = 286


class LeaseLost(Exception):
    """Another dispatcher took the lead: this one must stop sending."""


class Dispatcher:
    def __init__(
        self,
        batch_size: int = 500,
        lease_seconds: int = 30,
        wait_ms: int = 100,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.wait_ms = wait_ms
        self.max_backoff_seconds = max_backoff_seconds
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._renewed_at = datetime.min.replace(tzinfo=UTC)
        self._next_sweep = utcnow()

    # The lead --------------------------------------------------------------------------

    def acquire(self, now: datetime | None = None) -> bool:
        """Take the lead if it is free, or renew it if it is ours. Returns whether we lead."""
        now = now or utcnow()
        cursors = DispatchCursor._get_collection()
        lead = {"holder": self.name, "lease_until": now + self.lease}
        try:
            cursors.insert_one({"_id": CURSOR_ID, **lead})
        except DuplicateKeyError:
            taken = cursors.update_one(
                {"_id": CURSOR_ID, "$or": [{"holder": self.name}, {"lease_until": {"$lt": now}}]},
                {"$set": lead},
            )
            if not taken.matched_count:
                return False
        self._renewed_at = now
        return True

    def release(self) -> None:
        """Let a standby take over now rather than when the lease runs out."""
        DispatchCursor._get_collection().update_one(
            {"_id": CURSOR_ID, "holder": self.name}, {"$set": {"lease_until": utcnow()}}
        )

    def _save(self, **position: Any) -> None:
        """Renew the lease, saving `position` with it. Raises LeaseLost if another
        dispatcher has taken the lead."""
        now = utcnow()
        saved = DispatchCursor._get_collection().update_one(
            {"_id": CURSOR_ID, "holder": self.name},
            {"$set": {**position, "lease_until": now + self.lease}},
        )
        if not saved.matched_count:
            raise LeaseLost
        self._renewed_at = now

    def _keep_lease(self) -> None:
        # Renewed well before it runs out, so nothing is sent on a lease that may have
        # passed to another dispatcher.
        if utcnow() - self._renewed_at > self.lease / 3:
            self._save()

    # Dispatching -----------------------------------------------------------------------

    def open(self) -> CollectionChangeStream:
        """The outbox's change stream from the saved position; when there is none to
        resume from, a new stream, after sending what the outbox holds since the last
        commit sent (every event, the first time)."""
        cursor = DispatchCursor.read()
        if cursor.get("resume_token"):
            try:
                return self._watch(resume_after=cursor["resume_token"])
            except OperationFailure as exc:
                if exc.code != CHANGE_STREAM_HISTORY_LOST:
                    raise
                log.warning(
                    "outbox_stream_history_lost",
                    dispatched_through=cursor.get("dispatched_through"),
                )
        opened_at = utcnow()
        stream = self._watch()
        through = cursor.get("dispatched_through")
        self.catch_up(through - COMMIT_DELAY if through else None)
        # Whatever commits from here on, the stream shows.
        self._save(resume_token=stream.resume_token, dispatched_through=opened_at)
        return stream

    def _watch(self, **options: Any) -> CollectionChangeStream:
        return OutboxEvent._get_collection().watch(
            [{"$match": {"operationType": "insert"}}],
            batch_size=self.batch_size,
            max_await_time_ms=self.wait_ms,
            **options,
        )

    def catch_up(self, since: datetime | None) -> int:
        """Send every outbox event that occurred since `since` (all when None), oldest
        first. Returns how many."""
        query = {} if since is None else {"_id": {"$gte": id_floor(since)}}
        sent = 0
        found = OutboxEvent._get_collection().find(query).sort("_id", 1)
        for batch in _chunks(found.batch_size(self.batch_size), self.batch_size):
            self._keep_lease()
            self.send(batch)
            sent += len(batch)
        log.info("outbox_caught_up", events=sent, since=since)
        return sent

    def pump(self, stream: ChangeStream[Any]) -> int:
        """Send the next committed events (waiting up to `wait_ms` for some) and save the
        position after them. Returns how many were sent."""
        changes = self._read(stream)
        if changes:
            self._keep_lease()
            self.send([change["fullDocument"] for change in changes])
            self._save(resume_token=stream.resume_token, dispatched_through=changes[-1]["wallTime"])
        elif utcnow() - self._renewed_at > self.lease / 3:
            # Idle: keep the lead, and the saved position within the server's history.
            self._save(resume_token=stream.resume_token)
        if utcnow() >= self._next_sweep:
            self.sweep()
        return len(changes)

    def _read(self, stream: ChangeStream[Any]) -> list[dict[str, Any]]:
        """Up to `batch_size` changes: those already there, or the first to arrive within
        `wait_ms` and whatever follows it within another `wait_ms`."""
        changes: list[dict[str, Any]] = []
        flush_at = None
        while len(changes) < self.batch_size:
            change = stream.try_next()
            if change is None:
                break
            changes.append(change)
            flush_at = flush_at or time.monotonic() + self.wait_ms / 1000
            if time.monotonic() >= flush_at:
                break
        return changes

    def send(self, docs: list[dict[str, Any]]) -> None:
        from workers.tasks import handle_domain_events

        for handler, events in _by_handler(docs):
            for batch in _chunks(events, handler.batch_size):
                handle_domain_events.send_with_options(
                    args=(handler.name, batch), **handler.message_options
                )

    def sweep(self) -> None:
        """Delete events past their retention that have surely been sent, and markers past
        theirs."""
        now = utcnow()
        self._next_sweep = now + SWEEP_EVERY
        # The `_id` range finds them by the index; the time field confirms, for ids that
        # are not ObjectIds (events recorded before ids were).
        cutoff = now - MARKER_RETENTION
        HandledEvent._get_collection().delete_many(
            {"_id": {"$lt": id_floor(cutoff)}, "handled_at": {"$lt": cutoff}}
        )
        cursor = DispatchCursor.read()
        if cursor.get("dispatched_through"):
            cutoff = min(now - RETENTION, cursor["dispatched_through"] - COMMIT_DELAY)
            OutboxEvent._get_collection().delete_many(
                {"_id": {"$lt": id_floor(cutoff)}, "occurred_at": {"$lt": cutoff}}
            )

    def lead(self, stop: threading.Event) -> None:
        """Dispatch until `stop` is set. Raises LeaseLost when another dispatcher took the
        lead."""
        while not stop.is_set():
            try:
                with self.open() as stream:
                    while not stop.is_set():
                        self.pump(stream)
            except OperationFailure as exc:
                # The open stream fell behind the server's history: open() catches up.
                if exc.code != CHANGE_STREAM_HISTORY_LOST:
                    raise
                log.warning("outbox_stream_history_lost")

    def run(self, stop: threading.Event) -> None:
        log.info("dispatcher_started", dispatcher=self.name)
        backoff = 0.0
        while not stop.is_set():
            try:
                if not self.acquire():
                    stop.wait(self.lease.total_seconds() / 6)
                    continue
                log.info("dispatcher_leading", dispatcher=self.name)
                self.lead(stop)
            except LeaseLost:
                log.warning("dispatcher_lead_lost", dispatcher=self.name)
                continue
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
            backoff = 0.0
        try:
            self.release()
        except PyMongoError as exc:
            log.warning("dispatcher_release_failed", error=str(exc))
        log.info("dispatcher_stopped", dispatcher=self.name)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _by_handler(docs: list[dict[str, Any]]) -> list[tuple[registry.Handler, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    handlers: dict[str, registry.Handler] = {}
    for doc in docs:
        event = DomainEvent.from_document(doc).to_message()
        for handler in registry.handlers_for(doc["type"]):
            handlers[handler.name] = handler
            groups[handler.name].append(event)
    return [(handlers[name], events) for name, events in groups.items()]


def main() -> None:
    from app import create_app

    app = create_app(serves_http=False)
    registry.load_handler_modules(app.config["EXTRA_HANDLER_MODULES"])
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with app.app_context():
        Dispatcher(lease_seconds=app.config["DISPATCHER_LEASE_SECONDS"]).run(stop)


if __name__ == "__main__":
    main()
