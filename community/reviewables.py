"""The review desk's items as Discourse keeps its reviewables: one record per target (a
post, comment or account) with a version that every decision and undo on it counts, so
that of two ambassadors deciding one item at once exactly one decision applies and the
other is told who decided; and a claim, which tells the others someone is on it.

A decision names the version it was made on (the desk sends the one it showed). In the
decision's transaction, `advance` reads the record in the snapshot and refuses when the
version moved (409 `already_decided`, with who and what) or when another ambassador holds
a live claim (409 `claimed`); otherwise it writes the next version. Two concurrent
decisions both write the record, so the second aborts on the write conflict, runs again on
a snapshot that shows the first, and is refused: never applied twice.

The record is created outside the transaction (`_ensure`): two transactions inserting one
`_id` at once fail with a duplicate key on the embedded server, which is not retried.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from accounts.services import display_names
from app.auth import Caller
from app.clock import utcnow
from app.db import batch
from community.errors import AlreadyDecided, ClaimedByOther
from community.models import Reviewable

log = structlog.get_logger()

# A claim lapses unless its ambassador decides or claims again: someone who walked away
# does not hold an item for ever.
CLAIM_MINUTES = 30


def key_of(target_type: str, target_id: Any) -> str:
    return f"{target_type}:{target_id}"


def _ensure(key: str) -> None:
    with contextlib.suppress(DuplicateKeyError):
        Reviewable._get_collection().update_one(
            {"_id": key}, {"$setOnInsert": {"version": 0}}, upsert=True
        )


def records(keys: list[str]) -> dict[str, dict[str, Any]]:
    """The records of these items, by key, in one read (absent: never claimed or decided)."""
    if not keys:
        return {}
    return {doc["_id"]: doc for doc in Reviewable._get_collection().find({"_id": {"$in": keys}})}


def live_claim(record: dict[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    """`{claimed_by, claimed_until}` while the item's claim holds, else None."""
    if not record or not record.get("claimed_by"):
        return None
    until = record.get("claimed_until")
    if until is None or until <= now:
        return None
    return {"claimed_by": record["claimed_by"], "claimed_until": until}


def _name(user_id: ObjectId) -> str:
    return display_names([user_id]).get(user_id, "")


def prepare(target_type: str, target_id: Any) -> None:
    """Make sure the item's record exists before a transaction decides on it."""
    _ensure(key_of(target_type, target_id))


def advance(
    session: ClientSession,
    caller: Caller,
    target_type: str,
    target_id: Any,
    version: int | None,
    action_id: ObjectId,
    action: str,
    now: datetime,
) -> int:
    """In a decision's (or undo's) transaction: refuse it when the item moved past
    `version` (None: whatever it is now) or another ambassador claims it; count it.
    Returns the item's new version. `prepare` first."""
    key = key_of(target_type, target_id)
    records_ = Reviewable._get_collection()
    record = records_.find_one({"_id": key}, session=session) or {"version": 0}
    current = record.get("version", 0)
    if version is not None and version != current:
        decided_by = record.get("decided_by")
        raise AlreadyDecided(
            decided_by=str(decided_by or ""),
            decided_by_name=_name(decided_by) if decided_by else "",
            action=record.get("last_action") or "",
            decided_at=(record.get("decided_at") or now).isoformat(),
            version=current,
        )
    claim = live_claim(record, now)
    if claim is not None and claim["claimed_by"] != caller.user.pk:
        raise ClaimedByOther(
            claimed_by=str(claim["claimed_by"]),
            claimed_by_name=_name(claim["claimed_by"]),
            claimed_until=claim["claimed_until"].isoformat(),
        )
    batch(session).update(
        records_,
        {"_id": key, "version": current},
        {
            "$set": {
                "version": current + 1,
                "last_action_id": action_id,
                "last_action": action,
                "decided_by": caller.user.pk,
                "decided_at": now,
            },
            "$unset": {"claimed_by": "", "claimed_until": ""},
        },
        upsert=True,
    )
    return current + 1


def last_action_id(target_type: str, target_id: Any, session: ClientSession) -> Any:
    found = Reviewable._get_collection().find_one(
        {"_id": key_of(target_type, target_id)}, {"last_action_id": 1}, session=session
    )
    return (found or {}).get("last_action_id")


def claim(
    caller: Caller, target_type: str, target_id: Any, now: datetime | None = None
) -> dict[str, Any]:
    """Claim an item for CLAIM_MINUTES (again: the claim is renewed); refused (409
    `claimed`) while another ambassador's claim holds. The caller's right to the item is
    checked by the caller of this function."""
    now = now or utcnow()
    key = key_of(target_type, target_id)
    _ensure(key)
    until = now + timedelta(minutes=CLAIM_MINUTES)
    records_ = Reviewable._get_collection()
    record = records_.find_one({"_id": key}) or {"_id": key}
    holder = live_claim(record, now)
    if holder is None or holder["claimed_by"] == caller.user.pk:
        # Conditional on the claim as read: of two ambassadors claiming at once, one wins.
        seen = {name: record.get(name) for name in ("claimed_by", "claimed_until")}
        taken = records_.update_one(
            {"_id": key, **seen},
            {"$set": {"claimed_by": caller.user.pk, "claimed_until": until}},
        )
        if taken.matched_count:
            record.update(claimed_by=caller.user.pk, claimed_until=until)
            log.info("review_item_claimed", item=key, by=caller.id)
            return _claim_view(key, record)
        record = records_.find_one({"_id": key}) or record
        holder = live_claim(record, now)
    if holder is None:  # released meanwhile: try again
        return claim(caller, target_type, target_id, now)
    raise ClaimedByOther(
        claimed_by=str(holder["claimed_by"]),
        claimed_by_name=_name(holder["claimed_by"]),
        claimed_until=holder["claimed_until"].isoformat(),
    )


def release(caller: Caller, target_type: str, target_id: Any) -> None:
    """Give up one's claim (an admin: anyone's); nothing when there is none."""
    key = key_of(target_type, target_id)
    holder = {} if caller.is_admin else {"claimed_by": caller.user.pk}
    Reviewable._get_collection().update_one(
        {"_id": key, **holder}, {"$unset": {"claimed_by": "", "claimed_until": ""}}
    )
    log.info("review_item_released", item=key, by=caller.id)


def _claim_view(key: str, record: dict[str, Any]) -> dict[str, Any]:
    target_type, _, target_id = key.partition(":")
    return {
        "target_type": target_type,
        "target_id": target_id,
        "version": record.get("version", 0),
        "claimed_by": record.get("claimed_by"),
        "claimed_until": record.get("claimed_until"),
    }
