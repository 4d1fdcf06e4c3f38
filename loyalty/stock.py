"""A reward's stock, on its own document or split into buckets.

Every redemption of a reward takes from its stock in its transaction, so a reward dropped
to everyone at once puts hundreds of claims a second on one document: they conflict, run
again, and the tail grows to seconds (docs/capacity.md). A reward created or changed with
`stock_buckets` > 1 keeps its stock in that many `reward_stock` documents instead (its own
`stock` stays 0), as `app.buckets` describes: a redemption reads the reward and its buckets
in one command, so its command budget does not change, and takes from one bucket with
enough left; no bucket, and no total, goes below zero (invariant 5), and the reward is out
of stock only when every bucket is empty. A cancellation puts its stock back in one bucket.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession

from app.buckets import MAX_BUCKETS as MAX_BUCKETS
from app.buckets import bucket_id, plan, read_with_buckets, split
from app.db import batch
from loyalty.models import Reward, StockBucket


def bucket_count(reward: dict[str, Any]) -> int:
    return reward.get("stock_buckets") or 1


def read_with_stock(session: ClientSession | None, reward_id: ObjectId) -> dict[str, Any] | None:
    """The reward with `buckets` (its stock documents, none when it keeps its stock itself)
    and `stock_left` (the live total), in one command."""
    found = read_with_buckets(
        session,
        Reward._get_collection(),
        reward_id,
        StockBucket._get_collection(),
        "reward_id",
    )
    if found is not None:
        found["stock_left"] = stock_left(found)
    return found


def stock_left(reward: dict[str, Any]) -> int:
    if bucket_count(reward) > 1:
        return sum(bucket["stock"] for bucket in reward.get("buckets", ()))
    return reward["stock"]


def live_stock(rewards: Iterable[Reward]) -> dict[ObjectId, int]:
    """The stock of each bucketed reward among `rewards`, in one read; the others keep
    theirs on themselves."""
    totals: dict[ObjectId, int] = {
        reward.pk: 0 for reward in rewards if (reward.stock_buckets or 1) > 1
    }
    if totals:
        for bucket in StockBucket._get_collection().find(
            {"reward_id": {"$in": list(totals)}}, {"reward_id": 1, "stock": 1}
        ):
            totals[bucket["reward_id"]] += bucket["stock"]
    return totals


def take(
    session: ClientSession,
    reward: dict[str, Any],
    quantity: int,
    preferred: int,
    refusal: Exception,
) -> None:
    """Queue the conditional decrements that take `quantity` from the reward read with
    `read_with_stock` (the caller checked `stock_left`): from its own stock, or from its
    buckets (`app.buckets.plan`)."""
    writes = batch(session)
    if bucket_count(reward) == 1:
        writes.update(
            Reward._get_collection(),
            {"_id": reward["_id"], "stock": {"$gte": quantity}},
            {"$inc": {"stock": -quantity}},
            refusal=refusal,
        )
        return
    counts = {bucket["bucket"]: bucket["stock"] for bucket in reward["buckets"]}
    for number, taken in plan(counts, quantity, preferred).items():
        writes.update(
            StockBucket._get_collection(),
            {"_id": bucket_id(reward["_id"], number), "stock": {"$gte": taken}},
            {"$inc": {"stock": -taken}},
            refusal=refusal,
        )


def give_back(session: ClientSession, reward: dict[str, Any], quantity: int, key: Any) -> None:
    """Put `quantity` back: in the reward's own stock, or in the bucket `key` picks."""
    if bucket_count(reward) == 1:
        Reward._get_collection().update_one(
            {"_id": reward["_id"]}, {"$inc": {"stock": quantity}}, session=session
        )
        return
    number = int(str(key)[-6:], 16) % bucket_count(reward)
    StockBucket._get_collection().update_one(
        {"_id": bucket_id(reward["_id"], number)}, {"$inc": {"stock": quantity}}, session=session
    )


def set_stock(session: ClientSession, reward_id: ObjectId, total: int, buckets: int) -> None:
    """Make the reward hold `total` in `buckets` parts (1: on itself), whatever it held."""
    stock = StockBucket._get_collection()
    stock.delete_many({"reward_id": reward_id, "bucket": {"$gte": buckets}}, session=session)
    if buckets == 1:
        stock.delete_many({"reward_id": reward_id}, session=session)
    else:
        for number, part in enumerate(split(total, buckets)):
            stock.update_one(
                {"_id": bucket_id(reward_id, number)},
                {"$set": {"reward_id": reward_id, "bucket": number, "stock": part}},
                upsert=True,
                session=session,
            )
    Reward._get_collection().update_one(
        {"_id": reward_id},
        {"$set": {"stock": total if buckets == 1 else 0, "stock_buckets": buckets}},
        session=session,
    )
