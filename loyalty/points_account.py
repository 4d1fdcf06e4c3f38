"""An owner's points account as a transaction reads it, the figures it caches and the tiers.

The account caches what reads would otherwise compute from the owner's history on every
request: the tier figure (points earned in the rolling 12 months) and the points expiring in
the next 90 days, each with the time it was computed for (`*_as_of`) and the time it next
changes by itself (`*_until`: an earn leaving the window, a lot entering the 90 days). A
figure is current for `as_of <= now < until`. Writes (`loyalty.ledger`) keep it current from
what they read anyway (an earn adds to the tier figure; a debit, which reads the lots it
spends in expiry order, recomputes the expiring points); a write that cannot (a lot
expiring, a refund) marks it stale, and whoever next needs a stale figure recomputes it from
the ledger (`refresh`). Reconciliation checks and rebuilds them like the balance. The
per-reward redemption counters (`redeemed`) are kept the same way, for per-owner limits.

Lots are spent oldest expiry first, so the spent ones pile up at the front of an owner's
lots: `spend_from` marks where the lots with points begin (no lot expiring before it holds
any), so that a debit reads from there on the index. A debit moves it to the first lot it
leaves with points, a new lot can only bring it earlier, and a refund, which puts points
back in lots it does not read, forgets it; the next debit then reads every lot with points
and sets it again. Reconciliation checks it too.

The account also keeps its first lots with points, in spending order (`spend_lots`, up to
`loyalty.ledger.SPEND_LOTS_KEPT`, each with the points it holds): a debit those lots cover
takes its points from them and reads no lot. Each lot's write is conditioned on the points
the account says it holds, so a stale copy makes the transaction run again reading the lots
(`app.db.StaleCache`). Writes keep it as they keep `spend_from`: a debit from what it took
or read, a credit puts its new lot in place, and an expiry or a refund forgets it.

Functions take `now` so that expiry and tiers can be tested with a clock of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession

from loyalty.models import CANCELLED, EARN, REVERSE, LedgerEntry, Lot, PointsAccount, Redemption

TIER_WINDOW = timedelta(days=365)
EXPIRING_WINDOW = timedelta(days=90)


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


def tier_for(earned: int) -> Tier:
    return [tier for tier in TIERS if earned >= tier.threshold][-1]


def tier_rank(name: str) -> int:
    return TIER_NAMES.index(name)


def counts_as_earned(kind: str, source: dict[str, Any]) -> bool:
    """Whether an entry moves the points earned (lifetime and tier figure): an earn adds to
    them, the reversal of an earn takes that earn back out. `EARNED_POINTS` says the same in
    the database's terms, `rolling_earned` for the tier window."""
    return kind == EARN or (kind == REVERSE and source.get("kind") == EARN)


# `counts_as_earned` as an aggregation expression: an entry's part in the points earned.
_EARNED = {
    "$or": [
        {"$eq": ["$kind", EARN]},
        {"$and": [{"$eq": ["$kind", REVERSE]}, {"$eq": ["$source.kind", EARN]}]},
    ]
}
EARNED_POINTS = {"$cond": [_EARNED, "$amount", 0]}


def is_current(document: dict[str, Any], figure: str, now: datetime) -> bool:
    """Whether the account's cached `figure` ("tier", "expiring") holds at `now`."""
    as_of, until = document.get(f"{figure}_as_of"), document.get(f"{figure}_until")
    return as_of is not None and as_of <= now and (until is None or now < until)


