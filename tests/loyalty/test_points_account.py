"""The account's cached figures: the tier over a rolling twelve months, and where the lots
with points begin."""

from __future__ import annotations

from datetime import timedelta

from app.auth import load_caller
from loyalty import balances, points_account, rewards
from loyalty.models import Lot, PointsAccount
from tests.loyalty.conftest import T0, assert_invariants, earn, make_reward
from tests.support import make_person


def test_tiers_follow_rolling_twelve_months_and_multiply_earns(app):
    owner = make_person("SZ")
    earn(owner.id, 8_000, now=T0)
    assert balances.tier_of(owner.id, now=T0) == "gold"
    attended = earn(owner.id, 100, now=T0 + timedelta(days=1), rule="event.attended")
    assert attended["amount"] == 120  # gold: x1.2
    summary = balances.points_summary(owner.id, now=T0 + timedelta(days=1))
    assert summary["tier"] == "gold"
    assert summary["next_tier"] == {"name": "platinum", "points_needed": 20_000 - 8_120}
    # The cached figure holds until the first earn leaves the window; the read that finds it
    # past that date recomputes it and stores it.
    account = PointsAccount.objects.get(pk=owner.user.pk)
    assert (account.tier, account.tier_points) == ("gold", 8_120)
    assert account.tier_until == T0 + points_account.TIER_WINDOW
    assert balances.tier_of(owner.id, now=T0 + timedelta(days=366)) == "member"
    account.reload()
    assert (account.tier, account.tier_points) == ("member", 0)
    assert account.tier_as_of == T0 + timedelta(days=366)


def test_spending_reads_the_lots_from_where_points_begin(app):
    owner = make_person("SZ")
    for days in (0, 10, 20):
        earn(owner.id, 100, now=T0 + timedelta(days=days))
    lots = list(Lot.objects(account_id=owner.user.pk).order_by("expires_at"))

    def spend_from():
        return PointsAccount.objects.get(pk=owner.user.pk).spend_from

    assert spend_from() == lots[0].expires_at
    redemption = rewards.redeem(owner.user, str(make_reward(cost=150).pk), now=T0)
    assert spend_from() == lots[1].expires_at  # the first lot spent, half the second left
    # A refund puts points back in lots it does not read: where they begin is forgotten,
    # and the next debit reads every lot with points and finds it again.
    rewards.cancel_redemption(load_caller(owner.id), str(redemption.pk), now=T0)
    assert spend_from() is None
    rewards.redeem(owner.user, str(make_reward(cost=250).pk), now=T0)
    assert spend_from() == lots[2].expires_at
    assert assert_invariants(owner.id) == 50
