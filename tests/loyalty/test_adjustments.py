"""Admins' adjustments and reversals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bson import ObjectId

from app.auth import load_caller
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from loyalty import (
    adjustments,
    balances,
    expiry,
    rewards,
)
from loyalty.models import LedgerEntry, Lot, PointsAccount, Redemption
from notifications.models import Notification
from tests.loyalty.conftest import T0, assert_invariants, earn, make_reward
from tests.support import make_person


def test_adjustments_are_audited_and_never_overdraw(app, admin):
    owner = make_person("SZ")
    credit = adjustments.adjust(admin.caller, owner.id, 50, "Goodwill", key="a1")
    assert credit["actor_id"] == admin.user.pk and credit["reason"] == "Goodwill"
    assert (
        adjustments.adjust(admin.caller, owner.id, 50, "Goodwill", key="a1")["_id"] == credit["_id"]
    )
    with pytest.raises(Conflict) as refused:
        adjustments.adjust(admin.caller, owner.id, -60, "Too much")
    assert refused.value.error == "insufficient_points"
    adjustments.adjust(admin.caller, owner.id, -20, "Correction")
    assert assert_invariants(owner.id) == 30
    with pytest.raises(ValidationFailed):
        adjustments.adjust(admin.caller, owner.id, 0, "Nothing")


def test_owners_are_told_of_each_adjustment_and_reversal_once(app, admin):
    owner = make_person("SZ", locale="en")
    for _ in range(2):  # the second time a replay
        credit = adjustments.adjust(admin.caller, owner.id, 50, "Goodwill", key="a1")
    for _ in range(2):
        adjustments.reverse_entry(admin.caller, str(credit["_id"]), "Granted by mistake", key="r1")
    adjustments.adjust(admin.caller, owner.id, 30, "Event make-up")
    adjustments.adjust(admin.caller, owner.id, -10, "Correction")
    told = [
        (n.template, n.body)
        for n in Notification.objects(user_id=owner.user.pk).order_by("created_at")
    ]
    assert told == [
        ("points_adjusted", "Your points were adjusted by +50: Goodwill."),
        ("points_reversed", "50 points were taken back: Granted by mistake."),
        ("points_adjusted", "Your points were adjusted by +30: Event make-up."),
        ("points_adjusted", "Your points were adjusted by -10: Correction."),
    ]


def test_reversing_a_fresh_earn_empties_its_own_lot_and_uncounts_it(app, admin):
    owner = make_person("SZ")
    earn(owner.id, 100, now=T0)
    mistake = earn(owner.id, 300, now=T0 + timedelta(days=1))
    reversal = adjustments.reverse_entry(
        admin.caller, str(mistake["_id"]), "Credited twice", now=T0 + timedelta(days=2)
    )
    assert (reversal["kind"], reversal["amount"], reversal["balance_after"]) == (
        "reverse",
        -300,
        100,
    )
    assert reversal["source"] == {
        "rule": "admin.reversal",
        "type": "ledger_entry",
        "id": str(mistake["_id"]),
        "kind": "earn",
    }
    assert reversal["reason"] == "Credited twice" and reversal["actor_id"] == admin.user.pk
    own = Lot.objects.get(entry_id=mistake["_id"])
    # Its own lot first, although the other lot expires earlier.
    assert reversal["lots"] == [{"lot_id": own.pk, "points": 300}] and own.remaining == 0
    assert Lot.objects.get(entry_id=LedgerEntry.objects.get(amount=100).pk).remaining == 100
    assert PointsAccount.objects.get(pk=owner.user.pk).lifetime_earned == 100
    assert assert_invariants(owner.id) == 100


def test_reversing_a_partly_spent_earn_takes_the_rest_oldest_expiry_first(app, admin):
    owner = make_person("SZ")
    earn(owner.id, 100, now=T0)
    mistake = earn(owner.id, 200, now=T0 + timedelta(days=10))
    later = earn(owner.id, 100, now=T0 + timedelta(days=20))
    latest = earn(owner.id, 100, now=T0 + timedelta(days=30))
    redemption = rewards.redeem(
        owner.user, str(make_reward(cost=150).pk), now=T0 + timedelta(days=31)
    )  # 100 oldest + 50 of mistake
    reversal = adjustments.reverse_entry(
        admin.caller, str(mistake["_id"]), "Wrong owner", now=T0 + timedelta(days=32)
    )
    lot_of = {
        entry["_id"]: Lot.objects.get(entry_id=entry["_id"]) for entry in (mistake, later, latest)
    }
    assert [(part["lot_id"], part["points"]) for part in reversal["lots"]] == [
        (lot_of[mistake["_id"]].pk, 150),
        (lot_of[later["_id"]].pk, 50),
    ]
    assert [lot.remaining for lot in lot_of.values()] == [0, 50, 100]
    assert reversal["balance_after"] == 150
    assert assert_invariants(owner.id) == 150
    # Cancelling the redemption afterwards puts its points back where they came from.
    rewards.cancel_redemption(admin.caller, str(redemption.pk), now=T0 + timedelta(days=33))
    assert assert_invariants(owner.id) == 300


def test_reversal_refused_when_the_balance_is_too_low_changes_nothing(app, admin):
    owner = make_person("SZ")
    mistake = earn(owner.id, 300, now=T0)
    redemption = rewards.redeem(owner.user, str(make_reward(cost=250).pk), now=T0)
    with pytest.raises(Conflict) as refused:
        adjustments.reverse_entry(admin.caller, str(mistake["_id"]), "Oops", now=T0)
    assert refused.value.error == "insufficient_points"
    assert LedgerEntry.objects(account_id=owner.user.pk, kind="reverse").count() == 0
    assert Lot.objects.get(entry_id=mistake["_id"]).remaining == 50
    assert PointsAccount.objects.get(pk=owner.user.pk).lifetime_earned == 300
    assert assert_invariants(owner.id) == 50
    # Nothing was used up by the refusal: once the points are back, the reversal goes through.
    rewards.cancel_redemption(admin.caller, str(redemption.pk), now=T0)
    adjustments.reverse_entry(admin.caller, str(mistake["_id"]), "Oops", now=T0)
    assert assert_invariants(owner.id) == 0


def test_only_earns_and_credit_adjustments_are_reversible(app, admin):
    owner = make_person("SZ")
    earn(owner.id, 100, now=T0)
    credit = adjustments.adjust(admin.caller, owner.id, 40, "Goodwill", now=T0)
    debit = adjustments.adjust(admin.caller, owner.id, -10, "Correction", now=T0)
    redemption = rewards.redeem(owner.user, str(make_reward(cost=20).pk), now=T0)
    rewards.cancel_redemption(admin.caller, str(redemption.pk), now=T0)
    expiring = earn(owner.id, 5, now=T0 - timedelta(days=1))
    expiry.expire_due(now=Lot.objects.get(entry_id=expiring["_id"]).expires_at)
    reversal = adjustments.reverse_entry(admin.caller, str(credit["_id"]), "Not owed", now=T0)
    assert reversal["amount"] == -40 and reversal["source"]["kind"] == "adjust"
    # An adjustment never counted as earned, so its reversal does not either.
    assert PointsAccount.objects.get(pk=owner.user.pk).lifetime_earned == 105

    refused = [
        debit["_id"],
        redemption.entry_id,
        Redemption.objects.get(pk=redemption.pk).refund_entry_id,
        LedgerEntry.objects.get(account_id=owner.user.pk, kind="expire").pk,
        reversal["_id"],
    ]
    for entry_id in refused:
        with pytest.raises(Conflict) as no:
            adjustments.reverse_entry(admin.caller, str(entry_id), "Try", now=T0)
        assert no.value.error == "not_reversible"
    for entry_id in ("nope", str(ObjectId())):
        with pytest.raises(NotFound):
            adjustments.reverse_entry(admin.caller, entry_id, "Try", now=T0)
    with pytest.raises(Forbidden):
        adjustments.reverse_entry(load_caller(owner.id), str(credit["_id"]), "Mine", now=T0)
    assert assert_invariants(owner.id) == 90


def test_a_credit_is_reversed_at_most_once(app, admin):
    owner = make_person("SZ")
    mistake = earn(owner.id, 300, now=T0)
    earn(owner.id, 500, now=T0)
    first = adjustments.reverse_entry(admin.caller, str(mistake["_id"]), "Twice", key="r1", now=T0)
    # The same request replayed gets its entry back; any other attempt is refused.
    assert (
        adjustments.reverse_entry(admin.caller, str(mistake["_id"]), "Twice", key="r1", now=T0)[
            "_id"
        ]
        == first["_id"]
    )
    other_admin = make_person("SZ", role="admin")
    for by, key in (
        (admin.caller, None),
        (admin.caller, "r2"),
        (load_caller(other_admin.id), "r1"),
    ):
        with pytest.raises(Conflict) as again:
            adjustments.reverse_entry(by, str(mistake["_id"]), "Twice", key=key, now=T0)
        assert again.value.error == "already_reversed"
    assert LedgerEntry.objects(account_id=owner.user.pk, kind="reverse").count() == 1
    assert assert_invariants(owner.id) == 500


def test_a_reversed_earn_leaves_the_tier_figure_for_exactly_its_window(app, admin):
    owner = make_person("SZ")
    mistake = earn(owner.id, 8_000, now=T0)
    earn(owner.id, 2_500, now=T0 + timedelta(days=200))
    assert PointsAccount.objects.get(pk=owner.user.pk).tier == "gold"
    adjustments.reverse_entry(
        admin.caller, str(mistake["_id"]), "Test credit", now=T0 + timedelta(days=300)
    )
    account = PointsAccount.objects.get(pk=owner.user.pk)
    assert (account.tier, account.lifetime_earned) == ("silver", 2_500)
    summary = balances.points_summary(owner.id, now=T0 + timedelta(days=300))
    assert (summary["tier"], summary["tier_points"], summary["lifetime_earned"]) == (
        "silver",
        2_500,
        2_500,
    )
    # Before the reversal was written, history still shows the earn.
    assert balances.tier_of(owner.id, now=T0 + timedelta(days=299)) == "gold"
    # The reversal is dated by its earn: once the earn leaves the window, so does it.
    assert balances.tier_of(owner.id, now=T0 + timedelta(days=370)) == "silver"
    attended = earn(owner.id, 100, now=T0 + timedelta(days=301), rule="event.attended")
    assert attended["amount"] == 110  # silver x1.1, no longer gold x1.2
    assert assert_invariants(owner.id) == 2_610
