"""A reward's stock, on its own document or split into buckets.

Every redemption of a reward takes from its stock in its transaction, so a reward dropped
to everyone at once puts hundreds of claims a second on one document: they conflict, run
again, and the tail grows to seconds (docs/capacity.md). A reward created or changed with
`stock_buckets` > 1 keeps its stock in that many `reward_stock` documents instead (its own
`stock` stays 0): a redemption reads the reward and its buckets in one command (a
`$lookup`, so the redemption's command budget does not change), takes from one bucket with
enough left, chosen at random, and concurrent redemptions land on different documents. A
bucket is taken from by a conditional `$inc`, so no bucket, and no total, goes below zero
(invariant 5); the reward is out of stock only when the snapshot shows every bucket empty,
never while another bucket still holds some. A cancellation puts its stock back in one
bucket.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession

from app.db import batch
from loyalty.models import Reward, StockBucket

MAX_BUCKETS = 64


def bucket_count(reward: dict[str, Any]) -> int:
    return reward.get("stock_buckets") or 1


def split(total: int, buckets: int) -> list[int]:
    """`total` in `buckets` parts that differ by one at most."""
    share, rest = divmod(total, buckets)
    return [share + (1 if index < rest else 0) for index in range(buckets)]


def bucket_id(reward_id: ObjectId, bucket: int) -> str:
    return f"{reward_id}:{bucket}"


def read_with_stock(session: ClientSession | None, reward_id: ObjectId) -> dict[str, Any] | None:
    """The reward with `buckets` (its stock documents, none when it keeps its stock itself)
    and `stock_left` (the live total), in one command."""
    found = next(
        Reward._get_collection().aggregate(
            [
                {"$match": {"_id": reward_id}},
                {
                    "$lookup": {
                        "from": StockBucket._get_collection_name(),
                        "localField": "_id",
                        "foreignField": "reward_id",
                        "as": "buckets",
                    }
                },
            ],
            session=session,
        ),
        None,
    )
    if found is not None:
        found["stock_left"] = stock_left(found)
    return found


def stock_left(reward: dict[str, Any]) -> int:
    if bucket_count(reward) > 1:
        return sum(bucket["stock"] for bucket in reward.get("buckets", ()))
    return reward["stock"]


def live_stock(rewards: Iterable[Any]) -> dict[ObjectId, int]:
    """The stock of each bucketed reward among `rewards` (documents or dicts), in one read;
    the others keep theirs on themselves."""
    split_ids = [
        reward["_id"] if isinstance(reward, dict) else reward.pk
        for reward in rewards
        if (reward.get("stock_buckets") if isinstance(reward, dict) else reward.stock_buckets)
        not in (None, 1)
    ]
    totals: dict[ObjectId, int] = dict.fromkeys(split_ids, 0)
    if split_ids:
        for bucket in StockBucket._get_collection().find(
            {"reward_id": {"$in": split_ids}}, {"reward_id": 1, "stock": 1}
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
    `read_with_stock` (the caller checked `stock_left`): from its own stock, or from the
    `preferred` bucket if it holds enough, else another that does, else several."""
    writes = batch(session)
    if bucket_count(reward) == 1:
        writes.update(
            Reward._get_collection(),
            {"_id": reward["_id"], "stock": {"$gte": quantity}},
            {"$inc": {"stock": -quantity}},
            refusal=refusal,
        )
        return
    buckets = {bucket["bucket"]: bucket["stock"] for bucket in reward["buckets"]}
    enough = [number for number, left in buckets.items() if left >= quantity]
    if enough:
        chosen = preferred if preferred in enough else random.choice(enough)
        plan = {chosen: quantity}
    else:
        plan, wanted = {}, quantity
        for number, left in sorted(buckets.items(), key=lambda item: -item[1]):
            if wanted and left:
                plan[number] = min(left, wanted)
                wanted -= plan[number]
    for number, taken in plan.items():
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
    number = hash(str(key)) % bucket_count(reward)
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