@dataclass
class Account:
    """An owner's points account as a transaction read it. `changes` holds the cached
    figures this read had to recompute: the next write of the account stores them."""

    id: ObjectId
    document: dict[str, Any]
    changes: dict[str, Any] = field(default_factory=dict)
    # When read with `tier=True`: the time the tier figure is counted at.
    tier_time: datetime | None = None

    def get(self, name: str, default: Any = None) -> Any:
        return self.changes.get(name, self.document.get(name, default))

    @property
    def balance(self) -> int:
        return self.document.get("balance", 0)

    @property
    def tier(self) -> Tier:
        return tier_for(self.get("tier_points", 0))

    @property
    def spend_from(self) -> datetime | None:
        """No lot expiring before this date holds points (None: not known), so spending
        and the expiring figure read the lots from it (`open_lots`)."""
        return self.get("spend_from")

    @property
    def spend_lots(self) -> list[dict[str, Any]] | None:
        """The first lots with points in spending order, `{_id, remaining, expires_at}`
        (None: not known); every lot with points when their points make the balance."""
        return self.get("spend_lots")

    def is_current(self, figure: str, now: datetime) -> bool:
        return is_current({**self.document, **self.changes}, figure, now)

    def spendable(self, releasing: str | None = None) -> int:
        """The balance less the points held for drops (`loyalty.holds`), but for the hold
        `releasing`, which the movement being written consumes."""
        holds = self.document.get("holds") or {}
        return self.balance - self.document.get("held", 0) + holds.get(releasing or "", 0)

    def held_for(self, key: str) -> int:
        return (self.document.get("holds") or {}).get(key, 0)

    def redeemed(self, reward_id: ObjectId) -> int:
        """How many of the reward the owner holds (redeemed, not cancelled); read with
        `redeemed=True`."""
        return self.get("redeemed", {}).get(str(reward_id), 0)

    def redeeming(self, reward_id: ObjectId, quantity: int) -> dict[str, Any]:
        """The account fields to set for `quantity` more (or, negative, fewer) of the reward;
        nothing for an account from before the counters that was not read with them (the
        count made when it is, from its redemptions, will be right)."""
        held = self.redeemed(reward_id) + quantity
        if "redeemed" in self.changes:
            return {"redeemed": {**self.changes["redeemed"], str(reward_id): held}}
        if "redeemed" not in self.document:
            return {}
        return {f"redeemed.{reward_id}": held}


def read_account(
    session: ClientSession,
    account_id: ObjectId,
    now: datetime,
    *,
    tier: bool = False,
    redeemed: bool = False,
) -> Account:
    """The account in the transaction's snapshot, for a write at `now`, with the tier figure
    (`tier=True`) and the redemption counters (`redeemed=True`) made current when they are
    not.

    The tier figure's clock never runs back: a write whose `now` is earlier than the figure's
    (taken before a later write committed first) counts it at the figure's time, which
    already holds every earn committed, the later one included.
    """
    document = PointsAccount._get_collection().find_one({"_id": account_id}, session=session)
    if document is None:
        # No account, no entries (they are written together): the figures of an empty
        # ledger, with nothing to read.
        return Account(
            account_id,
            {},
            {**tier_figure(0, None, now), **expiring_figure([], now), "redeemed": {}},
            tier_time=now,
        )
    account = Account(account_id, document)
    if tier:
        account.tier_time = max(now, account.document.get("tier_as_of") or now)
        if not account.is_current("tier", account.tier_time):
            account.changes.update(_tier_figure(session, account_id, account.tier_time))
    if redeemed and "redeemed" not in account.document:
        # An account from before the counters: count its redemptions once.
        account.changes["redeemed"] = redemption_counts(session, account_id)
    return account


def refresh(session: ClientSession, account_id: ObjectId, now: datetime) -> dict[str, Any]:
    """The account with both cached figures current at `now`, storing them when they were
    stale (unless `now` is before the time they were computed for: a look into the past)."""
    account = read_account(session, account_id, now)
    if not is_current(account.document, "tier", now):
        account.changes.update(_tier_figure(session, account_id, now))
    if not is_current(account.document, "expiring", now):
        lots = open_lots(session, account_id, account.spend_from)
        account.changes.update(_expiring_figure(lots, now))
    if not account.document or not account.changes:
        return {**account.document, **account.changes}
    stored = [
        name
        for name in ("tier", "expiring")
        if f"{name}_as_of" in account.changes and account.document.get(f"{name}_as_of", now) <= now
    ]
    if stored:
        PointsAccount._get_collection().update_one(
            {"_id": account_id},
            {
                "$set": {
                    name: value
                    for name, value in account.changes.items()
                    if name.split("_")[0] in stored
                }
            },
            session=session,
        )
    return {**account.document, **account.changes}


