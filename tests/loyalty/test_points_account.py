"""The account's cached figures: the tier over a rolling twelve months, where the lots
with points begin, and the first of them it keeps."""

from __future__ import annotations

from datetime import timedelta

from app.auth import load_caller
from loyalty import balances, points_account, reconciliation, rewards
from loyalty.ledger import add_months
from loyalty.models import LedgerEntry, Lot, PointsAccount
from tests.loyalty.conftest import T0, assert_invariants, earn, make_reward
from tests.support import count_commands, make_person


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


def kept_lots(owner) -> list[tuple[int, object]]:
    account = PointsAccount._get_collection().find_one({"_id": owner.user.pk})
    return [(lot["remaining"], lot["expires_at"]) for lot in account["spend_lots"]]


def test_a_debit_the_kept_lots_cover_reads_no_lot(app):
    owner = make_person("SZ")
    # Credited out of date order: the lot dated earliest is kept first all the same.
    for days in (20, 0, 10):
        earn(owner.id, 100, now=T0 + timedelta(days=days))
    first, second, third = Lot.objects(account_id=owner.user.pk).order_by("expires_at")
    assert kept_lots(owner) == [(100, lot.expires_at) for lot in (first, second, third)]

    def redeem_reading_no_lot(cost, now):
        reward = str(make_reward(cost=cost).pk)
        with count_commands() as commands:
            rewards.redeem(owner.user, reward, now=now)
        assert "find points_lots" not in commands.names, commands.names
        # What a read of the lots would have cached, reconciliation included.
        assert reconciliation.check_account(owner.user.pk, now)[1] is None

    redeem_reading_no_lot(150, T0 + timedelta(days=20))
    assert kept_lots(owner) == [(50, second.expires_at), (100, third.expires_at)]
    account = PointsAccount.objects.get(pk=owner.user.pk)
    assert account.spend_from == second.expires_at
    assert account.expiring_until == second.expires_at - points_account.EXPIRING_WINDOW
    # The second lot within 90 days of expiring: the figure read once, then kept by debits.
    soon = second.expires_at - timedelta(days=89)
    assert balances.points_summary(owner.id, now=soon)["expiring"] == [
        {"points": 50, "expires_at": second.expires_at}
    ]
    redeem_reading_no_lot(30, soon)
    assert PointsAccount.objects.get(pk=owner.user.pk).expiring == [
        {"points": 20, "expires_at": second.expires_at}
    ]
    earn(owner.id, 250, now=soon)
    redeem_reading_no_lot(100, soon)  # both lots emptied, the next one beyond 90 days
    account = PointsAccount.objects.get(pk=owner.user.pk)
    newest = add_months(soon, 24)
    assert kept_lots(owner) == [(20, third.expires_at), (250, newest)]
    assert (account.expiring, account.expiring_until) == (
        [],
        third.expires_at - points_account.EXPIRING_WINDOW,
    )
    assert assert_invariants(owner.id) == 270


def test_a_debit_that_finds_a_kept_lot_changed_reads_the_lots(app):
    owner = make_person("SZ")
    for days in (0, 10, 20):
        earn(owner.id, 100, now=T0 + timedelta(days=days))
    first, second, third = Lot.objects(account_id=owner.user.pk).order_by("expires_at")
    # A copy that says the first lot holds 90 points, as if written past the ledger.
    PointsAccount.objects(pk=owner.user.pk).update_one(set__spend_lots__0__remaining=90)
    reward = str(make_reward(cost=150).pk)
    with count_commands() as commands:
        redemption = rewards.redeem(owner.user, reward, now=T0)
    # The lot's write matched nothing, and the transaction ran again reading the lots.
    assert commands.names.count("find points_lots") == 1, commands.names
    assert [lot.reload().remaining for lot in (first, second, third)] == [0, 50, 100]
    assert kept_lots(owner) == [(50, second.expires_at), (100, third.expires_at)]
    assert LedgerEntry.objects(source__id=str(redemption.pk)).count() == 1
    assert assert_invariants(owner.id) == 150
