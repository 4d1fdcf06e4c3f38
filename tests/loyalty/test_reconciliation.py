"""Reconciliation: drifts found and repaired."""

from __future__ import annotations

from datetime import timedelta

from loyalty import (
    adjustments,
    holds,
    reconciliation,
    rewards,
)
from loyalty.models import Lot, PointsAccount
from tests.loyalty.conftest import T0, assert_invariants, earn, make_reward
from tests.support import make_person


def test_reconciliation_reports_and_repairs_drift(app, admin):
    owner, other = make_person("SZ"), make_person("SZ")
    earn(owner.id, 300)
    earn(other.id, 100)
    PointsAccount.objects(pk=owner.user.pk).update_one(set__balance=999)
    run = reconciliation.run_reconciliation(
        str(reconciliation.request_reconciliation(admin.caller).pk)
    )
    assert run.status == "done"
    assert (run.accounts_checked, run.entries_checked, run.repaired) == (2, 2, 1)
    assert run.drifts == [
        {
            "account_id": owner.id,
            "cached_balance": 999,
            "computed_balance": 300,
            "lots_total": 300,
            "cached_lifetime_earned": 300,
            "computed_lifetime_earned": 300,
        }
    ]
    assert assert_invariants(owner.id) == 300
    assert reconciliation.run_reconciliation(str(run.pk)) is None  # a redelivery does nothing


def test_reconciliation_finds_no_drift_after_reversals_and_repairs_to_the_net(app, admin):
    owner, other = make_person("SZ"), make_person("SZ")
    mistake = earn(owner.id, 8_000, now=T0)
    earn(owner.id, 300, now=T0)
    credit = adjustments.adjust(admin.caller, owner.id, 70, "Goodwill", now=T0)
    rewards.redeem(owner.user, str(make_reward(cost=100).pk), now=T0)
    adjustments.reverse_entry(admin.caller, str(mistake["_id"]), "Test credit", now=T0)
    adjustments.reverse_entry(admin.caller, str(credit["_id"]), "Not owed", now=T0)
    adjustments.reverse_entry(admin.caller, str(earn(other.id, 50, now=T0)["_id"]), "No", now=T0)
    run = reconciliation.run_reconciliation()
    assert (run.drifts, run.repaired, run.entries_checked) == ([], 0, 8)

    PointsAccount.objects(pk=owner.user.pk).update_one(set__lifetime_earned=8_300, set__tier="gold")
    run = reconciliation.run_reconciliation()
    assert [
        (drift["cached_lifetime_earned"], drift["computed_lifetime_earned"]) for drift in run.drifts
    ] == [(8_300, 300)]
    account = PointsAccount.objects.get(pk=owner.user.pk)
    assert (account.lifetime_earned, account.tier) == (300, "member")
    assert assert_invariants(owner.id) == 200 and assert_invariants(other.id) == 0


def test_reconciliation_repairs_a_spend_from_past_a_lot_with_points(app):
    owner = make_person("SZ")
    earn(owner.id, 100, now=T0)
    earn(owner.id, 100, now=T0 + timedelta(days=10))
    first, second = Lot.objects(account_id=owner.user.pk).order_by("expires_at")
    PointsAccount.objects(pk=owner.user.pk).update_one(set__spend_from=second.expires_at)
    run = reconciliation.run_reconciliation()
    assert [drift["stale_figures"] for drift in run.drifts] == [["spend_from"]]
    assert PointsAccount.objects.get(pk=owner.user.pk).spend_from == first.expires_at
    assert assert_invariants(owner.id) == 200


def test_reconciliation_repairs_kept_lots_that_are_not_the_first_with_points(app):
    owner = make_person("SZ")
    earn(owner.id, 100, now=T0)
    earn(owner.id, 100, now=T0 + timedelta(days=10))
    first, second = Lot.objects(account_id=owner.user.pk).order_by("expires_at")
    PointsAccount.objects(pk=owner.user.pk).update_one(pop__spend_lots=-1)  # the first dropped
    run = reconciliation.run_reconciliation()
    assert [drift["stale_figures"] for drift in run.drifts] == [["spend_lots"]]
    kept = PointsAccount._get_collection().find_one({"_id": owner.user.pk})["spend_lots"]
    assert [lot["_id"] for lot in kept] == [first.pk, second.pk]
    assert assert_invariants(owner.id) == 200


def test_reconciliation_repairs_a_held_figure_its_holds_do_not_add_up_to(app):
    owner, holding = make_person("SZ"), make_person("SZ")
    earn(owner.id, 300)
    earn(holding.id, 300)
    holds.hold_points([holds.Hold(holding.user.pk, "drop:one", 200)])
    PointsAccount.objects(pk=owner.user.pk).update_one(set__held=50)
    run = reconciliation.run_reconciliation()
    assert [(d["account_id"], d["stale_figures"]) for d in run.drifts] == [(owner.id, ["held"])]
    assert PointsAccount.objects.get(pk=owner.user.pk).held == 0
    assert PointsAccount.objects.get(pk=holding.user.pk).held == 200
