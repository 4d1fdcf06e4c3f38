"""Accounts' periodic jobs."""

from __future__ import annotations

import dramatiq

from accounts import services


@dramatiq.actor(
    actor_name="accounts.forget_client_fingerprints",
    queue_name="accounts",
    max_retries=3,
    time_limit=600_000,
)
def forget_client_fingerprints() -> None:
    """Sign-up fingerprints are kept CLIENT_FINGERPRINT_DAYS, then dropped."""
    services.forget_client_fingerprints()
