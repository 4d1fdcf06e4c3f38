"""Builders for loyalty tests: points credited through the ledger, rewards, a fixed clock."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from app.auth import load_caller
from app.db import transaction
from loyalty import rules
from loyalty.models import LedgerEntry, Lot, PointsAccount, Reward
from tests.support import make_person

_keys = itertools.count(1)
T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def earn(
    user_id: Any,
    points: int,
    now: datetime | None = None,
    key: str | None = None,
    rule: str = "vehicle.verified",
) -> dict[str, Any] | None:
    """Credit `points` through an earning rule (the welcome rule has no multiplier or cap)."""
    return transaction(
        lambda session: rules.award(
            session,
            user_id,
            rule,
            key=key or f"test:{next(_keys)}",
            source={},
            points=points,
            now=now,
        )
    )


def make_reward(**fields: Any) -> Reward:
    return Reward(
        **{"title": "Mug", "cost": 100, "stock": 10, "fulfillment": "pickup", **fields}
    ).save()


def assert_invariants(user_id: Any) -> int:
    """Invariant 1 of docs/product.md for one account; returns the balance."""
    [balance] = accounts_keep_their_invariants([user_id]).values()
    return balance


def accounts_keep_their_invariants(user_ids: list[Any]) -> dict[ObjectId, int]:
    """Invariant 1 of docs/product.md for each account, read in three queries whatever their
    number (a stateful test checks it after every step); returns the balances by id."""
    ids = [ObjectId(str(user_id)) for user_id in user_ids]
    entries: dict[ObjectId, list[LedgerEntry]] = {account_id: [] for account_id in ids}
    for entry in LedgerEntry.objects(account_id__in=ids).order_by("id"):
        entries[entry.account_id].append(entry)
    lots: dict[ObjectId, list[Lot]] = {account_id: [] for account_id in ids}
    for lot in Lot.objects(account_id__in=ids):
        lots[lot.account_id].append(lot)
    accounts = {account.pk: account for account in PointsAccount.objects(pk__in=ids)}
    balances = {}
    for account_id in ids:
        account, total = accounts.get(account_id), sum(e.amount for e in entries[account_id])
        remaining = sum(lot.remaining for lot in lots[account_id])
        balance = account.balance if account else 0
        assert balance == total == remaining, (account_id, balance, total, remaining)
        assert balance >= 0
        assert all(lot.remaining >= 0 for lot in lots[account_id])
        # Lifetime earned: the earns, less those an admin reversed.
        assert account is None or account.lifetime_earned == sum(
            entry.amount
            for entry in entries[account_id]
            if entry.kind == "earn" or (entry.kind == "reverse" and entry.source["kind"] == "earn")
        )
        # No lot expiring before `spend_from` holds points.
        if account is not None and account.spend_from is not None:
            assert not [
                lot
                for lot in lots[account_id]
                if lot.remaining > 0 and lot.expires_at < account.spend_from
            ]
        # The lots it keeps are its first lots with points, as they are.
        if account is not None and account.spend_lots is not None:
            open_lots = sorted(
                (lot for lot in lots[account_id] if lot.remaining > 0),
                key=lambda lot: (lot.expires_at, lot.pk),
            )
            assert account.spend_lots == [
                {"_id": lot.pk, "remaining": lot.remaining, "expires_at": lot.expires_at}
                for lot in open_lots[: len(account.spend_lots)]
            ], (account_id, account.spend_lots)
        balances[account_id] = balance
    return balances


@pytest.fixture
def admin(app):
    person = make_person("SZ", role="admin")
    person.caller = load_caller(person.id)
    return person


def keyed_redemptions(client: Any) -> Callable[[str], Any]:
    """A new owner with 1,000 points and a reward of 10: `send(key)` redeems it once with
    `Idempotency-Key: key` and answers the response."""
    owner = make_person("SZ")
    earn(owner.id, 1_000)
    reward = make_reward(cost=10, stock=10)

    def send(key: str) -> Any:
        return client.post(
            "/api/v1/redemptions",
            json={"reward_id": str(reward.pk)},
            headers={**owner.headers, "Idempotency-Key": key},
        )

    return send
