"""Points held for a purpose (an entry in a drop's draw): set aside, not spent.

A hold is a reservation on the owner's points account, not a movement: the account keeps,
per hold key, the points held (`holds`) and their sum (`held`), and every debit but an
expiry or a reversal leaves `balance - held` alone (`loyalty.ledger.write`). So the
ledger, the lots and invariant 1 are untouched while points wait for a draw; the winner's
redemption is then an ordinary debit that ends the hold in the same write
(`Movement.hold`), and a loser's hold is simply released.

Each hold and release is one conditional update of one account, sent for many owners in
one command: a draw of 100,000 entries holds their points in a few hundred commands, with
no transaction (one document each). Both are idempotent by the hold's key: holding again
changes nothing, releasing what is gone changes nothing.

Held points still expire on their date (the lots are not touched): an owner whose held
points expired before the draw may find too few when they win (`insufficient_points`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
        chunk = holds[start : start + CHUNK]
        models = [
            UpdateOne(
                {
                    "_id": hold.account_id,
                    f"holds.{hold.key}": {"$exists": False},
                    "$expr": {
                        "$gte": [
                            {"$subtract": ["$balance", {"$ifNull": ["$held", 0]}]},
                            hold.points,
                        ]
                    },
                },
                {"$inc": {"held": hold.points}, "$set": {f"holds.{hold.key}": hold.points}},
                namespace=_namespace(),
            )
            for hold in chunk
        ]
        result = client().bulk_write(models, ordered=False, verbose_results=True)
        missed = []
        for index, hold in enumerate(chunk):
            if result.update_results[index].matched_count:
                in_place.add(hold.account_id)
            else:
                missed.append(hold)
        # Not matched: held already (a job run again), or too few points.
        if missed:
            found = PointsAccount._get_collection().find(
                {"_id": {"$in": [hold.account_id for hold in missed]}}, {"holds": 1}
            )
            holding = {account["_id"]: account.get("holds") or {} for account in found}
            in_place.update(
                hold.account_id for hold in missed if hold.key in holding.get(hold.account_id, {})
            )
    return in_place


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
