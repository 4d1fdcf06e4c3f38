"""The Dramatiq broker, configured from REDIS_URL before any `tasks.py` is imported."""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

_WEEK_MS = 7 * 24 * 3600 * 1000


class AppContext(Middleware):
    """Runs every message inside the Flask application context, as the services expect."""

    def __init__(self, app) -> None:
        self.app = app
        self.contexts: dict[int, object] = {}

    def before_process_message(self, broker, message) -> None:
        context = self.app.app_context()
        context.push()
        self.contexts[threading.get_ident()] = context

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        context = self.contexts.pop(threading.get_ident(), None)
        if context is not None:
            context.pop()

    after_skip_message = after_process_message


def configure_broker(redis_url: str, heartbeat_timeout_ms: int = 60_000) -> RedisBroker:
    """Create the Redis broker and make it Dramatiq's global broker (idempotent per URL)."""
    current = dramatiq.get_broker() if _has_broker() else None
    if isinstance(current, RedisBroker) and getattr(current, "_configured_url", None) == redis_url:
        return current
    broker = RedisBroker(url=redis_url, heartbeat_timeout=heartbeat_timeout_ms,
                         dead_message_ttl=_WEEK_MS)
    broker._configured_url = redis_url
    dramatiq.set_broker(broker)
    return broker


def _has_broker() -> bool:
    return dramatiq.broker.global_broker is not None
