"""The Dramatiq broker, configured from REDIS_URL before any `tasks.py` is imported.

Three middlewares make the Redis broker dependable for the backbone:
- `QueuedRetries`: Dramatiq's retries, except that a retry Redis cannot take (it is down
  when the handler fails) is offered again until Redis takes it. Dramatiq logs the failed
  enqueue and acks the message all the same, so the message was lost (`make chaos` saw it,
  a database and a Redis restart close together).
- `DeadLetters`: every message whose retries run out is parked by `dead_letters.record`
  (workers/tasks.py) for admins to read and replay, whatever actor it was for; so is, at
  once, a message that failed with one of its actor's `throws` exceptions (a failure that
  retrying cannot mend, which Dramatiq would otherwise just drop).
- `RequeueOrphans`: a worker killed mid-message leaves it unacked; Dramatiq gives such
  messages back only during its "maintenance", which runs on a random 0.1 % of the broker
  commands naming that queue, so an idle queue could wait hours. Workers run that
  maintenance for every queue a few times per heartbeat timeout instead.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware, Retries
from flask import ctx

from app import compat

log = structlog.get_logger()

_WEEK_MS = 7 * 24 * 3600 * 1000
DEAD_LETTER_ACTOR = "dead_letters.record"
BROKER_SOCKET_TIMEOUT_S = 5


class AppContext(Middleware):
    """Runs every message inside the Flask application context, as the services expect."""

    def __init__(self, app) -> None:
        self.app = app
        self.contexts: dict[int, ctx.AppContext] = {}

    def before_process_message(self, broker, message) -> None:
        context = self.app.app_context()
        context.push()
        self.contexts[threading.get_ident()] = context

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        context = self.contexts.pop(threading.get_ident(), None)
        if context is not None:
            context.pop()

    after_skip_message = after_process_message


def until_redis_takes_it(send: Callable[[], None], message_id: str) -> None:
    """Call `send` (it queues something) until Redis answers, waiting longer each time up to
    5 s: a worker thread holds its message meanwhile, as Dramatiq's own ack does."""
    wait = 0.1
    while True:
        try:
            send()
            return
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("message_not_queued", message_id=message_id, retry_in=wait, error=str(exc))
            time.sleep(wait)
            wait = min(5.0, wait * 2)


class QueuedRetries(Retries):
    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        # Dramatiq counts the attempt in the message's options before it queues the retry;
        # each try starts from the options as they came.
        options = dict(message.options)

        def retry() -> None:
            message.options.clear()
            message.options.update(options)
            super(QueuedRetries, self).after_process_message(
                broker, message, result=result, exception=exception
            )

        until_redis_takes_it(retry, message.message_id)


class DeadLetters(Middleware):
    """Sends every message with `on_retry_exhausted=dead_letters.record` unless it names
    another target, so no actor's final failure goes unseen."""

    def before_enqueue(self, broker, message, delay) -> None:
        if message.actor_name != DEAD_LETTER_ACTOR:
            message.options.setdefault("on_retry_exhausted", DEAD_LETTER_ACTOR)

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        # Dramatiq's Retries middleware fails a message that raised one of its actor's
        # `throws` without retrying it, and without a word to `on_retry_exhausted`.
        if exception is None or message.actor_name == DEAD_LETTER_ACTOR:
            return
        throws = broker.get_actor(message.actor_name).options.get("throws")
        if not (throws and isinstance(exception, throws)):
            return
        parked = message.asdict()
        # Called while the exception is being handled, so this is its traceback.
        parked["options"] = {**message.options, "traceback": traceback.format_exc(limit=30)}
        target = broker.get_actor(message.options.get("on_retry_exhausted", DEAD_LETTER_ACTOR))
        until_redis_takes_it(
            lambda: target.send(parked, {"retries": message.options.get("retries", 0)}),
            message.message_id,
        )


def requeue_orphaned_messages(broker: RedisBroker) -> None:
    """Give the unacked messages of workers whose heartbeat stopped back to their queues.

    Dramatiq does this in its "maintenance", which it has no public call for.
    """
    for queue in sorted(broker.get_declared_queues() | broker.get_declared_delay_queues()):
        compat.run_broker_maintenance(broker, queue)


class RequeueOrphans(Middleware):
    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self.stop = threading.Event()

    def after_worker_boot(self, broker, worker) -> None:
        threading.Thread(
            target=self._loop, args=(broker,), name="requeue-orphans", daemon=True
        ).start()

    def before_worker_shutdown(self, broker, worker) -> None:
        self.stop.set()

    def _loop(self, broker: RedisBroker) -> None:
        while not self.stop.wait(self.interval_seconds):
            try:
                requeue_orphaned_messages(broker)
            except redis.exceptions.RedisError as exc:
                log.warning("requeue_orphans_failed", error=str(exc))


class ConfiguredBroker(RedisBroker):
    """The Redis broker, remembering the URL it was configured with."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url=url, **options)
        self.configured_url = url


def configure_broker(redis_url: str, heartbeat_timeout_ms: int = 60_000) -> RedisBroker:
    """Create the Redis broker and make it Dramatiq's global broker (idempotent per URL)."""
    current = dramatiq.get_broker() if _has_broker() else None
    if isinstance(current, ConfiguredBroker) and current.configured_url == redis_url:
        return current
    # A Redis that hangs (paused, or a network that drops packets) fails a command after
    # BROKER_SOCKET_TIMEOUT_S instead of holding the request, worker or dispatcher that sent
    # it; each of them treats that as Redis being down. Dramatiq's own client has no timeout.
    client = redis.Redis.from_url(
        redis_url,
        socket_timeout=BROKER_SOCKET_TIMEOUT_S,
        socket_connect_timeout=BROKER_SOCKET_TIMEOUT_S,
    )
    broker = ConfiguredBroker(
        redis_url, client=client, heartbeat_timeout=heartbeat_timeout_ms, dead_message_ttl=_WEEK_MS
    )
    broker.middleware[:] = [
        QueuedRetries() if isinstance(middleware, Retries) else middleware
        for middleware in broker.middleware
    ]
    broker.add_middleware(DeadLetters())
    dramatiq.set_broker(broker)
    return broker


def add_worker_middleware(broker: RedisBroker, app) -> None:
    """What only worker processes need: the app context and the orphan sweep."""
    broker.add_middleware(AppContext(app))
    compat.keep_waiting_retries_across_redis_drops()
    # Several sweeps per timeout, so a dead worker's messages return soon after it counts
    # as dead.
    broker.add_middleware(RequeueOrphans(max(1.0, broker.heartbeat_timeout / 5000)))


def _has_broker() -> bool:
    return dramatiq.broker.global_broker is not None
