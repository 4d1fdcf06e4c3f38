"""The operations surface's access rule: who may read `/metrics`, and what counts as this
machine. Kept apart from `app.auth`, which loads accounts, so the base stays free of domains."""

from __future__ import annotations

import functools
import hmac
import ipaddress

from flask import current_app, request

from app.errors import Forbidden, Unauthorized


def require_operator() -> None:
    """Guard `/metrics`: the bearer METRICS_TOKEN when one is set; without it, only
    requests made on this host, not relayed by a proxy on someone else's behalf."""
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Unauthorized(
                message="A metrics token is required.", headers={"WWW-Authenticate": "Bearer"}
            )
        return
    relayed = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    if relayed or not is_loopback(request.remote_addr):
        raise Forbidden(message="Without METRICS_TOKEN, metrics are served on loopback only.")


@functools.lru_cache(maxsize=1024)
def is_loopback(address: str | None) -> bool:
    """Whether `address` is this machine's. Remembered per address: an API running with the
    development key asks for every request's, and parsing one is about 25 Python calls."""
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False
