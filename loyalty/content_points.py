"""Points follow content (docs/product.md invariant 8): the points a post or comment has paid its
author equal what its current state owes, whatever order its domain events arrive in.

Community records, with every change that moves what a piece of content owes (published,
featured, removed, restored, deleted by its author), a domain event carrying what the
content owes now (`points.owes`: the earning facts that stand, such as `post.published` and
`post.featured`) under a version counted on the content in the same transaction. `settle`
makes the content's points match the newest version it has received: per rule, it pays
what is owed and not paid, reverses what is paid and no longer owed, and stores the version
in the content's `ContentPoints` record, in the handler's transaction. A version it has
already applied, or an older one, changes nothing; so events delivered late, twice or out
of order converge on the content's current state, and no event applies a delta of its own.

What a rule pays is decided the first time it is owed (the rule's points, the author's tier
multiplier and the caps then; nothing when capped) and paid back at that amount after each
restore. An erased account's content pays nothing any more: erasure reverses what it paid
and closes its records (`close_account`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from app.clock import utcnow
from app.db import batch, object_id
from app.outbox import DomainEvent
from community.domain_events import ContentChanged
from loyalty import errors, ledger, rules
from loyalty.adjustments import write_reversal
from loyalty.models import EARN, ContentPoints, LedgerEntry

log = structlog.get_logger()

CONTENT_TYPES = ("post", "comment")
# The earning rules that follow content; each is named after the fact that earns it.
CONTENT_RULES = ("post.published", "post.featured", "comment.created")

# Why points are taken back, by the state the content is in.
_REVERSAL_REASONS = {
    "removed": ("moderation.removal", "content removed by moderation"),
    "deleted": ("content.deleted", "content deleted by its author"),
    "erased": ("account.erased", "account erased"),
}
_CHANGED = ("content.changed", "content no longer earns these points")

# Events recorded by the release before versions: what each says the content owes. They
# apply only to content no versioned event has reached yet.
_UNVERSIONED = {
    "post.published": {"post.published"},
    "comment.created": {"comment.created"},
    "post.featured": {"post.published", "post.featured"},
    "post.restored": {"post.published"},
    "comment.restored": {"comment.created"},
}


@dataclass(frozen=True)
class ContentState:
    """What a domain event says one post or comment owes its author."""

    content_type: str
    content_id: str
    account_id: ObjectId | None
    # None: an event recorded before versions were counted.
    version: int | None
    owes: frozenset[str]
    status: str | None
    city_code: str | None

    @classmethod
    def from_event(cls, event: DomainEvent[ContentChanged]) -> ContentState:
        points = event.payload.points
        if points is None:
            version, owes, status = None, _UNVERSIONED.get(event.type, set()), None
        else:
            version, owes, status = points.version, set(points.owes), points.status
        return cls(
            event.subject_type,
            event.subject_id,
            object_id(event.payload.author_id),
            version,
            frozenset(owes),
            status,
            event.city_code,
        )


def settle(session: ClientSession, state: ContentState, now: datetime | None = None) -> None:
    """Make the content's points match `state`, unless a newer state was applied already."""
    if state.account_id is None:  # its author was erased before the event was recorded
        return
    record = _record(session, state.content_type, state.content_id, state.account_id)
    newer = record["version"] == 0 if state.version is None else state.version > record["version"]
    if record["closed"] or not newer:
        return
    _match(session, record, state.owes, state.city_code, state.status, now or utcnow())
    if state.version is not None:
        record["version"] = state.version
    _store(session, record)


def close_account(session: ClientSession, account_id: Any, now: datetime | None = None) -> int:
    """The author erased their account: every post and comment of theirs stops paying, and
    what each paid is taken back. Returns how many records were closed."""
    now = now or utcnow()
    oid = object_id(account_id)
    if oid is None:
        return 0
    records = ContentPoints._get_collection()
    keys = {doc["_id"] for doc in records.find({"account_id": oid}, {"_id": 1}, session=session)}
    # Content paid by the release before records were kept has only its entries.
    for entry in LedgerEntry._get_collection().find(
        {"account_id": oid, "kind": EARN, "source.type": {"$in": list(CONTENT_TYPES)}},
        {"source": 1},
        session=session,
    ):
        keys.add(f"{entry['source']['type']}:{entry['source']['id']}")
    closed = 0
    for key in sorted(keys):
        content_type, _, content_id = key.partition(":")
        record = _record(session, content_type, content_id, oid)
        if record["closed"]:
            continue
        try:
            _match(session, record, frozenset(), None, "erased", now)
        except errors.InsufficientPoints:
            # Spent before the erasure: the account is closed either way, and the record
            # is too, so the content never pays again.
            log.warning("content_points_spent", key=key, account_id=str(oid))
        record["closed"] = True
        _store(session, record)
        closed += 1
    return closed


