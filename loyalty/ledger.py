"""The points ledger: accounts, entries, lots and tiers, and the one way points move.

Every movement is one immutable `LedgerEntry`, written by `write` (or `earn`, which applies
the tier multiplier first) in the same transaction as the lots it opens or consumes and the
cached totals of the owner's `PointsAccount`; nothing else writes a balance. The other
loyalty modules (rules, rewards, adjustments, partner systems, expiry) describe a movement
and call these. All writes of one owner touch that account document, so concurrent
movements of one owner conflict and `with_transaction` retries them one after another: a
debit sees every earlier credit, and the balance cannot go below zero.

Functions take `now` so that expiry, caps and tiers can be tested with a clock of their own.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession

from app.db import object_id, update_and_read
from app.errors import NotFound
from loyalty import errors
from loyalty.models import EARN, REVERSE, LedgerEntry, Lot, PointsAccount

LOT_LIFETIME_MONTHS = 24
TIER_WINDOW = timedelta(days=365)


@dataclass(frozen=True)
class Tier:
    name: str
    threshold: int
    # Tenths, so that points stay integers: 11 means x1.1, rounded down.
    multiplier: int


TIERS = (
    Tier("member", 0, 10),
    Tier("silver", 2_000, 11),
    Tier("gold", 8_000, 12),
    Tier("platinum", 20_000, 15),
)
TIER_NAMES = tuple(tier.name for tier in TIERS)


class LedgerCorrupt(RuntimeError):
    """The cached balance covers a debit its lots do not: a bug, never a client error."""


# --- tiers and clock helpers -----------------------------------------------------------


def tier_for(earned: int) -> Tier:
    return [tier for tier in TIERS if earned >= tier.threshold][-1]


def tier_rank(name: str) -> int:
    return TIER_NAMES.index(name)


def add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def id_or_404(value: Any) -> ObjectId:
    """An id from a URL or a body; a malformed one is simply not found."""
    found = object_id(value)
    if found is None:
        raise NotFound()
    return found


# --- the ledger core -------------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    account_id: ObjectId
    kind: str
    amount: int
    key: str
    reason: str
    source: dict[str, Any]
    city_code: str | None = None
    once_key: str | None = None
    actor_id: ObjectId | None = None
    # Set for earns and reversals of earns: the owner's tier once this entry is counted.
    tier: str | None = None
    # An expiry names the lot that lapses; a refund the lots the debit took points from.
    lot_id: ObjectId | None = None
    restore: list[dict[str, Any]] = field(default_factory=list)
    # A reversal takes back what is left of the reversed credit's own lot before any other.
    first_lot: ObjectId | None = None
    # See `LedgerEntry.earned_at` and `LedgerEntry.request_key`.
    earned_at: datetime | None = None
    request_key: str | None = None


def _counts_as_earned(kind: str, source: dict[str, Any]) -> bool:
    """Whether an entry moves the points earned (lifetime and tier figure): an earn adds to
    them, the reversal of an earn takes that earn back out. `EARNED_POINTS` says the same in
    the database's terms, `rolling_earned` for the tier window."""
    return kind == EARN or (kind == REVERSE and source.get("kind") == EARN)


# `_counts_as_earned` as an aggregation expression: an entry's part in the points earned.
EARNED_POINTS = {
    "$cond": [
        {
            "$or": [
                {"$eq": ["$kind", EARN]},
                {"$and": [{"$eq": ["$kind", REVERSE]}, {"$eq": ["$source.kind", EARN]}]},
            ]
        },
        "$amount",
        0,
    ]
}


def existing_entry(
    session: ClientSession | None, key: str, once_key: str | None = None
) -> dict[str, Any] | None:
    entries = LedgerEntry._get_collection()
    found = entries.find_one({"idempotency_key": key}, session=session)
    if found is None and once_key:
        found = entries.find_one({"once_key": once_key}, session=session)
    return found


def _consume(session: ClientSession, movement: Movement, points: int) -> list[dict[str, Any]]:
    lots = Lot._get_collection()
    if movement.lot_id is not None:
        lots.update_one(
            {"_id": movement.lot_id},
            {"$inc": {"remaining": -points, "expired": points}},
            session=session,
        )
        return [{"lot_id": movement.lot_id, "points": points}]
    taken: list[dict[str, Any]] = []
    left = points
    for lot in _spending_order(session, movement):
        take = min(left, lot["remaining"])
        lots.update_one({"_id": lot["_id"]}, {"$inc": {"remaining": -take}}, session=session)
        taken.append({"lot_id": lot["_id"], "points": take})
        left -= take
        if not left:
            return taken
    raise LedgerCorrupt(f"account {movement.account_id}: lots short by {left} points")


