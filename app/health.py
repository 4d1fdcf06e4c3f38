"""`/health`, `/ready` and `/metrics`, served at the root where load balancers and
Prometheus look for them. `/metrics` adds the installed domains' collectors (see
`app.domains`) to the request figures."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify

from app import db
from app.observability import render_metrics
from app.operators import require_operator

blueprint = Blueprint("health", __name__)


def redis_client() -> redis.Redis:
    """A short-timeout client shared by this process (health checks, locks)."""
    client = current_app.extensions.get("redis")
    if client is None:
        timeout = current_app.config["REDIS_TIMEOUT_MS"] / 1000
        client = redis.Redis.from_url(
            current_app.config["REDIS_URL"], socket_timeout=timeout, socket_connect_timeout=timeout
        )
        current_app.extensions["redis"] = client
    return client


def redis_ok() -> bool:
    try:
        return bool(redis_client().ping())
    except redis.exceptions.RedisError:
        return False


@blueprint.get("/health")
def health():
    return jsonify(status="ok")


@blueprint.get("/ready")
def ready():
    checks = {"mongodb": db.ping(), "redis": redis_ok()}
    ok = all(checks.values())
    response = jsonify(
        status="ready" if ok else "unavailable",
        checks={name: "ok" if up else "down" for name, up in checks.items()},
    )
    if not ok:
        response.status_code = 503
        response.headers["Retry-After"] = "5"
    return response


@blueprint.get("/metrics")
def metrics():
    require_operator()
    return render_metrics(current_app.extensions.get("metrics_collectors", []))
