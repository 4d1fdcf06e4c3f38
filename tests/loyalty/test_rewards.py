"""Rewards and redemptions: stock, limits, refunds and fulfilment."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.auth import load_caller
from app.errors import Conflict, NotFound, ValidationFailed
from loyalty import (
    rewards,
)
from loyalty.models import LedgerEntry, Lot, Redemption, Reward
from tests.loyalty.conftest import T0, assert_invariants, earn, make_reward
from tests.support import make_person


def test_redeem_spends_oldest_expiry_first_and_cancel_restores_those_lots(app):
    owner = make_person("SZ")
    earn(owner.id, 100, now=T0)
    earn(owner.id, 100, now=T0 + timedelta(days=10))
    reward = make_reward(cost=150, stock=1)
    redemption = rewards.redeem(owner.user, str(reward.pk), now=T0 + timedelta(days=20))
    older, newer = Lot.objects(account_id=owner.user.pk).order_by("expires_at")
    assert (older.remaining, newer.remaining) == (0, 50)
    assert Reward.objects.get(pk=reward.pk).stock == 0
    assert assert_invariants(owner.id) == 50

    rewards.cancel_redemption(load_caller(owner.id), str(redemption.pk))
    older.reload(), newer.reload()
    assert (older.remaining, newer.remaining) == (100, 100)
    assert Reward.objects.get(pk=reward.pk).stock == 1
    with pytest.raises(Conflict) as again:
        rewards.cancel_redemption(load_caller(owner.id), str(redemption.pk))
    assert again.value.error == "not_pending"
    assert LedgerEntry.objects(account_id=owner.user.pk, kind="refund").count() == 1
    assert assert_invariants(owner.id) == 200


@pytest.mark.parametrize(
    "setup, slug",
    [
        (dict(cost=1000), "insufficient_points"),
        (dict(stock=0), "out_of_stock"),
        (dict(min_tier="silver"), "tier_too_low"),
        (dict(city_codes=["CD"]), "not_in_city"),
    ],
)
def test_redeem_refusals_change_nothing(app, setup, slug):
    owner = make_person("SZ")
    earn(owner.id, 200)
    reward = make_reward(**setup)
    with pytest.raises(Conflict) as refused:
        rewards.redeem(owner.user, str(reward.pk))
    assert refused.value.error == slug
    assert Reward.objects.get(pk=reward.pk).stock == setup.get("stock", 10)
    assert Redemption.objects.count() == 0
    assert assert_invariants(owner.id) == 200


def test_city_rewards_open_30_days_after_the_owner_settled_there(app):
    owner = make_person("CD")
    earn(owner.id, 200)
    reward = make_reward(city_codes=["CD"])
    opens = owner.user.city_held_since + timedelta(days=30)
    with pytest.raises(Conflict) as early:
        rewards.redeem(owner.user, str(reward.pk), now=opens - timedelta(seconds=1))
    assert early.value.error == "city_too_recent"
    assert rewards.redeem(owner.user, str(reward.pk), now=opens).status == "pending"


def test_per_owner_limit_counts_quantities_but_not_cancelled(app):
    owner = make_person("SZ")
    earn(owner.id, 1000)
    reward = make_reward(per_owner_limit=2)
    first = rewards.redeem(owner.user, str(reward.pk), 2)
    with pytest.raises(Conflict) as refused:
        rewards.redeem(owner.user, str(reward.pk))
    assert refused.value.error == "limit_reached"
    rewards.cancel_redemption(load_caller(owner.id), str(first.pk))
    assert rewards.redeem(owner.user, str(reward.pk), 2).status == "pending"


def test_fulfil_is_for_admins_and_leaders_of_the_pickup_city(app):
    owner = make_person("SZ")
    earn(owner.id, 100)
    redemption = rewards.redeem(owner.user, str(make_reward().pk))
    outsider = make_person("CD", role="circle_leader")
    with pytest.raises(NotFound):
        rewards.fulfil_redemption(load_caller(outsider.id), str(redemption.pk))
    with pytest.raises(NotFound):
        rewards.fulfil_redemption(load_caller(owner.id), str(redemption.pk))
    leader = make_person("SZ", role="circle_leader")
    assert (
        rewards.fulfil_redemption(load_caller(leader.id), str(redemption.pk)).status == "fulfilled"
    )
    with pytest.raises(Conflict):
        rewards.cancel_redemption(load_caller(owner.id), str(redemption.pk))


def test_the_catalog_refuses_unknown_cities(app, admin):
    with pytest.raises(ValidationFailed) as created:
        rewards.create_reward(
            admin.caller,
            {
                "title": "Cap",
                "cost": 100,
                "stock": 5,
                "fulfillment": "pickup",
                "city_codes": ["QQ"],
            },
        )
    assert created.value.error == "unknown_city"
    reward = make_reward()
    with pytest.raises(ValidationFailed) as changed:
        rewards.update_reward(admin.caller, str(reward.pk), {"city_codes": ["SZ", "QQ"]})
    assert changed.value.error == "unknown_city"
    assert Reward.objects.get(pk=reward.pk).city_codes == []
