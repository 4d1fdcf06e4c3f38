"""Entering a drop, and an owner's entry as they poll it.

Entering is the hot path of a launch: 100,000 owners in the same minute. It writes one
document, the owner's own entry (unique per owner and drop), in one insert, and nothing
shared: no counter, no key record, no transaction, no message to Redis. What it reads is
the caller (every request's one read), the drop's rules (kept per process: they never
change), and, for a reward's drop, the owner's points account (their tier, and their
points less those held). So entries of one drop never conflict, and entering keeps working
while Redis or the workers are down: the job decides the entries when they return.

The entry carries the request's Idempotency-Key and the hash of its body: a retry with the
same key finds the owner's entry (the insert fails on the owner's unique index) and
answers it as first answered, with `Idempotent-Replayed: true`. A refusal is not kept
(keeping it would be a write for every refused request, and refusals change nothing): a
request refused before the drop opened and sent again with its key once it has opened
enters.

An owner polling their entry costs one read, of that entry, which the job writes its
decision on.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from bson import ObjectId
from prometheus_client import Counter
from pymongo.errors import DuplicateKeyError

from app.auth import Caller
from app.clock import utcnow
from app.db import object_id
from app.errors import DomainError, IdempotencyKeyReused, NotFound
from drops import errors
from drops.launch import Rules, rules_of
from drops.models import ENTERED, REWARD, SELECTED, Entry
from events.access import is_staff
from loyalty import rewards

log = structlog.get_logger()

REFUSED_AT_ENTRY = Counter(
    "drop_entries_refused_total",
    "Requests to enter a drop refused before any entry was written, by reason (slug)",
    ["reason"],
)


@dataclass(frozen=True)
class RequestKey:
    """The Idempotency-Key an entry is sent with, and the hash of its request's body."""

    key: str
    body_hash: str

    @classmethod
    def of(cls, key: str | None, body: dict[str, Any]) -> RequestKey | None:
        if key is None:
            return None
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return cls(key, hashlib.sha256(canonical.encode()).hexdigest())


@dataclass(frozen=True)
class Entered:
    """An entry as entering answers it, and whether this answer repeats an earlier one."""

    entry: dict[str, Any]
    replayed: bool = False


def arrival_now() -> int:
    """Now, in microseconds since the epoch: an entry's place in a first-come order."""
    return time.time_ns() // 1000


