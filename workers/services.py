"""Operating the backbone: dead letters (read, replay) and the figures `/metrics` shows."""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq
import redis.exceptions
import structlog
from dramatiq import Message
from mongoengine.queryset import QuerySet

from app.auth import Caller
from app.clock import utcnow
from app.db import get_or_404
from app.errors import ServiceUnavailable
from workers import errors
from workers.models import DeadLetter

log = structlog.get_logger()


def dead_letters(caller: Caller, replayed: bool | None = None) -> QuerySet:
    caller.require_admin()
    letters = DeadLetter.objects
    if replayed is not None:
        letters = (
            letters.filter(replayed_at__ne=None) if replayed else letters.filter(replayed_at=None)
        )
    return letters


def replay_dead_letter(caller: Caller, dead_letter_id: str) -> DeadLetter:
    """Send the parked message again (same actor, arguments and retry options, fresh retry
    count) and mark the letter replayed, once."""
    caller.require_admin()
    letter = get_or_404(DeadLetter, dead_letter_id)
    replay_id = str(uuid.uuid4())
    letters = DeadLetter._get_collection()
    # Claimed before sending, so two admins clicking at once send it once.
    claimed = letters.update_one(
        {"_id": letter.pk, "replayed_at": None},
        {
            "$set": {
                "replayed_at": utcnow(),
                "replayed_by": caller.user.pk,
                "replay_message_id": replay_id,
            }
        },
    )
    if not claimed.modified_count:
        raise errors.AlreadyReplayed()
    message: Message[Any] = Message(
        queue_name=letter.queue_name,
        actor_name=letter.actor_name,
        args=tuple(letter.args),
        kwargs=dict(letter.kwargs),
        options=dict(letter.options),
        message_id=replay_id,
        message_timestamp=int(utcnow().timestamp() * 1000),
    )
    try:
        dramatiq.get_broker().enqueue(message)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        letters.update_one(
            {"_id": letter.pk, "replay_message_id": replay_id},
            {"$unset": {"replayed_at": "", "replayed_by": "", "replay_message_id": ""}},
        )
        raise ServiceUnavailable(
            message="The message queue is unavailable; retry later.", retry_after=5
        ) from exc
    log.info(
        "dead_letter_replayed",
        dead_letter_id=dead_letter_id,
        actor=letter.actor_name,
        by=caller.id,
        message_id=replay_id,
    )
    letter.reload()
    return letter
