"""The points ledger: entries and lots, and the one way points move.

Every movement is one immutable `LedgerEntry`, written by `write` (or `earn`, which applies
the tier multiplier first) in the same transaction as the lots it opens or consumes and the
cached figures of the owner's `PointsAccount` (`loyalty.points_account`); nothing else writes a
balance. The other loyalty modules (rules, rewards, adjustments, partner systems, expiry)
describe a movement and call these. All writes of one owner touch that account document, so
concurrent movements of one owner conflict and `with_transaction` retries them one after
another: a debit sees every earlier credit, and the balance cannot go below zero.

Functions take `now` so that expiry, caps and tiers can be tested with a clock of their own.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession

from app.db import StaleCache, batch, caches_trusted, object_id
from app.errors import NotFound
from loyalty import errors
from loyalty.models import EARN, EXPIRE, REVERSE, LedgerEntry, Lot, PointsAccount
from loyalty.points_account import (
    EXPIRING_WINDOW,
    TIER_WINDOW,
    TIERS,
    Account,
    counts_as_earned,
    expiring_figure,
    open_lots,
    read_account,
    tier_figure,
)

LOT_LIFETIME_MONTHS = 24
# How many of its first lots with points an account keeps (`spend_lots`), so that most
# debits take their points without reading the lots: a debit's read of them was a tenth of
# a redemption's API CPU.
SPEND_LOTS_KEPT = 8


class LedgerCorrupt(RuntimeError):
    """The cached balance covers a debit its lots do not: a bug, never a client error."""


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
    # An expiry names the lot that lapses; a refund the lots the debit took points from.
    lot_id: ObjectId | None = None
    restore: list[dict[str, Any]] = field(default_factory=list)
    # A reversal takes back what is left of the reversed credit's own lot before any other.
    first_lot: ObjectId | None = None
    # See `LedgerEntry.earned_at` and `LedgerEntry.request_key`.
    earned_at: datetime | None = None
    request_key: str | None = None
    # A debit paid with points held for it (`loyalty.holds`): the hold ends with it.
    hold: str | None = None


def existing_entry(
    session: ClientSession | None, key: str, once_key: str | None = None
) -> dict[str, Any] | None:
    entries = LedgerEntry._get_collection()
    found = entries.find_one({"idempotency_key": key}, session=session)
    if found is None and once_key:
        found = entries.find_one({"once_key": once_key}, session=session)
    return found


# --- writing a movement -----------------------------------------------------------------


def _consume(
    session: ClientSession,
    movement: Movement,
    points: int,
    now: datetime,
    account: Account,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Take `points` from the account's lots: the lots taken from, and the account fields
    after it (the expiring figure, stale when the lots were not all read, `spend_from` and
    the lots kept, `spend_lots`)."""
    lots = Lot._get_collection()
    writes = batch(session)
    if movement.lot_id is not None:
        writes.update(
            lots, {"_id": movement.lot_id}, {"$inc": {"remaining": -points, "expired": points}}
        )
        return [{"lot_id": movement.lot_id, "points": points}], {
            "expiring_until": now,
            "spend_lots": None,
        }
    if movement.first_lot is None and caches_trusted():
        spent = spend_kept(account, points, now)
        if spent is not None:
            taken, fields = spent
            for lot, take in taken:
                # Conditioned on what the account says the lot holds: a stale `spend_lots`
                # makes the transaction run again, reading the lots.
                writes.update(
                    lots,
                    {"_id": lot["_id"], "remaining": lot["remaining"]},
                    {"$inc": {"remaining": -take}},
                    refusal=StaleCache(),
                )
            return [{"lot_id": lot["_id"], "points": take} for lot, take in taken], fields
    return _consume_read(session, movement, points, now, account.spend_from)


def spend_kept(
    account: Account, points: int, now: datetime
) -> tuple[list[tuple[dict[str, Any], int]], dict[str, Any]] | None:
    """`points` taken from the lots the account keeps (`spend_lots`), oldest expiry first:
    each lot with the points taken from it, and the account fields after it. None when the
    kept lots cannot tell: not kept, holding too few (or all the points but not every lot,
    so the first lot left is not known), or the expiring figure not current.

    A debit then reads no lot: with the expiring figure current, it holds every lot within
    90 days by date, so taking from them is a subtraction; and `expiring_until` (the next
    lot to enter the 90 days) moves only when every lot before it is emptied.
    """
    kept = account.spend_lots
    if kept is None or not account.is_current("expiring", now):
        return None
    holding = sum(lot["remaining"] for lot in kept)
    every_lot = holding == account.balance
    if holding < points or (holding == points and not every_lot):
        return None
    horizon = now + EXPIRING_WINDOW
    expiring = {part["expires_at"]: part["points"] for part in account.get("expiring") or []}
    taken: list[tuple[dict[str, Any], int]] = []
    left_open: list[dict[str, Any]] = []
    later_emptied = False
    left = points
    for lot in kept:
        take = min(left, lot["remaining"])
        if take < lot["remaining"]:
            left_open.append({**lot, "remaining": lot["remaining"] - take})
        if not take:
            continue
        left -= take
        taken.append((lot, take))
        if lot["expires_at"] <= horizon:
            if expiring.get(lot["expires_at"], 0) < take:
                return None  # the figure does not hold this lot: read them
            expiring[lot["expires_at"]] -= take
        elif take == lot["remaining"]:
            later_emptied = True
    fields: dict[str, Any] = {
        "expiring": [
            {"points": points, "expires_at": expires_at}
            for expires_at, points in expiring.items()
            if points
        ],
        "spend_lots": left_open,
        "spend_from": (left_open[0] if left_open else kept[-1])["expires_at"],
    }
    if later_emptied:
        later = [lot["expires_at"] for lot in left_open if lot["expires_at"] > horizon]
        if later:
            fields["expiring_until"] = later[0] - EXPIRING_WINDOW
        else:
            # No lot left (every one was kept), or the next one is not known: recomputed
            # when next read.
            fields["expiring_until"] = None if every_lot else now
    return taken, fields


