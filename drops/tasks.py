"""Drops' actors and handlers: the job that decides a drop's entries (`drops.run`), the
minute's sweep that starts it for every drop due (`drops.sweep`), and telling entrants.

`drops.run` passes the drop's lease token along its chain of messages (see
`drops.allocation`), so that a second message for one drop, a retry or the sweep's, finds
the drop held and stops instead of starting a second chain.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import dramatiq
from bson import ObjectId
from pymongo.client_session import ClientSession

from app.clock import utcnow
from app.handlers import handles
from app.outbox import DomainEvent
from drops import allocation, notices
from drops.domain_events import (
    DROP_CREATED,
    DROP_ENTRIES_DECIDED,
    DropCreated,
    EntriesDecided,
)
from drops.launch import drops_due


# A pass hands over after PASS_SECONDS of work; the limit is for a pass stuck on its database.
@dramatiq.actor(actor_name="drops.run", queue_name="drops", max_retries=20, time_limit=600_000)
def run(drop_id: str, token: str) -> None:
    """One pass over a drop; the next is sent with the token while entries wait."""
    next_in = allocation.run(ObjectId(drop_id), token)
    if next_in is not None:
        run.send_with_options(args=(drop_id, token), delay=int(next_in * 1000))


@dramatiq.actor(actor_name="drops.sweep", queue_name="drops", max_retries=3, time_limit=60_000)
def sweep() -> None:
    """Start the job of every drop due whose chain stopped (a message lost with Redis)."""
    for drop_id in drops_due(utcnow()):
        run.send(str(drop_id), secrets.token_hex(8))


@handles(DROP_CREATED, name="drops.start", transactional=False)
def start(event: DomainEvent[DropCreated], session: None) -> None:
    """Start the drop's job when it opens (at once, if it is open)."""
    opens_at = event.payload.opens_at
    delay = max(0.0, (datetime.fromisoformat(opens_at) - utcnow()).total_seconds())
    run.send_with_options(args=(event.subject_id, secrets.token_hex(8)), delay=int(delay * 1000))


@handles(DROP_ENTRIES_DECIDED, name="drops.tell_entrants", batch_size=2)
def tell_entrants(event: DomainEvent[EntriesDecided], session: ClientSession) -> None:
    notices.tell_entrants(session, event)
