"""A redemption usually takes a reward's terms from its process's copy (loyalty/rewards.py,
`_terms_seen`) instead of reading the reward. An edit made by another process (here: the
document changed directly, which leaves this process's copy in place) must still count from
the next redemption: its `version` makes the copy's write match nothing, and a refusal the
copy decided is decided again from the reward."""

from __future__ import annotations

import pytest

from app.auth import load_caller
from app.errors import Conflict, NotFound
from loyalty import rewards, stock
from loyalty.models import Redemption, Reward
from tests.loyalty.conftest import assert_invariants, earn, make_reward
from tests.support import make_person, within_budget


def _edited_elsewhere(reward: Reward, **changes: object) -> None:
    """An edit as another process's `update_reward` makes it: terms and `version`."""
    Reward._get_collection().update_one(
        {"_id": reward.pk}, {"$set": changes, "$inc": {"version": 1}}
    )


def _owner(points: int = 1_000):
    owner = make_person("SZ")
    earn(owner.id, points)
    return owner


def test_a_reward_redeemed_again_is_not_read(app):
    reward = make_reward(cost=100, stock=5)
    rewards.redeem(_owner().user, str(reward.pk))
    second = _owner()
    # The account and the lots, one command with every write, the commit: the reward's
    # read (and the caller's, made by the request) is not among them.
    with within_budget(4) as commands:
        rewards.redeem(second.user, str(reward.pk))
    assert "aggregate" not in commands.names
    assert Reward.objects.get(pk=reward.pk).stock == 3


def test_a_cost_changed_elsewhere_is_charged_at_once(app):
    reward = make_reward(cost=100, stock=5)
    rewards.redeem(_owner().user, str(reward.pk))
    _edited_elsewhere(reward, cost=300, title="Dearer mug")
    owner = _owner()
    redemption = rewards.redeem(owner.user, str(reward.pk))
    assert (redemption.points, redemption.reward_title) == (300, "Dearer mug")
    assert assert_invariants(owner.id) == 700
    assert Reward.objects.get(pk=reward.pk).stock == 3


def test_a_reward_withdrawn_elsewhere_is_not_found(app):
    reward = make_reward(stock=5)
    rewards.redeem(_owner().user, str(reward.pk))
    _edited_elsewhere(reward, active=False)
    owner = _owner()
    with pytest.raises(NotFound):
        rewards.redeem(owner.user, str(reward.pk))
    assert Redemption.objects(user_id=owner.user.pk).count() == 0
    assert Reward.objects.get(pk=reward.pk).stock == 4


def test_a_tier_lowered_elsewhere_is_no_longer_refused(app):
    reward = make_reward(stock=5, min_tier="gold")
    owner = _owner()
    with pytest.raises(Conflict) as refused:
        rewards.redeem(owner.user, str(reward.pk))
    assert refused.value.error == "tier_too_low"
    _edited_elsewhere(reward, min_tier="member")
    assert rewards.redeem(owner.user, str(reward.pk)).points == 100


def test_stock_run_out_elsewhere_is_refused_and_takes_nothing(app):
    reward = make_reward(stock=5)
    rewards.redeem(_owner().user, str(reward.pk))
    Reward._get_collection().update_one({"_id": reward.pk}, {"$set": {"stock": 0}})
    owner = _owner(200)
    with pytest.raises(Conflict) as refused:
        rewards.redeem(owner.user, str(reward.pk))
    assert refused.value.error == "out_of_stock"
    assert Reward.objects.get(pk=reward.pk).stock == 0
    assert assert_invariants(owner.id) == 200


def test_an_edit_through_the_service_counts_from_the_next_redemption(app, admin):
    reward = make_reward(cost=100, stock=5)
    rewards.redeem(_owner().user, str(reward.pk))
    rewards.update_reward(load_caller(admin.id), str(reward.pk), {"cost": 250, "stock_buckets": 4})
    assert Reward.objects.get(pk=reward.pk).version == 1
    redemption = rewards.redeem(_owner().user, str(reward.pk))
    assert redemption.points == 250
    left = stock.read_with_stock(None, reward.pk)
    assert left is not None and (left["stock_left"], len(left["buckets"])) == (3, 4)
