"""A hot counter split into buckets: a reward's stock, an event's seats.

Every claim on one counter writes one document, so a burst of claims on it conflicts and
queues (docs/capacity.md). Split into N bucket documents, each holding part of the count,
concurrent claims take from buckets chosen at random and land on different documents:
about N times the claims. A claim reads the owner document and its buckets in one command
(a `$lookup`), so splitting costs no round trip; it takes from one bucket that holds
enough, by a conditional `$inc` that can never take a bucket below zero, and the counter is
exhausted only when the snapshot shows every bucket empty. The domains keep what their
buckets mean (`loyalty.stock`, `events.seats`); this module only splits and chooses.
"""

from __future__ import annotations

import random
from typing import Any

from pymongo.client_session import ClientSession
from pymongo.collection import Collection

MAX_BUCKETS = 64


def split(total: int, buckets: int) -> list[int]:
    """`total` in `buckets` parts that differ by one at most."""
    share, rest = divmod(total, buckets)
    return [share + (1 if index < rest else 0) for index in range(buckets)]


def bucket_id(owner_id: Any, bucket: int) -> str:
    return f"{owner_id}:{bucket}"


def read_with_buckets(
    session: ClientSession | None,
    owners: Collection,
    owner_id: Any,
    buckets: Collection,
    foreign_field: str,
) -> dict[str, Any] | None:
    """The owner document with its bucket documents under `buckets`, in one command."""
    return next(
        owners.aggregate(
            [
                {"$match": {"_id": owner_id}},
                {
                    "$lookup": {
                        "from": buckets.name,
                        "localField": "_id",
                        "foreignField": foreign_field,
                        "as": "buckets",
                    }
                },
            ],
            session=session,
        ),
        None,
    )


def plan(counts: dict[int, int], wanted: int, preferred: int) -> dict[int, int]:
    """What to take from which bucket (bucket -> count) for `wanted` of their total: all
    from the `preferred` bucket if it holds enough, else from another that does, chosen at
    random, else from the fullest first."""
    enough = [bucket for bucket, left in counts.items() if left >= wanted]
    if enough:
        return {preferred if preferred in enough else random.choice(enough): wanted}
    taken: dict[int, int] = {}
    for bucket, left in sorted(counts.items(), key=lambda item: -item[1]):
        if wanted and left:
            taken[bucket] = min(left, wanted)
            wanted -= taken[bucket]
    return taken


def turn(owner_id: Any, buckets: int, preferred: int) -> str:
    """The key of the lock a process's claims take turns on (`app.db.one_at_a_time`): the
    owner document's, or the preferred bucket's when the counter is split."""
    return str(owner_id) if buckets == 1 else bucket_id(owner_id, preferred % buckets)