def _record(
    session: ClientSession, content_type: str, content_id: str, account_id: ObjectId
) -> dict[str, Any]:
    key = f"{content_type}:{content_id}"
    found = ContentPoints._get_collection().find_one({"_id": key}, session=session)
    if found is not None:
        return found
    record: dict[str, Any] = {
        "_id": key,
        "account_id": account_id,
        "version": 0,
        "closed": False,
        "rules": {},
    }
    # Content paid by the release before records were kept: its earns (and the reversals
    # of the latest) say what it paid; new content finds none (one indexed read).
    for earn in (
        LedgerEntry._get_collection()
        .find({"account_id": account_id, "source.id": content_id}, session=session)
        .sort("_id", 1)
    ):
        rule = earn["source"].get("rule")
        if earn["kind"] != EARN or rule not in CONTENT_RULES:
            continue
        paid = record["rules"].setdefault(rule, {"amount": earn["amount"], "earns": 0})
        paid.update(earns=paid["earns"] + 1, entry_id=earn["_id"])
    for paid in record["rules"].values():
        reversal = ledger.existing_entry(session, f"reverse:{paid['entry_id']}")
        paid["paid"] = reversal is None
        paid["reversal_id"] = reversal["_id"] if reversal else None
    return record


def _match(
    session: ClientSession,
    record: dict[str, Any],
    owes: Collection[str],
    city_code: str | None,
    status: str | None,
    now: datetime,
) -> None:
    """Pay each rule owed and not paid, reverse each paid and no longer owed."""
    content_type, _, content_id = record["_id"].partition(":")
    for rule in sorted({*record["rules"], *owes} & set(CONTENT_RULES)):
        paid = record["rules"].setdefault(rule, {"amount": None, "earns": 0, "paid": False})
        if rule in owes and not paid["paid"]:
            entry = _pay(session, record, rule, paid, city_code, now)
            if entry is not None:
                paid.update(paid=True, entry_id=entry["_id"], earns=paid["earns"] + 1)
        elif rule not in owes and paid["paid"]:
            original = LedgerEntry._get_collection().find_one(
                {"_id": paid["entry_id"]}, session=session
            )
            key = f"reverse:{paid['entry_id']}"
            # An admin may have reversed the credit already (the same key): nothing to do.
            reversal = ledger.existing_entry(session, key)
            if reversal is None and original is not None:
                source_rule, reason = _REVERSAL_REASONS.get(status or "", _CHANGED)
                reversal = write_reversal(
                    session, original, key=key, reason=reason, rule=source_rule, now=now
                )
            paid.update(paid=False, reversal_id=reversal["_id"] if reversal else None)
            log.info("content_points_reversed", content=record["_id"], rule=rule)


def _pay(
    session: ClientSession,
    record: dict[str, Any],
    rule: str,
    paid: dict[str, Any],
    city_code: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    content_type, _, content_id = record["_id"].partition(":")
    key = f"content:{record['_id']}:{rule}:{paid['earns']}"
    if paid["amount"] is None:
        # The first time it is owed: the rule decides (points, multiplier, caps), once.
        entry = rules.award(
            session,
            record["account_id"],
            rule,
            key=key,
            source={"type": content_type, "id": content_id},
            city_code=city_code,
            now=now,
        )
        paid["amount"] = entry["amount"] if entry else 0
        return entry
    if not paid["amount"]:
        return None
    # Paid back as first paid, without the rule's caps: it earns what its removal took,
    # into the lots the removal took it from, with their expiry dates (as a refund puts
    # points back), so a removal undone leaves the owner's lots as they were.
    reversal = None
    if paid.get("reversal_id") is not None:
        reversal = LedgerEntry._get_collection().find_one(
            {"_id": paid["reversal_id"]}, {"lots": 1, "amount": 1}, session=session
        )
    into = reversal["lots"] if reversal and -reversal["amount"] == paid["amount"] else []
    return ledger.earn(
        session,
        ledger.Movement(
            record["account_id"],
            EARN,
            paid["amount"],
            key,
            "content restored",
            {
                "rule": rule,
                "type": content_type,
                "id": content_id,
                "restores": str(paid.get("reversal_id")),
            },
            city_code,
            restore=list(into),
        ),
        False,
        now,
    )


def _store(session: ClientSession, record: dict[str, Any]) -> None:
    fields = {name: value for name, value in record.items() if name != "_id"}
    batch(session).update(
        ContentPoints._get_collection(),
        {"_id": record["_id"]},
        {"$set": {**fields, "updated_at": utcnow()}},
        upsert=True,
    )


def earned_by(account_ids: Collection[ObjectId]) -> dict[ObjectId, int]:
    """What each account's posts and comments pay it now, in one read (the author's
    history on the review desk)."""
    ids = list(account_ids)
    totals = dict.fromkeys(ids, 0)
    if not ids:
        return totals
    for record in ContentPoints._get_collection().find(
        {"account_id": {"$in": ids}}, {"account_id": 1, "rules": 1}
    ):
        totals[record["account_id"]] += sum(
            paid.get("amount") or 0 for paid in record["rules"].values() if paid.get("paid")
        )
    return totals