def rolling_earned(
    session: ClientSession | None, account_id: ObjectId, now: datetime
) -> tuple[int, datetime | None]:
    """Points earned in the tier window ending at `now`, less the earns reversed by then;
    and the first earn in the window (the figure can only fall once it leaves)."""
    since = now - TIER_WINDOW
    window = {"account_id": account_id, "created_at": {"$gt": since, "$lte": now}}
    # A reversal of an earn counts while its earn does (`earned_at` in the window); it is
    # written after its earn, so its own date is in the window whenever its earn's is.
    # Each query first matches its index (account_id, kind, created_at) and nothing else:
    # SecantusDB answers a `$in` on kind, a `$cond` per entry or extra fields in that first
    # `$match` 2-3x more slowly.
    queries = (
        [{"$match": {**window, "kind": EARN}}],
        [
            {"$match": {**window, "kind": REVERSE}},
            {"$match": {"source.kind": EARN, "earned_at": {"$gt": since}}},
        ],
    )
    entries = LedgerEntry._get_collection()
    earned, first = 0, None
    for stages in queries:
        for row in entries.aggregate(
            [
                *stages,
                {
                    "$group": {
                        "_id": None,
                        "earned": {"$sum": "$amount"},
                        "first": {"$min": "$created_at"},
                    }
                },
            ],
            session=session,
        ):
            earned += row["earned"]
            first = first or row["first"]
    return earned, first


def tier_figure(points: int, first_earn: datetime | None, now: datetime) -> dict[str, Any]:
    """The account fields of a tier figure computed for `now`."""
    return {
        "tier": tier_for(points).name,
        "tier_points": points,
        "tier_as_of": now,
        "tier_until": first_earn + TIER_WINDOW if first_earn else None,
    }


def _tier_figure(session: ClientSession, account_id: ObjectId, now: datetime) -> dict[str, Any]:
    return tier_figure(*rolling_earned(session, account_id, now), now)


def open_lots(
    session: ClientSession | None,
    account_id: ObjectId,
    spend_from: datetime | None,
    limit: int = 0,
) -> Iterator[dict[str, Any]]:
    """The account's lots with points left, in spending order: oldest expiry first (the
    first `limit` of them, unless 0).

    Given the account's `spend_from`, the read starts at that expiry date on the index
    instead of asking for `remaining > 0`: the lots spent before it are skipped unread (with
    97 spent lots of 100, 1.3 ms of SecantusDB's time against 5.3 ms), and the few spent
    ones after it are left out here.
    """
    condition = {"expires_at": {"$gte": spend_from}} if spend_from else {"remaining": {"$gt": 0}}
    lots = (
        Lot._get_collection()
        .find(
            {"account_id": account_id, **condition},
            {"remaining": 1, "expires_at": 1},
            session=session,
        )
        .sort([("expires_at", 1), ("_id", 1)])
        .limit(limit)
    )
    return (lot for lot in lots if lot["remaining"] > 0)


def expiring_figure(
    points_by_date: Iterable[tuple[datetime, int]], now: datetime
) -> dict[str, Any]:
    """The account fields of the points expiring within 90 days of `now`, from the points
    left per expiry date (in date order); valid until the next later lot enters the 90 days."""
    horizon = now + EXPIRING_WINDOW
    expiring: list[dict[str, Any]] = []
    until = None
    for expires_at, points in points_by_date:
        if points <= 0:
            continue
        if expires_at > horizon:
            until = expires_at - EXPIRING_WINDOW
            break
        if expiring and expiring[-1]["expires_at"] == expires_at:
            expiring[-1]["points"] += points
        else:
            expiring.append({"points": points, "expires_at": expires_at})
    return {"expiring": expiring, "expiring_as_of": now, "expiring_until": until}


def _expiring_figure(lots: Iterable[dict[str, Any]], now: datetime) -> dict[str, Any]:
    return expiring_figure(((lot["expires_at"], lot["remaining"]) for lot in lots), now)


def redemption_counts(session: ClientSession | None, account_id: ObjectId) -> dict[str, int]:
    """Per reward, the quantity the owner redeemed and did not cancel."""
    return {
        str(row["_id"]): row["quantity"]
        for row in Redemption._get_collection().aggregate(
            [
                {"$match": {"user_id": account_id}},
                {"$match": {"status": {"$ne": CANCELLED}}},
                {"$group": {"_id": "$reward_id", "quantity": {"$sum": "$quantity"}}},
            ],
            session=session,
        )
    }
