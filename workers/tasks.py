"""The backbone's actors: apply one handler to one domain event, and park dead letters
(every actor's messages go to `dead_letters.record` when their retries run out, or at once
when they fail in a way retrying cannot mend: see app/broker.py)."""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog

from app import handlers as registry
from app.broker import DEAD_LETTER_ACTOR
from app.outbox import DomainEvent
from workers.models import DeadLetter

log = structlog.get_logger()


@dramatiq.actor(
    actor_name=DEAD_LETTER_ACTOR, queue_name="backbone", max_retries=20, time_limit=30_000
)
def record_dead_letter(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """Keep a message whose retries ran out, for admins to read and replay."""
    options = message.get("options") or {}
    DeadLetter._get_collection().update_one(
        {"message_id": message["message_id"]},
        {
            "$setOnInsert": DeadLetter(
                message_id=message["message_id"],
                queue_name=message["queue_name"],
                actor_name=message["actor_name"],
                args=list(message.get("args") or []),
                kwargs=message.get("kwargs") or {},
                options={
                    k: v
                    for k, v in options.items()
                    if k in {"max_retries", "min_backoff", "max_backoff"}
                },
                retries=retry_info.get("retries", 0),
                error=(options.get("traceback") or "")[-4000:],
            )
            .to_mongo()
            .to_dict()
        },
        upsert=True,
    )
    log.warning("dead_letter", actor=message["actor_name"], message_id=message["message_id"])


class UnknownHandler(Exception):
    """The message names a handler this release does not have: one removed or renamed
    while its messages were queued. Retrying cannot help, so the message becomes a dead
    letter at once, for an admin to replay once the handler exists again."""


@dramatiq.actor(
    actor_name="outbox.handle",
    queue_name="domain_events",
    max_retries=10,
    time_limit=120_000,
    throws=(UnknownHandler,),
)
def handle_domain_events(handler_name: str, events: list[dict[str, Any]]) -> None:
    """Apply one handler to one or more domain events (sent together by the dispatcher)."""
    handler = registry.handler_named(handler_name)
    if handler is None:
        raise UnknownHandler(f"No handler is named {handler_name!r} in this release.")
    if len(events) == 1:
        applied = registry.run_handler(handler, DomainEvent.from_message(events[0]))
        log.info(
            "domain_event_handled",
            handler=handler_name,
            event_id=events[0]["id"],
            type=events[0]["type"],
            applied=applied,
        )
        return
    try:
        registry.run_batch(handler, [DomainEvent.from_message(event) for event in events])
    except Exception as exc:  # noqa: BLE001 - any failure: go one by one instead
        # An event failed, or a redelivered batch was partly handled: each event goes on
        # alone, with its own retries and, if it keeps failing, its own dead letter.
        log.warning(
            "domain_event_batch_split", handler=handler_name, events=len(events), error=repr(exc)
        )
        for event in events:
            handle_domain_events.send_with_options(
                args=(handler_name, [event]), **handler.message_options
            )
        return
    log.info(
        "domain_events_handled", handler=handler_name, events=len(events), type=events[0]["type"]
    )
