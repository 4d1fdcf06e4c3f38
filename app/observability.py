"""JSON logs carrying a request id, and Prometheus metrics.

Under gunicorn each worker process counts on its own; the launcher sets
PROMETHEUS_MULTIPROC_DIR so `/metrics` adds them up (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
import uuid
from typing import Any

import structlog
from flask import Flask, Response, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from app import compat

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "endpoint"])

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_configured = False


def configure_logging(level: str = "INFO") -> None:
    """One JSON line per record on stdout, for structlog's events and for the standard
    library's (Flask's unhandled-exception log, werkzeug, Dramatiq, flask-limiter) alike,
    with the request id and any traceback as a string field. Idempotent, so tests and
    workers can call it freely."""
    global _configured
    if _configured:
        return
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    # `force`: replace whatever handler came first (Dramatiq's plain-text one in workers).
    logging.basicConfig(handlers=[handler], level=level.upper(), force=True)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    _configured = True


log = structlog.get_logger()


def note(event: str, **fields: Any) -> None:
    """Log what a service did: within a request, on the request's own line (`event` names
    the fields there), so that a request writes one line (a JSON line through the standard
    library's logging was about 0.1 ms of a hot write's CPU); elsewhere (a worker, a
    command), a line of its own."""
    if has_request_context():
        g.setdefault("notes", {})[event] = fields
    else:
        log.info(event, **fields)


def metrics_registry() -> CollectorRegistry:
    """The registry `/metrics` renders: every process's figures in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def render_metrics(extra: list | None = None) -> Response:
    registry = metrics_registry()
    for collector in extra or []:
        with contextlib.suppress(ValueError):  # already in the default registry
            registry.register(collector)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


# The children of REQUESTS and LATENCY by (method, route, status): `labels` checks and
# locks on every call for a child it made once. Routes, methods and statuses are few.
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _count(method: str, endpoint: str, status: int, elapsed: float) -> None:
    children = _children.get((method, endpoint, status))
    if children is None:
        children = _children[method, endpoint, status] = (
            REQUESTS.labels(method, endpoint, str(status)),
            LATENCY.labels(method, endpoint),
        )
    children[0].inc()
    children[1].observe(elapsed)


def init_app(app: Flask) -> None:
    configure_logging(app.config["LOG_LEVEL"])

    # Each hook takes the request and `g` from Flask's proxies once: every use of a proxy is
    # four Python calls.
    @app.before_request
    def _start() -> None:
        here = compat.current_g()
        incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
        here.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        here.started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=here.request_id)

    @app.after_request
    def _finish(response: Response) -> Response:
        here, asked = compat.current_g(), compat.current_request()
        elapsed = time.perf_counter() - here.get("started", time.perf_counter())
        rule = asked.url_rule
        _count(asked.method, rule.rule if rule else "unmatched", response.status_code, elapsed)
        response.headers["X-Request-ID"] = here.get("request_id", "")
        log.info(
            "request",
            method=asked.method,
            path=asked.path,
            status=response.status_code,
            duration_ms=round(elapsed * 1000, 1),
            **here.get("notes", {}),
        )
        return response
