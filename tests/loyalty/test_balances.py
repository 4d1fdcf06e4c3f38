"""Reading points: a city's points figures."""

from __future__ import annotations

from datetime import timedelta

from app.auth import load_caller
from loyalty import (
    adjustments,
    balances,
    rewards,
)
from tests.loyalty.conftest import T0, earn, make_reward
from tests.support import make_person


def test_city_figures_count_points_issued_and_redeemed(app):
    owner = make_person("SZ")
    other = make_person("CD")
    earn(owner.id, 400, now=T0)
    earn(other.id, 999, now=T0)
    redemption = rewards.redeem(owner.user, str(make_reward(cost=100, stock=5).pk), 2, now=T0)
    rewards.redeem(owner.user, str(make_reward(cost=50).pk), now=T0)
    rewards.cancel_redemption(load_caller(owner.id), str(redemption.pk), now=T0)
    assert balances.city_figures("SZ", T0, T0 + timedelta(days=1)) == {
        "points_issued": 400,
        "points_redeemed": 50,
    }
    assert balances.city_figures("SZ", T0 + timedelta(days=1), T0 + timedelta(days=2)) == {
        "points_issued": 0,
        "points_redeemed": 0,
    }


def test_city_points_issued_are_net_of_reversed_earns(app, admin):
    owner = make_person("SZ")
    earn(owner.id, 400, now=T0)
    mistake = earn(owner.id, 300, now=T0)
    adjustments.adjust(admin.caller, owner.id, 50, "Goodwill", now=T0)
    adjustments.reverse_entry(admin.caller, str(mistake["_id"]), "Credited twice", now=T0)
    assert balances.city_figures("SZ", T0, T0 + timedelta(days=1)) == {
        "points_issued": 400,
        "points_redeemed": 0,
    }
