"""Admission control: at most MAX_REQUESTS_IN_FLIGHT requests of one API process work at
once; a request that finds them all busy waits up to ADMISSION_WAIT_MS for one to finish
and is otherwise answered 503 (`overloaded`, Retry-After: 1) at once.

Why: gunicorn's gthread worker queues every connection it accepts in front of its threads,
without bound, so past the rate the machine can serve, each request first waits behind all
the earlier ones and latency grows until clients give up. Run gunicorn with more threads
than requests admitted: the threads beyond the limit answer the surplus, which keeps
gunicorn's queue short while the admitted requests keep their usual latency. The refusal
is written here, in front of Flask, because it has to cost next to nothing: on a machine
whose CPU is the bottleneck, a refusal as dear as a Flask request takes the CPU the
admitted requests need.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from app.errors import ServiceUnavailable

# Probes and scrapes must see the process as it is, busy or not.
_ALWAYS_ADMITTED = frozenset({"/health", "/ready", "/metrics"})


class Overloaded(ServiceUnavailable):
    error = "overloaded"
    message = "The service is at capacity; retry after the time in Retry-After."


class AdmissionControl:
    """WSGI middleware around the Flask app (see the module's docstring)."""

    def __init__(self, wsgi_app: Callable, limit: int, wait_seconds: float) -> None:
        self.wsgi_app = wsgi_app
        self.slots = threading.BoundedSemaphore(limit)
        self.wait_seconds = wait_seconds
        refusal = Overloaded(retry_after=1)
        self.body = json.dumps(refusal.body()).encode()
        # The headers app/auth.py puts on every JSON answer, fixed here since no request
        # context exists yet.
        self.headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(self.body))),
            *refusal.headers.items(),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
        ]

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in _ALWAYS_ADMITTED:
            return self.wsgi_app(environ, start_response)
        if not self.slots.acquire(timeout=self.wait_seconds):
            start_response("503 SERVICE UNAVAILABLE", self.headers)
            return [self.body]
        try:
            # Flask answers with a body already built (the API streams nothing), so the
            # place is free once the app returns.
            return self.wsgi_app(environ, start_response)
        finally:
            self.slots.release()


def init_app(app: Flask) -> None:
    limit = app.config["MAX_REQUESTS_IN_FLIGHT"]
    if limit:
        # Flask's documented way to add WSGI middleware (its type says "method").
        app.wsgi_app = AdmissionControl(  # type: ignore[method-assign]
            app.wsgi_app, limit, app.config["ADMISSION_WAIT_MS"] / 1000
        )