def _spending_order(session: ClientSession, movement: Movement) -> Iterator[dict[str, Any]]:
    """The open lots a debit takes points from: `movement.first_lot` if given, then the
    oldest expiry first."""
    lots = Lot._get_collection()
    query = {"account_id": movement.account_id, "remaining": {"$gt": 0}}
    if movement.first_lot is not None:
        own = lots.find_one({**query, "_id": movement.first_lot}, {"remaining": 1}, session=session)
        if own is not None:
            yield own
    for lot in lots.find(query, {"remaining": 1}, session=session).sort(
        [("expires_at", 1), ("_id", 1)]
    ):
        if lot["_id"] != movement.first_lot:
            yield lot


def write(session: ClientSession, movement: Movement, now: datetime) -> dict[str, Any]:
    """Write one entry with its lots and the account's cached totals; return the entry."""
    accounts = PointsAccount._get_collection()
    entry: dict[str, Any] = {
        "_id": ObjectId(),
        "account_id": movement.account_id,
        "kind": movement.kind,
        "amount": movement.amount,
        "reason": movement.reason,
        "source": movement.source,
        "idempotency_key": movement.key,
        "city_code": movement.city_code,
        "actor_id": movement.actor_id,
        "lots": [],
        "created_at": now,
    }
    for name in ("once_key", "earned_at", "request_key"):
        if getattr(movement, name) is not None:
            entry[name] = getattr(movement, name)
    inc: dict[str, Any] = {"balance": movement.amount}
    if _counts_as_earned(movement.kind, movement.source):
        inc["lifetime_earned"] = movement.amount
    changes: dict[str, Any] = {"updated_at": now}
    if movement.tier:
        changes["tier"] = movement.tier
    if movement.amount > 0:
        entry["lots"] = _credit_lots(session, movement, entry, now)
        on_insert: dict[str, Any] = {"created_at": now}
        if "lifetime_earned" not in inc:
            on_insert["lifetime_earned"] = 0
        if not movement.tier:
            on_insert["tier"] = TIERS[0].name
        account = update_and_read(
            accounts,
            {"_id": movement.account_id},
            {"$inc": inc, "$set": changes, "$setOnInsert": on_insert},
            upsert=True,
            session=session,
        )
    else:
        account = update_and_read(
            accounts,
            {"_id": movement.account_id, "balance": {"$gte": -movement.amount}},
            {"$inc": inc, "$set": changes},
            session=session,
        )
        if account is None:
            raise errors.InsufficientPoints()
        entry["lots"] = _consume(session, movement, -movement.amount)
    assert account is not None  # an upsert always finds the document it wrote
    entry["balance_after"] = account["balance"]
    LedgerEntry._get_collection().insert_one(entry, session=session)
    return entry


def _credit_lots(
    session: ClientSession, movement: Movement, entry: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    lots = Lot._get_collection()
    if movement.restore:
        # A refund puts points back where they came from, keeping their expiry dates (an
        # already expired lot is expired again by the next expiry run).
        for part in movement.restore:
            lots.update_one(
                {"_id": part["lot_id"]}, {"$inc": {"remaining": part["points"]}}, session=session
            )
        return list(movement.restore)
    entry["expires_at"] = add_months(now, LOT_LIFETIME_MONTHS)
    lots.insert_one(
        {
            "account_id": movement.account_id,
            "entry_id": entry["_id"],
            "amount": movement.amount,
            "remaining": movement.amount,
            "expired": 0,
            "expires_at": entry["expires_at"],
            "created_at": now,
        },
        session=session,
    )
    return []


def rolling_earned(session: ClientSession | None, account_id: ObjectId, now: datetime) -> int:
    """Points earned in the tier window ending at `now`, less the earns reversed by then."""
    since = now - TIER_WINDOW
    window = {"account_id": account_id, "created_at": {"$gt": since, "$lte": now}}
    # A reversal of an earn counts while its earn does (`earned_at` in the window); it is
    # written after its earn, so its own date is in the window whenever its earn's is.
    # Each query first matches its index (account_id, kind, created_at) and nothing else:
    # SecantusDB answers a `$in` on kind, a `$cond` per entry or extra fields in that first
    # `$match` 2-3x more slowly, and this runs for every earn and redemption.
    queries = (
        [{"$match": {**window, "kind": EARN}}],
        [
            {"$match": {**window, "kind": REVERSE}},
            {"$match": {"source.kind": EARN, "earned_at": {"$gt": since}}},
        ],
    )
    entries = LedgerEntry._get_collection()
    return sum(
        row["earned"]
        for stages in queries
        for row in entries.aggregate(
            [*stages, {"$group": {"_id": None, "earned": {"$sum": "$amount"}}}], session=session
        )
    )


def earn(
    session: ClientSession, movement: Movement, multipliable: bool, now: datetime
) -> dict[str, Any]:
    """Credit `movement.amount` base points, times the owner's tier multiplier if asked."""
    earned = rolling_earned(session, movement.account_id, now)
    amount = movement.amount
    if multipliable:
        amount = amount * tier_for(earned).multiplier // 10
    tier = tier_for(earned + amount).name
    return write(session, replace(movement, amount=amount, tier=tier), now)
