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
from app.buckets import SplitCounter
from app.db import batch
from loyalty.models import Reward, StockBucket

STOCK = SplitCounter(
    owners=Reward._get_collection,
    buckets=StockBucket._get_collection,
    owner_field="reward_id",
    field="stock",
    split_field="stock_buckets",
)


def bucket_count(reward: dict[str, Any]) -> int:
    return STOCK.count(reward)


def read_with_stock(session: ClientSession | None, reward_id: ObjectId) -> dict[str, Any] | None:
    """The reward with `buckets` (its stock documents, none when it keeps its stock itself)
    and `stock_left` (the live total), in one command."""
    found = STOCK.read(session, reward_id)
    if found is not None:
        found["stock_left"] = found["left"]
    return found


def live_stock(rewards: Iterable[Reward]) -> dict[ObjectId, int]:
    """The stock of each bucketed reward among `rewards`, in one read; the others keep
    theirs on themselves."""
    return STOCK.live(
        {"_id": reward.pk, "stock_buckets": reward.stock_buckets} for reward in rewards
    )


def take(
    session: ClientSession,
    reward: dict[str, Any],
    quantity: int,
    preferred: int,
    refusal: Exception,
) -> None:
    """Queue the conditional decrements that take `quantity` from the reward read with
    `read_with_stock` (the caller checked `stock_left`)."""
    STOCK.take(session, reward, quantity, preferred, refusal)


def take_on_terms(
    session: ClientSession, terms: dict[str, Any], quantity: int, refusal: Exception
) -> None:
    """Queue the decrement of the stock a reward keeps on itself, on condition that it holds
    `quantity` and that its terms are still those of `terms` (its `version`, which every
    edit increments; None matches a reward never edited since it had one)."""
    batch(session).update(
        Reward._get_collection(),
        {"_id": terms["_id"], "version": terms.get("version"), "stock": {"$gte": quantity}},
        {"$inc": {"stock": -quantity}},
        refusal=refusal,
    )


def give_back(session: ClientSession, reward: dict[str, Any], quantity: int, key: Any) -> None:
    """Put `quantity` back: in the reward's own stock, or in the bucket `key` picks."""
    STOCK.give_back(session, reward["_id"], bucket_count(reward), quantity, int(str(key)[-6:], 16))


def set_stock(session: ClientSession, reward_id: ObjectId, total: int, buckets: int) -> None:
    """Make the reward hold `total` in `buckets` parts (1: on itself), whatever it held."""
    STOCK.store(session, reward_id, total, buckets)
