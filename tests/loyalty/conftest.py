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
    account_id = ObjectId(str(user_id))
    entries = list(LedgerEntry.objects(account_id=account_id).order_by("id"))
    total = sum(entry.amount for entry in entries)
    lots = sum(lot.remaining for lot in Lot.objects(account_id=account_id))
    account = PointsAccount.objects(pk=account_id).first()
    balance = account.balance if account else 0
    assert balance == total == lots, (balance, total, lots)
    assert balance >= 0
    assert all(lot.remaining >= 0 for lot in Lot.objects(account_id=account_id))
    # Lifetime earned: the earns, less those an admin reversed.
    assert account is None or account.lifetime_earned == sum(
        entry.amount
        for entry in entries
        if entry.kind == "earn" or (entry.kind == "reverse" and entry.source["kind"] == "earn")
    )
    # No lot expiring before `spend_from` holds points.
    if account is not None and account.spend_from is not None:
        assert not Lot.objects(
            account_id=account_id, remaining__gt=0, expires_at__lt=account.spend_from
        ).count()
    return balance


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
