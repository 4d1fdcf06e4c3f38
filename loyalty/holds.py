"""Points held for a purpose (an entry in a drop's draw): set aside, not spent.

A hold is a reservation on the owner's points account, not a movement: the account keeps,
per hold key, the points held (`holds`) and their sum (`held`), and every debit but an
expiry or a reversal leaves `balance - held` alone (`loyalty.ledger.write`). So the
ledger, the lots and invariant 1 are untouched while points wait for a draw; the winner's
redemption is then an ordinary debit that ends the hold in the same write
(`Movement.hold`), and a loser's hold is simply released.

Each hold and release is one conditional update of one account, sent for many owners in
one command (a hold after one read of those accounts): a draw of 100,000 entries holds
their points in a few hundred commands, with no transaction (one document each). Both are
idempotent by the hold's key: holding again changes nothing, releasing what is gone changes
nothing.

Held points still expire on their date (the lots are not touched): an owner whose held
points expired before the draw may find too few when they win (`insufficient_points`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne

from app.db import client
from loyalty.models import PointsAccount

# Holds sent per command.
CHUNK = 500


@dataclass(frozen=True)
class Hold:
    account_id: ObjectId
    # Names the purpose: "drop:<drop id>". No dots (it is a field name of the account).
    key: str
    points: int


def _namespace() -> str:
    collection = PointsAccount._get_collection()
    return f"{collection.database.name}.{collection.name}"


def hold_points(holds: Sequence[Hold]) -> set[ObjectId]:
    """Hold each owner's points where their balance less what they already hold covers
    them. Returns the accounts whose hold is in place (now or before)."""
    in_place: set[ObjectId] = set()
    for start in range(0, len(holds), CHUNK):
        waiting = list(holds[start : start + CHUNK])
        for _ in range(_ROUNDS):
            placed, short = _hold_round(waiting)
            in_place |= placed
            waiting = [hold for hold in waiting if hold.account_id not in placed | short]
            if not waiting:
                break
    return in_place


# Rounds of reading and holding one chunk: an account written between its read and its
# hold (a redemption, an earn) is read again in the next round. Each round settles the
# accounts nobody else wrote meanwhile; the bound only stops a loop that never would.
_ROUNDS = 50


def _hold_round(holds: Sequence[Hold]) -> tuple[set[ObjectId], set[ObjectId]]:
    """Read the accounts, then hold where the figures read cover the points, on condition
    that they are still those figures: the accounts held (now or before), and those too
    short (or gone). The condition is equality on `balance` and `held` rather than `$expr`
    on their difference, the same test, which SecantusDB evaluates by scanning every
    account (about 0.5 s an update at 20,000 accounts) where equality uses the `_id` index.
    """
    accounts = {
        account["_id"]: account
        for account in PointsAccount._get_collection().find(
            {"_id": {"$in": [hold.account_id for hold in holds]}},
            {"balance": 1, "held": 1, "holds": 1},
        )
    }
    placed: set[ObjectId] = set()
    short: set[ObjectId] = set()
    tried: list[tuple[Hold, dict[str, Any]]] = []
    for hold in holds:
        account = accounts.get(hold.account_id)
        if account is not None and hold.key in (account.get("holds") or {}):
            placed.add(hold.account_id)
        elif account is None or _free(account) < hold.points:
            short.add(hold.account_id)
        else:
            tried.append((hold, account))
    if tried:
        models = [
            UpdateOne(
                {
                    "_id": hold.account_id,
                    "balance": account["balance"],
                    "held": account.get("held"),
                    f"holds.{hold.key}": {"$exists": False},
                },
                {"$inc": {"held": hold.points}, "$set": {f"holds.{hold.key}": hold.points}},
                namespace=_namespace(),
            )
            for hold, account in tried
        ]
        result = client().bulk_write(models, ordered=False, verbose_results=True)
        placed.update(
            hold.account_id
            for index, (hold, _) in enumerate(tried)
            if result.update_results[index].matched_count
        )
    return placed, short


def _free(account: dict[str, Any]) -> int:
    return int(account.get("balance") or 0) - int(account.get("held") or 0)


def release_points(holds: Sequence[Hold]) -> None:
    """End these holds (the points are the owner's to spend again), each as it was placed;
    ended ones are left alone."""
    for start in range(0, len(holds), CHUNK):
        models = [
            UpdateOne(
                {"_id": hold.account_id, f"holds.{hold.key}": hold.points},
                {"$inc": {"held": -hold.points}, "$unset": {f"holds.{hold.key}": ""}},
                namespace=_namespace(),
            )
            for hold in holds[start : start + CHUNK]
        ]
        client().bulk_write(models, ordered=False)


def held_points(account_id: ObjectId, key: str) -> int:
    """What the hold `key` holds of the owner's points now (0: none)."""
    account = PointsAccount._get_collection().find_one({"_id": account_id}, {"holds": 1})
    return ((account or {}).get("holds") or {}).get(key, 0)
