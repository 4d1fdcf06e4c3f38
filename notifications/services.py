"""Notifications: the owner's inbox, their preferences, and push delivery.

`notify` is what other domains call from their domain event handlers, inside the
handler's transaction. It honours the owner's preferences for the kind: `in_app` puts the
message in the inbox, `push` records `notification.push_requested` in the outbox, so the
push leaves (from a worker) only once the transaction committed. The one exception is
`send_reset_code`, which accounts calls to push a password-reset code from the request.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from flask import current_app
from mongoengine.queryset import QuerySet
from pymongo.client_session import ClientSession

from accounts.services import ActiveOwner, active_owner, active_owners, city_timezone
from app.clock import utcnow
from app.db import batch, get_or_404
from app.outbox import DomainEvent, record_event
from notifications.domain_events import PUSH_REQUESTED, PushRequested
from notifications.models import (
    DEFAULT_PREFERENCES,
    KINDS,
    Notification,
    NotificationPreferences,
    PushRequest,
)
from notifications.push import PushMessage, provider_from_config, quiet_hours_hold
from notifications.templates import render

log = structlog.get_logger()


# --- preferences ---------------------------------------------------------------------


def preferences(
    user_id: ObjectId, session: ClientSession | None = None
) -> dict[str, dict[str, bool]]:
    """Every kind and channel: the owner's choices over the defaults."""
    merged = copy.deepcopy(DEFAULT_PREFERENCES)
    stored = NotificationPreferences._get_collection().find_one({"_id": user_id}, session=session)
    for kind, channels in ((stored or {}).get("channels") or {}).items():
        if kind in merged:
            merged[kind].update(channels)
    return merged


def update_preferences(
    user_id: ObjectId, changes: dict[str, dict[str, bool]]
) -> dict[str, dict[str, bool]]:
    """Set the given kinds and channels; the ones not given keep their value."""
    updates = {
        f"channels.{kind}.{channel}": value
        for kind, channels in changes.items()
        for channel, value in channels.items()
    }
    if updates:
        NotificationPreferences._get_collection().update_one(
            {"_id": user_id}, {"$set": {**updates, "updated_at": utcnow()}}, upsert=True
        )
        log.info("notification_preferences_updated", user_id=str(user_id), changed=sorted(updates))
    return preferences(user_id)


# --- sending -------------------------------------------------------------------------


def notify(
    session: ClientSession | None,
    user_id: str | ObjectId,
    kind: str,
    template: str,
    params: dict[str, Any],
    dedupe_key: str,
) -> bool:
    """Notify an owner, at most once per `dedupe_key`, through the channels they chose
    for `kind` (events, points, community, marketing).

    Returns False when the owner no longer exists, wants neither channel for this kind,
    or was already notified for `dedupe_key`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    owner = active_owner(user_id, session)
    if owner is None:
        return False
    channels = preferences(owner.id, session)[kind]
    if not (channels["in_app"] or channels["push"]):
        return False
    message = _Message(owner, kind, template, params)
    notification_id = None
    if channels["in_app"]:
        result = Notification._get_collection().update_one(
            {"dedupe_key": dedupe_key},
            {"$setOnInsert": message.inbox_entry()},
            upsert=True,
            session=session,
        )
        if result.upserted_id is None:
            return False
        notification_id = str(result.upserted_id)
    elif not _claim_push(owner.id, dedupe_key, session):
        return False
    if channels["push"]:
        message.request_push(session, dedupe_key, notification_id)
    return True


@dataclass
class _Message:
    """One notification to one owner (their locale and city read with them)."""

    owner: ActiveOwner
    kind: str
    template: str
    params: dict[str, Any]
    rendered: tuple[str, str] | None = None

    @property
    def text(self) -> tuple[str, str]:
        if self.rendered is None:
            self.rendered = render(self.template, self.owner.locale or "zh-CN", self.params)
        return self.rendered

    def inbox_entry(self) -> dict[str, Any]:
        title, body = self.text
        return {
            "user_id": self.owner.id,
            "kind": self.kind,
            "template": self.template,
            "title": title,
            "body": body,
            "data": self.params,
            "created_at": utcnow(),
        }

    def request_push(
        self, session: ClientSession | None, dedupe_key: str, notification_id: str | None
    ) -> None:
        """Record the push for the workers, in the caller's transaction."""
        title, body = self.text
        record_event(
            session,
            PUSH_REQUESTED,
            PushRequested(
                str(self.owner.id), self.kind, title, body, dict(self.params), notification_id
            ),
            subject_id=dedupe_key,
            city_code=self.owner.city_code,
        )