def as_arrival(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_arrival(arrival: int) -> datetime:
    return datetime.fromtimestamp(arrival / 1_000_000, UTC)


def enter(
    caller: Caller, drop_id: str, quantity: int = 1, key: RequestKey | None = None
) -> Entered:
    """Enter the caller in the drop: 202 `entered`, decided later by the drop's job."""
    rules = rules_of(drop_id)
    try:
        refusal = _refusal(caller, rules, quantity, utcnow())
        if refusal is not None:
            raise refusal
        entry = {
            "_id": ObjectId(),
            "drop_id": rules.id,
            "user_id": caller.user.pk,
            "quantity": quantity,
            "arrival": arrival_now(),
            "entered_at": utcnow(),
            "status": ENTERED,
        }
        if key is not None:
            entry.update(request_key=key.key, request_hash=key.body_hash)
        try:
            Entry._get_collection().insert_one(entry)
        except DuplicateKeyError:
            raise errors.AlreadyEntered() from None
    except _ANSWERED_BY_AN_EARLIER_ENTRY as refused:
        # A retry of an entry made with this key answers it, whatever changed since.
        earlier = _entry_of(caller, rules, key)
        if earlier is not None:
            return Entered(_as_entered(earlier), replayed=True)
        REFUSED_AT_ENTRY.labels(refused.error).inc()
        raise
    except errors.DropNotOpen:
        REFUSED_AT_ENTRY.labels(errors.DropNotOpen.error).inc()
        raise
    return Entered(_as_entered(entry))


# Refusals a retry of an accepted entry may meet: the entry made with its key answers it.
_ANSWERED_BY_AN_EARLIER_ENTRY: tuple[type[DomainError], ...] = (
    errors.AlreadyEntered,
    errors.DropClosed,
    *errors.NOT_ELIGIBLE,
)


def _refusal(caller: Caller, rules: Rules, quantity: int, now: datetime) -> Exception | None:
    """Why the caller may not enter now; None when they may."""
    if now < rules.opens_at:
        return errors.DropNotOpen(opens_at=rules.opens_at.isoformat())
    if now >= rules.closes_at:
        return errors.DropClosed(closes_at=rules.closes_at.isoformat())
    return eligibility_refusal(caller, rules, quantity, now)


def eligibility_refusal(
    caller: Caller, rules: Rules, quantity: int, now: datetime
) -> DomainError | None:
    """Why the caller may not take part in the drop; None when they may. A reward's drop
    reads the owner's points account (their tier, and their points less those held)."""
    refusal = standing_refusal(caller, rules, quantity)
    if refusal is not None or rules.target_type != REWARD:
        return refusal
    points = rules.cost * quantity
    slug = rewards.drop_entry_refusal(
        caller.user, list(rules.city_codes), rules.min_tier or "member", points, now
    )
    if slug == errors.TierTooLow.error:
        return errors.TierTooLow(min_tier=rules.min_tier)
    if slug == errors.InsufficientPoints.error:
        return errors.InsufficientPoints(points=points)
    return errors.BY_SLUG[slug]() if slug else None


def standing_refusal(caller: Caller, rules: Rules, quantity: int) -> DomainError | None:
    """The drop's own rules of who takes part, asked on entry and again when the entry's
    turn comes (a grant received since, a move to another city)."""
    owner = caller.user
    if is_staff(caller):
        return errors.StaffEntry()
    if quantity > rules.per_owner_limit:
        return errors.OverOwnerLimit(
            per_owner_limit=rules.per_owner_limit,
            errors={"quantity": [f"At most {rules.per_owner_limit}."]},
        )
    if rules.verified_owners_only and not owner.verified_owner:
        return errors.NotVerifiedOwner()
    if rules.city_codes and owner.city_code not in rules.city_codes:
        return errors.NotInCity()
    return None


def _entry_of(caller: Caller, rules: Rules, key: RequestKey | None) -> dict[str, Any] | None:
    """The caller's entry made with `key` (422 for another body with that key)."""
    if key is None:
        return None
    found = Entry._get_collection().find_one({"user_id": caller.user.pk, "drop_id": rules.id})
    if found is None or found.get("request_key") != key.key:
        return None
    if found.get("request_hash") != key.body_hash:
        raise IdempotencyKeyReused()
    return found


def _as_entered(entry: dict[str, Any]) -> dict[str, Any]:
    """The answer to entering, from what never changes on the entry: the same bytes when a
    retry repeats it."""
    return {
        "id": entry["_id"],
        "drop_id": entry["drop_id"],
        "status": ENTERED,
        "quantity": entry["quantity"],
        "entered_at": entry["entered_at"],
    }


def my_entry(caller: Caller, drop_id: str) -> dict[str, Any]:
    """The caller's entry with its decision so far, in one read (404: none)."""
    oid = object_id(drop_id)
    found = (
        Entry._get_collection().find_one({"user_id": caller.user.pk, "drop_id": oid})
        if oid
        else None
    )
    if found is None:
        raise NotFound(message="You have not entered this drop.")
    shown = {**found, "id": found["_id"]}
    if shown["status"] == SELECTED:
        shown["status"] = ENTERED  # its place is being made: not decided yet
    return shown


def export_entries(user_id: Any) -> list[dict[str, Any]]:
    """The owner's entries in drops (their personal data export)."""
    return [
        {
            field: entry.get(field)
            for field in ("drop_id", "quantity", "entered_at", "status", "reason", "decided_at")
        }
        for entry in Entry._get_collection().find({"user_id": object_id(user_id)})
    ]
