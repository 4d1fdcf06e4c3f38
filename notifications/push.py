"""Push delivery: a provider interface, its `log` and `webhook` providers, and quiet hours.

Pushes leave only from workers, after the transaction that asked for them committed
(`notification.push_requested` goes through the outbox). A provider raises on failure so
Dramatiq retries the message with back-off.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import requests
import structlog

log = structlog.get_logger()

QUIET_FROM = time(22, 0)
QUIET_UNTIL = time(8, 0)
SIGNATURE_HEADER = "X-Signature"


@dataclass(frozen=True)
class PushMessage:
    # The domain event that asked for the push: stable across retries, so a receiver can
    # drop a message it has already shown.
    id: str
    user_id: str
    kind: str
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)


class PushProvider(Protocol):
    def send(self, message: PushMessage) -> None: ...


class LogProvider:
    """Development default: the push is a log line. Under ENVIRONMENT=development (`make
    run`) the line carries the body too, so a password reset can be finished from the
    terminal; anywhere else the body (a reset code) never reaches a log."""

    def __init__(self, show_bodies: bool = False) -> None:
        self.show_bodies = show_bodies

    def send(self, message: PushMessage) -> None:
        log.info(
            "push_sent",
            provider="log",
            push_id=message.id,
            user_id=message.user_id,
            kind=message.kind,
            title=message.title,
            **({"body": message.body} if self.show_bodies else {}),
        )


class WebhookProvider:
    """POSTs the message as JSON, signed with HMAC-SHA256 of the raw body (hex, in
    X-Signature); any non-2xx answer or network error raises, so the message is retried."""

    def __init__(self, url: str, secret: str, timeout_seconds: float = 5.0) -> None:
        self.url = url
        self.secret = secret.encode()
        self.timeout_seconds = timeout_seconds

    def send(self, message: PushMessage) -> None:
        body = json.dumps(
            asdict(message), ensure_ascii=False, separators=(",", ":"), sort_keys=True
        ).encode()
        response = requests.post(
            self.url,
            data=body,
            timeout=self.timeout_seconds,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body)},
        )
        response.raise_for_status()
        log.info("push_sent", provider="webhook", push_id=message.id, status=response.status_code)


def sign(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def provider_from_config(config: dict[str, Any]) -> PushProvider:
    if config["PUSH_PROVIDER"] == "webhook":
        return WebhookProvider(config["PUSH_WEBHOOK_URL"], config["PUSH_WEBHOOK_SECRET"])
    return LogProvider(show_bodies=config.get("ENVIRONMENT") == "development")


def quiet_hours_hold(now: datetime, timezone: str) -> timedelta | None:
    """How long a marketing push must wait: until 08:00 in `timezone` when `now` falls in
    22:00-08:00 there, else None."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    if QUIET_UNTIL <= local.time() < QUIET_FROM:
        return None
    release_day = local.date() + timedelta(days=1) if local.time() >= QUIET_FROM else local.date()
    release = datetime.combine(release_day, QUIET_UNTIL, tzinfo=zone)
    # Subtract in UTC: aware datetimes sharing a tzinfo subtract as wall clocks, which is
    # wrong across a DST change.
    return release.astimezone(UTC) - now.astimezone(UTC)