def notify_many(
    session: ClientSession,
    user_ids: Collection[ObjectId],
    kind: str,
    template: str,
    params: dict[str, Any],
    dedupe_prefix: str,
) -> int:
    """`notify` for many owners at once (a drop's losers), inside a unit of
    `app.db.transaction`: the owners and their preferences are read in two commands, and
    the inbox entries and push requests join the unit's one command of writes, whatever
    their number. Each owner's notice is keyed `<dedupe_prefix>:<owner id>`, so a prefix
    must name one cause. Returns how many owners it reached."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    owners = active_owners(user_ids, session)
    chosen = {
        stored["_id"]: stored.get("channels") or {}
        for stored in NotificationPreferences._get_collection().find(
            {"_id": {"$in": list(owners)}}, session=session
        )
    }
    writes = batch(session)
    rendered: dict[str, tuple[str, str]] = {}
    reached = 0
    for owner_id, owner in owners.items():
        channels = {**DEFAULT_PREFERENCES[kind], **chosen.get(owner_id, {}).get(kind, {})}
        if not (channels["in_app"] or channels["push"]):
            continue
        locale = owner.locale or "zh-CN"
        message = _Message(owner, kind, template, params, rendered.get(locale))
        rendered[locale] = message.text  # rendered once per locale, not per owner
        dedupe_key = f"{dedupe_prefix}:{owner_id}"
        notification_id = None
        if channels["in_app"]:
            notification_id = ObjectId()
            writes.update(
                Notification._get_collection(),
                {"dedupe_key": dedupe_key},
                {"$setOnInsert": {"_id": notification_id, **message.inbox_entry()}},
                upsert=True,
            )
        else:
            writes.update(
                PushRequest._get_collection(),
                {"_id": dedupe_key},
                {"$setOnInsert": {"user_id": owner_id, "created_at": utcnow()}},
                upsert=True,
            )
        if channels["push"]:
            message.request_push(
                session, dedupe_key, str(notification_id) if notification_id else None
            )
        reached += 1
    return reached


def _claim_push(user_id: ObjectId, dedupe_key: str, session: ClientSession | None) -> bool:
    """Whether this is the first push-only notice for `dedupe_key` (the inbox entry's unique
    key plays that part when there is one)."""
    claimed = PushRequest._get_collection().update_one(
        {"_id": dedupe_key},
        {"$setOnInsert": {"user_id": user_id, "created_at": utcnow()}},
        upsert=True,
        session=session,
    )
    return claimed.upserted_id is not None


def push_hold(event: DomainEvent[PushRequested], now: datetime | None = None) -> timedelta | None:
    """How long a requested push must wait for the owner's quiet hours to end, or None.
    Only marketing waits: what the owner did or booked is news they expect at once."""
    if event.payload.kind != "marketing":
        return None
    return quiet_hours_hold(now or utcnow(), city_timezone(event.city_code))


def send_reset_code(user_id: ObjectId, locale: str, code: str, valid_for: timedelta) -> str:
    """Push a password-reset code to the owner at once, straight to the provider from the
    request: the owner is waiting for it, and it must not rest in clear in the inbox, the
    outbox or a queue. Returns the push's id; raises when the provider fails."""
    minutes = int(valid_for.total_seconds() // 60)
    title, body = render("password_reset_code", locale, {"code": code, "minutes": minutes})
    message = PushMessage(
        id=str(ObjectId()),
        user_id=str(user_id),
        kind="security",
        title=title,
        body=body,
        data={"code": code},
    )
    provider_from_config(current_app.config).send(message)
    return message.id


def send_push(event: DomainEvent[PushRequested]) -> bool:
    """Hand a requested push to the configured provider, unless the owner has gone or
    turned push off for the kind since it was requested. Raises when the provider fails."""
    push = event.payload
    user_id = ObjectId(push.user_id)
    if active_owner(user_id) is None:
        return False
    if not preferences(user_id)[push.kind]["push"]:
        log.info("push_skipped", push_id=event.id, reason="push_turned_off")
        return False
    provider_from_config(current_app.config).send(
        PushMessage(
            id=event.id,
            user_id=push.user_id,
            kind=push.kind,
            title=push.title,
            body=push.body,
            data=push.data,
        )
    )
    return True


# --- the inbox -----------------------------------------------------------------------


def inbox(user_id: ObjectId, unread_only: bool = False) -> QuerySet:
    notifications = Notification.objects(user_id=user_id)
    return notifications.filter(read_at=None) if unread_only else notifications


def mark_read(user_id: ObjectId, notification_id: str) -> None:
    """Mark one of the owner's notifications read; another owner's is simply not found."""
    notification = get_or_404(Notification, notification_id, user_id=user_id)
    # Conditional, so a repeated read keeps the first read time.
    Notification.objects(pk=notification.pk, read_at=None).update_one(set__read_at=utcnow())


def mark_all_read(user_id: ObjectId) -> int:
    result = Notification._get_collection().update_many(
        {"user_id": user_id, "read_at": None}, {"$set": {"read_at": utcnow()}}
    )
    return result.modified_count


# --- personal data -------------------------------------------------------------------


def export_notifications(user_id: Any) -> dict[str, Any]:
    oid = ObjectId(str(user_id))
    return {
        "preferences": preferences(oid),
        "inbox": [
            {
                "id": n.pk,
                "kind": n.kind,
                "title": n.title,
                "body": n.body,
                "created_at": n.created_at,
                "read_at": n.read_at,
            }
            for n in Notification.objects(user_id=oid).order_by("-id")
        ],
    }


def erase_user_data(session: ClientSession | None, user_id: str) -> None:
    """An erased owner's inbox, preferences and push records go entirely: nothing in them
    is a record the brand must keep."""
    oid = ObjectId(user_id)
    Notification._get_collection().delete_many({"user_id": oid}, session=session)
    PushRequest._get_collection().delete_many({"user_id": oid}, session=session)
    NotificationPreferences._get_collection().delete_one({"_id": oid}, session=session)
