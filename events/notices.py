"""What events tell owners: a cancellation, a promotion from the waitlist, and reminders
before the start. Each message's dedupe key names its cause, so nothing is sent twice."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from accounts.services import city_timezones
from app.clock import utcnow
from events.listings import city_zone
from events.models import BY_EVENT, CANCELLED, CONFIRMED, PUBLISHED, Event, Registration
from notifications.services import notify

log = structlog.get_logger()


# (template, sent when the start is at most this far away, ...and more than this far away)
REMINDERS = (
    ("event_reminder_24h", timedelta(hours=24), timedelta(hours=2)),
    ("event_reminder_2h", timedelta(hours=2), timedelta(0)),
)


def _notice_params(event: dict[str, Any] | Event, zone: str) -> dict[str, Any]:
    local_start = event["starts_at"].astimezone(ZoneInfo(zone))
    return {
        "event_id": str(event["_id"] if isinstance(event, dict) else event.pk),
        "title": event["title"],
        "venue": event["venue"],
        "starts_at": local_start.strftime("%Y-%m-%d %H:%M (UTC%z)"),
    }


def notify_event_cancelled(session: ClientSession | None, event_id: str, cause: str) -> int:
    """Tell every owner whose registration the cancellation ended. `cause` (the domain
    event id) makes each message unique, so a redelivery sends nothing twice."""
    event = Event._get_collection().find_one({"_id": ObjectId(event_id)}, session=session)
    if event is None:
        return 0
    params = {
        **_notice_params(event, city_zone(event["city_code"])),
        "reason": event.get("cancel_reason") or "",
    }
    sent = 0
    for registration in Registration._get_collection().find(
        {"event_id": event["_id"], "status": CANCELLED},
        {"user_id": 1, "cancelled_by": 1},
        session=session,
    ):
        if registration.get("cancelled_by") != BY_EVENT:
            continue  # left on their own before the cancellation
        sent += notify(
            session,
            registration["user_id"],
            "events",
            "event_cancelled",
            params,
            dedupe_key=f"{cause}:event_cancelled:{registration['user_id']}",
        )
    return sent


def notify_promoted(session: ClientSession | None, event_id: str, user_id: str, cause: str) -> bool:
    event = Event._get_collection().find_one({"_id": ObjectId(event_id)}, session=session)
    if event is None:
        return False
    params = _notice_params(event, city_zone(event["city_code"]))
    return notify(
        session,
        user_id,
        "events",
        "registration_promoted",
        params,
        dedupe_key=f"{cause}:registration_promoted",
    )


def send_reminders(now: datetime | None = None) -> int:
    """Remind confirmed owners 24 hours and 2 hours before the start, once each: the
    notification's dedupe key names the registration and the reminder, so concurrent or
    repeated runs (two schedulers) cannot send one twice."""
    now = now or utcnow()
    zones = city_timezones()
    horizon = max(within for _, within, _ in REMINDERS)
    sent = 0
    for event in Event._get_collection().find(
        {"status": PUBLISHED, "starts_at": {"$gt": now, "$lte": now + horizon}}
    ):
        left = event["starts_at"] - now
        template = next(name for name, within, beyond in REMINDERS if beyond < left <= within)
        params = _notice_params(event, city_zone(event["city_code"], zones))
        for registration in Registration._get_collection().find(
            {"event_id": event["_id"], "status": CONFIRMED}, {"user_id": 1}
        ):
            # A concurrent run may insert the same reminder first: it is sent once.
            with suppress(DuplicateKeyError):
                sent += notify(
                    None,
                    registration["user_id"],
                    "events",
                    template,
                    params,
                    dedupe_key=f"reminder:{registration['_id']}:{template}",
                )
    if sent:
        log.info("reminders_sent", count=sent)
    return sent
