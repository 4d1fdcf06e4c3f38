"""What a drop tells its entrants: won, lost, or refused and why, once each entry is
decided. The allocation records a `drop.entries_decided` event per batch of decisions (up
to 500 owners); its handler notifies them in a few commands (`notify_many`) and records
how many it told, and when, for the drop's figures (the time from its close to the last
owner told): in a document of its own, so that handlers running side by side never
conflict on the drop's."""

from __future__ import annotations

from collections import defaultdict

from bson import ObjectId
from pymongo.client_session import ClientSession

from app.clock import utcnow
from app.outbox import DomainEvent
from drops.domain_events import EntriesDecided
from drops.models import EVENT, REFUSED, Drop, Told
from notifications.services import notify_many


def tell_entrants(session: ClientSession, event: DomainEvent[EntriesDecided]) -> int:
    """Notify the owners the event names of their entries' outcome; returns how many."""
    drop = Drop._get_collection().find_one(
        {"_id": ObjectId(event.subject_id)}, {"title": 1, "target_type": 1}, session=session
    )
    if drop is None:
        return 0
    outcome = event.payload.outcome
    kind = "events" if drop["target_type"] == EVENT else "points"
    params = {"title": drop["title"], "drop_id": event.subject_id}
    owners = [ObjectId(user_id) for user_id in event.payload.user_ids]
    groups: dict[str | None, list[ObjectId]] = defaultdict(list)
    if outcome == REFUSED:
        for owner, reason in zip(owners, event.payload.reasons, strict=True):
            groups[reason].append(owner)
    else:
        groups[None] = owners
    for reason, group in groups.items():
        notify_many(
            session,
            group,
            kind,
            f"drop_{outcome}",
            {**params, **({"reason": reason} if reason else {})},
            dedupe_prefix=f"{event.id}:drop_{outcome}",
        )
    Told._get_collection().insert_one(
        {"_id": event.id, "drop_id": drop["_id"], "count": len(owners), "at": utcnow()},
        session=session,
    )
    return len(owners)
