"""Points held for a drop's draw: set aside from spending, spent by a redemption that ends
the hold, or released; idempotent by the hold's key, and invariant 1 untouched."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from app.clock import utcnow
from loyalty import expiry, holds, rewards
from loyalty.errors import InsufficientPoints
from loyalty.models import PointsAccount
from tests.loyalty.conftest import assert_invariants, earn, make_reward
from tests.support import make_person, within_budget


def account(person):
    return PointsAccount.objects.get(pk=person.user.pk)


def test_held_points_are_not_spendable_until_released(app):
    owner = make_person("SZ")
    earn(owner.id, 300)
    hold = holds.Hold(owner.user.pk, "drop:one", 200)
    assert holds.hold_points([hold]) == {owner.user.pk}
    assert holds.hold_points([hold]) == {owner.user.pk}  # again: nothing more held
    assert (account(owner).held, account(owner).holds) == (200, {"drop:one": 200})
    # 100 spendable: a second hold of 200, or a redemption of 200, finds too few.
    assert holds.hold_points([holds.Hold(owner.user.pk, "drop:two", 200)]) == set()
    with pytest.raises(InsufficientPoints):
        rewards.redeem(owner.user, str(make_reward(cost=200).pk))
    rewards.redeem(owner.user, str(make_reward(cost=100).pk))
    assert assert_invariants(owner.id) == 200

    holds.release_points([hold])
    holds.release_points([hold])  # released once
    assert (account(owner).held, account(owner).holds) == (0, {})
    rewards.redeem(owner.user, str(make_reward(cost=200).pk))
    assert assert_invariants(owner.id) == 0


def test_a_redemption_paid_by_its_hold_ends_it(app):
    owner = make_person("SZ")
    earn(owner.id, 300)
    reward = make_reward(cost=100)
    holds.hold_points([holds.Hold(owner.user.pk, "drop:one", 300)])
    through = rewards.ThroughDrop(reward.pk, reward.pk, hold="drop:one")
    # The drop's own reward, redeemed by its job with the hold: 2 of the 3 held.
    redemption = rewards.redeem(owner.user, str(reward.pk), 2, drop=through)
    assert redemption.points == 200
    assert (account(owner).held, account(owner).holds) == (0, {})
    assert assert_invariants(owner.id) == 100


def test_an_expiry_takes_held_points_and_the_hold_then_finds_too_few(app):
    """A hold is not a movement: points held still expire, and the owner short of them when
    their turn comes is refused (`insufficient_points`) rather than the ledger broken."""
    owner = make_person("SZ")
    earn(owner.id, 100, now=utcnow() - timedelta(days=800))  # a lot past its 24 months
    holds.hold_points([holds.Hold(owner.user.pk, "drop:one", 100)])
    expiry.expire_due()
    assert (account(owner).balance, account(owner).held) == (0, 100)
    assert assert_invariants(owner.id) == 0
    reward = make_reward(cost=100)
    with pytest.raises(InsufficientPoints):
        rewards.redeem(
            owner.user,
            str(reward.pk),
            drop=rewards.ThroughDrop(reward.pk, reward.pk, hold="drop:one"),
        )


def test_holds_for_many_owners_are_one_read_and_one_write(app):
    owners = [make_person("SZ") for _ in range(3)]
    for owner in owners:
        earn(owner.id, 150)
    wanted = [holds.Hold(owner.user.pk, "drop:many", 100) for owner in owners]
    with within_budget(2) as commands:
        assert holds.hold_points(wanted) == {owner.user.pk for owner in owners}
    assert commands.names == ["find points_accounts", "bulkWrite admin"]


def test_concurrent_holds_on_one_account_never_hold_more_than_it_has(app):
    """Each hold is conditional on the balance and held figures its round read: of holds
    sent at once, those that read an older figure miss, read again, and find too few."""
    owner = make_person("SZ")
    earn(owner.id, 300)
    keys = [f"drop:{number}" for number in range(6)]

    def hold(key: str) -> set:
        with app.app_context():
            return holds.hold_points([holds.Hold(owner.user.pk, key, 100)])

    with ThreadPoolExecutor(6) as pool:
        placed = list(pool.map(hold, keys))
    assert sum(1 for got in placed if got) == 3
    held = account(owner)
    assert held.held == 300 and len(held.holds) == 3
    assert assert_invariants(owner.id) == 300
