"""A hot counter split into buckets: a reward's stock, an event's free seats.

Every claim on one counter writes one document, so a burst of claims on it conflicts and
queues (docs/capacity.md). Split into N bucket documents, each holding part of the count,
concurrent claims take from buckets chosen at random and land on different documents:
about N times the claims. A claim reads the counter's document and its buckets in one
command (a `$lookup`), so splitting costs no round trip; it takes from one bucket that
holds enough, by a conditional `$inc` that can never take a bucket below zero, and the
counter is exhausted only when the snapshot shows every bucket empty. An unsplit counter
(`N = 1`, the default) stays on its own document, as before. The domains say what their
counter means and where it lives (`loyalty.stock`, `events.seats`); this module splits,
reads and chooses.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pymongo.client_session import ClientSession
from pymongo.collection import Collection

from app.db import batch

MAX_BUCKETS = 64


def split(total: int, buckets: int) -> list[int]:
    """`total` in `buckets` parts that differ by one at most."""
    share, rest = divmod(total, buckets)
    return [share + (1 if index < rest else 0) for index in range(buckets)]


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
    counter's document, or the preferred bucket when the counter is split."""
    return str(owner_id) if buckets == 1 else f"{owner_id}:{preferred % buckets}"


@dataclass(frozen=True)
class SplitCounter:
    """Where one kind of counter lives: on its owner's document (`field`), or in the bucket
    documents of `buckets` (each `{_id: "<owner id>:<n>", <owner_field>, bucket, <field>}`)
    when the owner's `split_field` says more than 1."""

    owners: Callable[[], Collection]
    buckets: Callable[[], Collection]
    owner_field: str
    field: str
    split_field: str

    def count(self, owner: dict[str, Any]) -> int:
        """How many buckets the owner's counter is split in (1: not split)."""
        return owner.get(self.split_field) or 1

    def bucket_id(self, owner_id: Any, bucket: int) -> str:
        return f"{owner_id}:{bucket}"

    def read(self, session: ClientSession | None, owner_id: Any) -> dict[str, Any] | None:
        """The owner with its bucket documents (`buckets`) and the counter's live value
        (`left`), in one command."""
        found = next(
            self.owners().aggregate(
                [
                    {"$match": {"_id": owner_id}},
                    {
                        "$lookup": {
                            "from": self.buckets().name,
                            "localField": "_id",
                            "foreignField": self.owner_field,
                            "as": "buckets",
                        }
                    },
                ],
                session=session,
            ),
            None,
        )
        if found is not None:
            found["left"] = self.left(found)
        return found

    def left(self, owner: dict[str, Any]) -> int:
        if self.count(owner) > 1:
            return sum(bucket[self.field] for bucket in owner.get("buckets", ()))
        return owner[self.field]

    def live(self, owners: Iterable[dict[str, Any]]) -> dict[Any, int]:
        """The live value of each split counter among `owners` (documents with `_id` and the
        split field), in one read; unsplit ones are left out (theirs is on them)."""
        totals: dict[Any, int] = {owner["_id"]: 0 for owner in owners if self.count(owner) > 1}
        if totals:
            for bucket in self.buckets().find(
                {self.owner_field: {"$in": list(totals)}}, {self.owner_field: 1, self.field: 1}
            ):
                totals[bucket[self.owner_field]] += bucket[self.field]
        return totals

    def take(
        self,
        session: ClientSession,
        owner: dict[str, Any],
        wanted: int,
        preferred: int,
        refusal: Exception,
    ) -> dict[int, int]:
        """Queue the conditional decrements taking `wanted` from the owner read with `read`
        (its caller saw enough `left`); what was taken from which bucket (none: the owner's
        own document)."""
        writes = batch(session)
        if self.count(owner) == 1:
            writes.update(
                self.owners(),
                {"_id": owner["_id"], self.field: {"$gte": wanted}},
                {"$inc": {self.field: -wanted}},
                refusal=refusal,
            )
            return {}
        counts = {bucket["bucket"]: bucket[self.field] for bucket in owner["buckets"]}
        taken = plan(counts, wanted, preferred % self.count(owner))
        for number, count in taken.items():
            writes.update(
                self.buckets(),
                {"_id": self.bucket_id(owner["_id"], number), self.field: {"$gte": count}},
                {"$inc": {self.field: -count}},
                refusal=refusal,
            )
        return taken

    def give_back(
        self, session: ClientSession, owner_id: Any, buckets: int, count: int, bucket: int
    ) -> None:
        """Queue `count` back in `bucket` (of `buckets`; the owner's own document when 1)."""
        writes = batch(session)
        if buckets == 1:
            writes.update(self.owners(), {"_id": owner_id}, {"$inc": {self.field: count}})
        else:
            writes.update(
                self.buckets(),
                {"_id": self.bucket_id(owner_id, bucket % buckets)},
                {"$inc": {self.field: count}},
            )

    def store(self, session: ClientSession, owner_id: Any, total: int, buckets: int) -> None:
        """Make the counter `total`, in `buckets` parts (1: on the owner), whatever it was."""
        documents = self.buckets()
        documents.delete_many(
            {self.owner_field: owner_id, "bucket": {"$gte": 1 if buckets == 1 else buckets}},
            session=session,
        )
        if buckets > 1:
            for number, part in enumerate(split(total, buckets)):
                documents.update_one(
                    {"_id": self.bucket_id(owner_id, number)},
                    {"$set": {self.owner_field: owner_id, "bucket": number, self.field: part}},
                    upsert=True,
                    session=session,
                )
        else:
            documents.delete_many({self.owner_field: owner_id}, session=session)
        self.owners().update_one(
            {"_id": owner_id},
            {"$set": {self.field: total if buckets == 1 else 0, self.split_field: buckets}},
            session=session,
        )