def _consume_read(
    session: ClientSession,
    movement: Movement,
    points: int,
    now: datetime,
    spend_from: datetime | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`_consume`, reading the lots in spending order from `spend_from`."""
    lots = Lot._get_collection()
    writes = batch(session)
    taken: dict[ObjectId, int] = {}
    left = points
    if movement.first_lot is not None:
        own = lots.find_one({"_id": movement.first_lot}, {"remaining": 1}, session=session)
        if own is not None and own["remaining"] > 0:
            taken[own["_id"]] = min(left, own["remaining"])
            left -= taken[own["_id"]]
    # Read in spending order until the points are found, the expiring figure is known (the
    # lots within 90 days, and the first later one still holding points) and as many lots
    # with points are read as the account keeps. Each lot read is kept with the points it
    # holds after the debit.
    horizon = now + EXPIRING_WINDOW
    read: list[dict[str, Any]] = []
    later_open = read_open = 0
    for lot in open_lots(session, movement.account_id, spend_from):
        remaining = lot["remaining"] - taken.get(lot["_id"], 0)
        if left and lot["_id"] != movement.first_lot:
            taken[lot["_id"]] = min(left, remaining)
            left -= taken[lot["_id"]]
            remaining -= taken[lot["_id"]]
        read.append({**lot, "remaining": remaining})
        read_open += remaining > 0
        later_open += remaining > 0 and lot["expires_at"] > horizon
        if not left and later_open and read_open >= SPEND_LOTS_KEPT:
            break
    if left and spend_from is not None:
        # A `spend_from` past a lot with points (reconciliation reports it): every lot.
        return _consume_read(session, movement, points, now, None)
    if left:
        raise LedgerCorrupt(f"account {movement.account_id}: lots short by {left} points")
    for lot_id, take in taken.items():
        writes.update(lots, {"_id": lot_id}, {"$inc": {"remaining": -take}})
    # Where the lots with points now begin; past the last lot read when none is left.
    still_open = [lot for lot in read if lot["remaining"]]
    moved = still_open[:1] or read[-1:]
    return [{"lot_id": lot_id, "points": take} for lot_id, take in taken.items()], {
        **expiring_figure(((lot["expires_at"], lot["remaining"]) for lot in read), now),
        "spend_lots": still_open[:SPEND_LOTS_KEPT],
        **({"spend_from": moved[0]["expires_at"]} if moved else {}),
    }


def _credit_lots(
    session: ClientSession, movement: Movement, entry: dict[str, Any], now: datetime
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Put the credit in a new lot (returned) or, for a refund, back where it came from."""
    lots = Lot._get_collection()
    writes = batch(session)
    if movement.restore:
        # A refund puts points back where they came from, keeping their expiry dates (an
        # already expired lot is expired again by the next expiry run).
        for part in movement.restore:
            writes.update(lots, {"_id": part["lot_id"]}, {"$inc": {"remaining": part["points"]}})
        return list(movement.restore), None
    entry["expires_at"] = add_months(now, LOT_LIFETIME_MONTHS)
    lot = {
        "_id": ObjectId(),
        "account_id": movement.account_id,
        "entry_id": entry["_id"],
        "amount": movement.amount,
        "remaining": movement.amount,
        "expired": 0,
        "expires_at": entry["expires_at"],
        "created_at": now,
    }
    writes.insert(lots, lot)
    return [], lot


def _kept_with(account: Account, lot: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The lots the account keeps (`spend_lots`) once `lot` is opened: it joins them where it
    falls in spending order when they are every lot, or when it falls among them (a credit
    expires after every lot credited before it, unless it is dated earlier)."""
    kept = account.spend_lots
    if kept is None and account.balance:
        return None
    kept = kept or []
    every_lot = sum(each["remaining"] for each in kept) == account.balance
    new = {name: lot[name] for name in ("_id", "remaining", "expires_at")}
    if not every_lot and (not kept or _spending_order(new) > _spending_order(kept[-1])):
        return kept
    return sorted([*kept, new], key=_spending_order)[:SPEND_LOTS_KEPT]


def _spending_order(lot: dict[str, Any]) -> tuple[datetime, ObjectId]:
    return lot["expires_at"], lot["_id"]


def _tier_change(account: Account, movement: Movement, now: datetime) -> dict[str, Any]:
    """The tier figure once the movement is counted (the account was read with its tier
    figure current)."""
    assert account.tier_time is not None, "read_account(..., tier=True) first"
    points, until = account.get("tier_points", 0), account.get("tier_until")
    if movement.kind == EARN:
        leaves = now + TIER_WINDOW
        points, until = points + movement.amount, min(until or leaves, leaves)
    elif movement.earned_at is not None and movement.earned_at > account.tier_time - TIER_WINDOW:
        points += movement.amount  # a reversal of an earn still in the window
    return {**tier_figure(points, None, account.tier_time), "tier_until": until}


def write(
    session: ClientSession,
    movement: Movement,
    now: datetime,
    *,
    account: Account | None = None,
    account_changes: dict[str, Any] | None = None,
    send: bool = True,
) -> dict[str, Any]:
    """Write one entry with its lots and the account's cached figures; return the entry.

    The account is read (or given, as its caller read it in this transaction) and every
    write goes out in one command: `send=False` leaves them queued in the unit's batch for
    the caller to add its own. `account_changes` are more fields to `$set` on the account.
    """
    earned = counts_as_earned(movement.kind, movement.source)
    if account is None:
        account = read_account(session, movement.account_id, now, tier=earned)
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
    changes: dict[str, Any] = {**account.changes, "updated_at": now, **(account_changes or {})}
    inc: dict[str, Any] = {"balance": movement.amount}
    if earned:
        inc["lifetime_earned"] = movement.amount
        changes.update(_tier_change(account, movement, now))
    if movement.amount > 0:
        entry["lots"], lot = _credit_lots(session, movement, entry, now)
        if lot is None:
            # A refund: recomputed when next read, and forgotten (see `loyalty.points_account`).
            changes["expiring_until"] = now
            changes["spend_from"] = None
            changes["spend_lots"] = None
        else:
            enters_window = lot["expires_at"] - EXPIRING_WINDOW
            changes["spend_lots"] = _kept_with(account, lot)
            if account.is_current("expiring", now):
                until = account.get("expiring_until")
                changes["expiring_until"] = min(until or enters_window, enters_window)
            if account.spend_from is not None or not account.document:
                changes["spend_from"] = min(
                    account.spend_from or entry["expires_at"], entry["expires_at"]
                )
        condition: dict[str, Any] = {"_id": movement.account_id}
    else:
        # Points held for drops are not the owner's to spend, but an expiry or a reversal
        # takes its points whatever is held (a hold then finds too few when it is used).
        held = account.balance - account.spendable(movement.hold)
        if movement.kind in (EXPIRE, REVERSE):
            held = 0
        if account.balance - held < -movement.amount:
            raise errors.InsufficientPoints()
        entry["lots"], lots_after = _consume(session, movement, -movement.amount, now, account)
        changes.update(lots_after)
        # The snapshot already says there is enough; the condition guards invariant 1 (a
        # hold placed since is a write conflict, and the unit runs again).
        condition = {"_id": movement.account_id, "balance": {"$gte": held - movement.amount}}
    unset: dict[str, Any] = {}
    if movement.hold is not None and account.held_for(movement.hold):
        inc["held"] = -account.held_for(movement.hold)
        unset[f"holds.{movement.hold}"] = ""
    entry["balance_after"] = account.balance + movement.amount
    set_elsewhere = {name.split(".")[0] for name in (*inc, *changes)}
    on_insert: dict[str, Any] = {
        name: value
        for name, value in (
            ("created_at", now),
            ("redeemed", {}),
            ("lifetime_earned", 0),
            ("tier", TIERS[0].name),
        )
        if name not in set_elsewhere
    }
    update: dict[str, Any] = {"$inc": inc, "$set": changes, "$setOnInsert": on_insert}
    if unset:
        update["$unset"] = unset
    writes = batch(session)
    writes.update(
        PointsAccount._get_collection(),
        condition,
        update,
        upsert=movement.amount > 0,
        refusal=errors.InsufficientPoints(),
    )
    writes.insert(LedgerEntry._get_collection(), entry)
    if send:
        writes.send()
    return entry


def earn(
    session: ClientSession, movement: Movement, multipliable: bool, now: datetime
) -> dict[str, Any]:
    """Credit `movement.amount` base points, times the owner's tier multiplier if asked."""
    account = read_account(session, movement.account_id, now, tier=True)
    amount = movement.amount
    if multipliable:
        amount = amount * account.tier.multiplier // 10
    return write(session, replace(movement, amount=amount), now, account=account)
