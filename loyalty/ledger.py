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

from app.db import batch, object_id
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
    spend_from: datetime | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Take `points` from the account's lots: the lots taken from, and the account fields
    after it (the expiring figure, stale when the lots were not all read, and `spend_from`)."""
    lots = Lot._get_collection()
    writes = batch(session)
    if movement.lot_id is not None:
        writes.update(
            lots, {"_id": movement.lot_id}, {"$inc": {"remaining": -points, "expired": points}}
        )
        return [{"lot_id": movement.lot_id, "points": points}], {"expiring_until": now}
    taken: dict[ObjectId, int] = {}
    left = points
    if movement.first_lot is not None:
        own = lots.find_one({"_id": movement.first_lot}, {"remaining": 1}, session=session)
        if own is not None and own["remaining"] > 0:
            taken[own["_id"]] = min(left, own["remaining"])
            left -= taken[own["_id"]]
    # Read in spending order until the points are found and the expiring figure is known:
    # the lots within 90 days, and the first later one still holding points.
    horizon = now + EXPIRING_WINDOW
    points_by_date: list[tuple[datetime, int]] = []
    for lot in open_lots(session, movement.account_id, spend_from):
        remaining = lot["remaining"] - taken.get(lot["_id"], 0)
        if left and lot["_id"] != movement.first_lot:
            taken[lot["_id"]] = min(left, remaining)
            left -= taken[lot["_id"]]
            remaining -= taken[lot["_id"]]
        points_by_date.append((lot["expires_at"], remaining))
        if not left and remaining and lot["expires_at"] > horizon:
            break
    if left and spend_from is not None:
        # A `spend_from` past a lot with points (reconciliation reports it): every lot.
        return _consume(session, movement, points, now, None)
    if left:
        raise LedgerCorrupt(f"account {movement.account_id}: lots short by {left} points")
    for lot_id, take in taken.items():
        writes.update(lots, {"_id": lot_id}, {"$inc": {"remaining": -take}})
    # Where the lots with points now begin; past the last lot read when none is left.
    still_open = [expires_at for expires_at, remaining in points_by_date if remaining]
    moved = still_open[:1] or [expires_at for expires_at, _ in points_by_date[-1:]]
    return [{"lot_id": lot_id, "points": take} for lot_id, take in taken.items()], {
        **expiring_figure(points_by_date, now),
        **({"spend_from": moved[0]} if moved else {}),
    }


def _credit_lots(
    session: ClientSession, movement: Movement, entry: dict[str, Any], now: datetime
) -> tuple[list[dict[str, Any]], datetime | None]:
    """Put the credit in a new lot (returning when that lot enters the expiring window) or,
    for a refund, back where it came from."""
    lots = Lot._get_collection()
    writes = batch(session)
    if movement.restore:
        # A refund puts points back where they came from, keeping their expiry dates (an
        # already expired lot is expired again by the next expiry run).
        for part in movement.restore:
            writes.update(lots, {"_id": part["lot_id"]}, {"$inc": {"remaining": part["points"]}})
        return list(movement.restore), None
    entry["expires_at"] = add_months(now, LOT_LIFETIME_MONTHS)
    writes.insert(
        lots,
        {
            "account_id": movement.account_id,
            "entry_id": entry["_id"],
            "amount": movement.amount,
            "remaining": movement.amount,
            "expired": 0,
            "expires_at": entry["expires_at"],
            "created_at": now,
        },
    )
    return [], entry["expires_at"] - EXPIRING_WINDOW


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
        entry["lots"], enters_window = _credit_lots(session, movement, entry, now)
        if enters_window is None:
            # A refund: recomputed when next read, and forgotten (see `loyalty.points_account`).
            changes["expiring_until"] = now
            changes["spend_from"] = None
        else:
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
        entry["lots"], lots_after = _consume(
            session, movement, -movement.amount, now, account.spend_from
        )
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
