from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from app.auth import load_caller
from app.db import transaction
from app.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from loyalty import services
from loyalty.models import LedgerEntry, Lot, PointsAccount, Redemption, Reward
from notifications.models import Notification
from tests.loyalty.conftest import T0, assert_invariants, earn, make_reward
from tests.support import make_city, make_person


def test_earn_opens_a_lot_and_updates_the_cache_with_the_entry(app):
    owner = make_person("SZ")
    entry = earn(owner.id, 500, now=T0)
    assert entry["kind"] == "earn" and entry["amount"] == 500 and entry["balance_after"] == 500
    lot = Lot.objects.get(account_id=owner.user.pk)
    assert lot.remaining == 500
    assert lot.expires_at == datetime(2028, 3, 1, 4, 0, tzinfo=UTC)
    account = PointsAccount.objects.get(pk=owner.user.pk)
    assert (account.balance, account.lifetime_earned, account.tier) == (500, 500, "member")
    assert Notification.objects.get(user_id=owner.user.pk).template == "points_earned"


def test_same_key_gives_one_entry(app):
    owner = make_person("SZ")
    first = earn(owner.id, 100, key="k")
    for _ in range(3):
        assert earn(owner.id, 100, key="k")["_id"] == first["_id"]
    assert LedgerEntry.objects(account_id=owner.user.pk).count() == 1
    assert assert_invariants(owner.id) == 100


def test_redeem_spends_oldest_expiry_first_and_cancel_restores_those_lots(app):
    owner = make_person("SZ")
    earn(owner.id, 100, now=T0)
    earn(owner.id, 100, now=T0 + timedelta(days=10))
    reward = make_reward(cost=150, stock=1)
    redemption = services.redeem(owner.user, str(reward.pk), now=T0 + timedelta(days=20))
    older, newer = Lot.objects(account_id=owner.user.pk).order_by("expires_at")
    assert (older.remaining, newer.remaining) == (0, 50)
    assert Reward.objects.get(pk=reward.pk).stock == 0
    assert assert_invariants(owner.id) == 50

    services.cancel_redemption(load_caller(owner.id), str(redemption.pk))
    older.reload(), newer.reload()
    assert (older.remaining, newer.remaining) == (100, 100)
    assert Reward.objects.get(pk=reward.pk).stock == 1
    with pytest.raises(Conflict) as again:
        services.cancel_redemption(load_caller(owner.id), str(redemption.pk))
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
        services.redeem(owner.user, str(reward.pk))
    assert refused.value.error == slug
    assert Reward.objects.get(pk=reward.pk).stock == setup.get("stock", 10)
    assert Redemption.objects.count() == 0
    assert assert_invariants(owner.id) == 200


def test_per_owner_limit_counts_quantities_but_not_cancelled(app):
    owner = make_person("SZ")
    earn(owner.id, 1000)
    reward = make_reward(per_owner_limit=2)
    first = services.redeem(owner.user, str(reward.pk), 2)
    with pytest.raises(Conflict) as refused:
        services.redeem(owner.user, str(reward.pk))
    assert refused.value.error == "limit_reached"
    services.cancel_redemption(load_caller(owner.id), str(first.pk))
    assert services.redeem(owner.user, str(reward.pk), 2).status == "pending"


def test_tiers_follow_rolling_twelve_months_and_multiply_earns(app):
    owner = make_person("SZ")
    earn(owner.id, 8_000, now=T0)
    assert services.tier_of(owner.id, now=T0) == "gold"
    attended = earn(owner.id, 100, now=T0 + timedelta(days=1), rule="event.attended")
    assert attended["amount"] == 120  # gold: x1.2
    summary = services.points_summary(owner.id, now=T0 + timedelta(days=1))
    assert summary["tier"] == "gold"
    assert summary["next_tier"] == {"name": "platinum", "points_needed": 20_000 - 8_120}
    assert services.tier_of(owner.id, now=T0 + timedelta(days=366)) == "member"
    assert PointsAccount.objects.get(pk=owner.user.pk).tier == "gold"


def test_daily_cap_counts_in_the_owner_city_time_zone(app):
    make_city("SZ", timezone="Asia/Shanghai")
    owner = make_person("SZ")
    # 15:30 UTC is 23:30 in Shanghai; 16:30 UTC is already the next day there.
    evening = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
    awarded = [
        earn(owner.id, None, now=evening + timedelta(minutes=i), rule="post.published")
        for i in range(4)
    ]
    assert [entry is not None for entry in awarded] == [True, True, True, False]
    assert earn(owner.id, None, now=evening + timedelta(hours=1), rule="post.published")
    assert assert_invariants(owner.id) == 20


def test_inactive_rule_earns_nothing(app, admin):
    owner = make_person("SZ")
    services.update_rule(admin.caller, "comment.created", {"active": False})
    assert earn(owner.id, None, rule="comment.created") is None
    with pytest.raises(NotFound):
        services.update_rule(admin.caller, "no.such.rule", {"points": 1})


def test_expiry_writes_expire_entries_once_and_warns_thirty_days_before(app):
    owner = make_person("SZ", locale="en")
    earn(owner.id, 300, now=T0)
    lot = Lot.objects.get(account_id=owner.user.pk)
    assert services.warn_expiring(now=lot.expires_at - timedelta(days=31)) == 0
    assert services.warn_expiring(now=lot.expires_at - timedelta(days=29)) == 1
    assert services.warn_expiring(now=lot.expires_at - timedelta(days=28)) == 0
    warning = Notification.objects.get(user_id=owner.user.pk, template="points_expiring")
    assert "300" in warning.body and "2028-03-01" in warning.body

    assert services.expire_due(now=lot.expires_at - timedelta(seconds=1)) == 0
    assert services.expire_due(now=lot.expires_at) == 1
    assert services.expire_due(now=lot.expires_at + timedelta(hours=1)) == 0
    expired = LedgerEntry.objects.get(account_id=owner.user.pk, kind="expire")
    assert expired.amount == -300 and expired.balance_after == 0
    assert assert_invariants(owner.id) == 0


def test_refund_into_an_expired_lot_expires_again(app):
    owner = make_person("SZ")
    earn(owner.id, 100, now=T0)
    redemption = services.redeem(owner.user, str(make_reward().pk), now=T0)
    lot = Lot.objects.get(account_id=owner.user.pk)
    services.cancel_redemption(
        load_caller(owner.id), str(redemption.pk), now=lot.expires_at + timedelta(days=1)
    )
    assert services.expire_due(now=lot.expires_at + timedelta(days=1)) == 1
    assert assert_invariants(owner.id) == 0


def test_adjustments_are_audited_and_never_overdraw(app, admin):
    owner = make_person("SZ")
    credit = services.adjust(admin.caller, owner.id, 50, "Goodwill", key="a1")
    assert credit["actor_id"] == admin.user.pk and credit["reason"] == "Goodwill"
    assert services.adjust(admin.caller, owner.id, 50, "Goodwill", key="a1")["_id"] == credit["_id"]
    with pytest.raises(Conflict) as refused:
        services.adjust(admin.caller, owner.id, -60, "Too much")
    assert refused.value.error == "insufficient_points"
    services.adjust(admin.caller, owner.id, -20, "Correction")
    assert assert_invariants(owner.id) == 30
    with pytest.raises(ValidationFailed):
        services.adjust(admin.caller, owner.id, 0, "Nothing")


def test_owners_are_told_of_each_adjustment_and_reversal_once(app, admin):
    owner = make_person("SZ", locale="en")
    for _ in range(2):  # the second time a replay
        credit = services.adjust(admin.caller, owner.id, 50, "Goodwill", key="a1")
    for _ in range(2):
        services.reverse_entry(admin.caller, str(credit["_id"]), "Granted by mistake", key="r1")
    services.adjust(admin.caller, owner.id, 30, "Event make-up")
    services.adjust(admin.caller, owner.id, -10, "Correction")
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


def test_city_points_totals(app):
    owner = make_person("SZ")
    other = make_person("CD")
    earn(owner.id, 400, now=T0)
    earn(other.id, 999, now=T0)
    redemption = services.redeem(owner.user, str(make_reward(cost=100, stock=5).pk), 2, now=T0)
    services.redeem(owner.user, str(make_reward(cost=50).pk), now=T0)
    services.cancel_redemption(load_caller(owner.id), str(redemption.pk), now=T0)
    assert services.city_points_totals("SZ", T0, T0 + timedelta(days=1)) == {
        "issued": 400,
        "redeemed": 50,
    }
    assert services.city_points_totals("SZ", T0 + timedelta(days=1), T0 + timedelta(days=2)) == {
        "issued": 0,
        "redeemed": 0,
    }


def test_city_points_issued_are_net_of_reversed_earns(app, admin):
    owner = make_person("SZ")
    earn(owner.id, 400, now=T0)
    mistake = earn(owner.id, 300, now=T0)
    services.adjust(admin.caller, owner.id, 50, "Goodwill", now=T0)
    services.reverse_entry(admin.caller, str(mistake["_id"]), "Credited twice", now=T0)
    assert services.city_points_totals("SZ", T0, T0 + timedelta(days=1)) == {
        "issued": 400,
        "redeemed": 0,
    }


def test_reconciliation_reports_and_repairs_drift(app, admin):
    owner, other = make_person("SZ"), make_person("SZ")
    earn(owner.id, 300)
    earn(other.id, 100)
    PointsAccount.objects(pk=owner.user.pk).update_one(set__balance=999)
    run = services.run_reconciliation(str(services.request_reconciliation(admin.caller).pk))
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
    assert services.run_reconciliation(str(run.pk)) is None  # a redelivery does nothing


def test_partner_authentication_and_credit_rules(app, admin):
    import hashlib
    import hmac

    owner = make_person("SZ", phone="13800138000")
    partner, secret = services.create_partner(admin.caller, "ChargeCo", 500)
    body = b'{"points": 10}'
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    now = datetime.now(UTC)
    stamp = str(int(now.timestamp()))
    assert services.authenticate_partner(partner.key, signature, stamp, body).pk == partner.pk
    for key, sig, ts in (
        (partner.key, "0" * 64, stamp),
        ("pk_unknown", signature, stamp),
        (partner.key, signature, str(int(now.timestamp()) - 301)),
        (partner.key, signature, "yesterday"),
        (None, None, None),
    ):
        with pytest.raises(Unauthorized):
            services.authenticate_partner(key, sig, ts, body)

    credit, created = services.credit_from_partner(
        partner, partner_txn_id="t1", points=10, member_phone="138 0013 8000"
    )
    assert created and credit["balance_after"] == 10
    replay, created = services.credit_from_partner(
        partner, partner_txn_id="t1", points=10, member_phone="138 0013 8000"
    )
    assert not created and replay["entry_id"] == credit["entry_id"]
    with pytest.raises(Conflict):
        services.credit_from_partner(partner, partner_txn_id="t1", points=11, member_id=owner.id)
    with pytest.raises(ValidationFailed) as over:
        services.credit_from_partner(partner, partner_txn_id="t2", points=501, member_id=owner.id)
    assert over.value.error == "over_cap"
    assert assert_invariants(owner.id) == 10


def test_default_rules_are_seeded_once_and_keep_admin_changes(app, admin):
    services.update_rule(admin.caller, "post.published", {"points": 7})
    services.ensure_default_rules()
    rules = {rule.code: rule for rule in services.list_rules(admin.caller)}
    assert set(rules) == set(services.DEFAULT_RULES)
    assert rules["post.published"].points == 7 and rules["post.published"].caps == {"day": 3}
    assert rules["vehicle.verified"].points == 500


def test_fulfil_is_for_admins_and_leaders_of_the_pickup_city(app):
    owner = make_person("SZ")
    earn(owner.id, 100)
    redemption = services.redeem(owner.user, str(make_reward().pk))
    outsider = make_person("CD", role="circle_leader")
    with pytest.raises(NotFound):
        services.fulfil_redemption(load_caller(outsider.id), str(redemption.pk))
    with pytest.raises(NotFound):
        services.fulfil_redemption(load_caller(owner.id), str(redemption.pk))
    leader = make_person("SZ", role="circle_leader")
    assert (
        services.fulfil_redemption(load_caller(leader.id), str(redemption.pk)).status == "fulfilled"
    )
    with pytest.raises(Conflict):
        services.cancel_redemption(load_caller(owner.id), str(redemption.pk))


def test_add_months_clamps_to_month_end():
    assert services.add_months(datetime(2024, 2, 29, tzinfo=UTC), 24) == datetime(
        2026, 2, 28, tzinfo=UTC
    )
    assert services.add_months(datetime(2025, 11, 30, tzinfo=UTC), 3) == datetime(
        2026, 2, 28, tzinfo=UTC
    )


def test_award_in_a_transaction_for_an_erased_owner_earns_nothing(app):
    owner = make_person("SZ")
    from accounts.models import User

    User.objects(pk=owner.user.pk).update_one(set__erased_at=T0)
    assert (
        transaction(lambda s: services.award(s, owner.id, "vehicle.verified", key="x", source={}))
        is None
    )


# --- reversals -------------------------------------------------------------------------


def test_reversing_a_fresh_earn_empties_its_own_lot_and_uncounts_it(app, admin):
    owner = make_person("SZ")
    earn(owner.id, 100, now=T0)
    mistake = earn(owner.id, 300, now=T0 + timedelta(days=1))
    reversal = services.reverse_entry(
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
    redemption = services.redeem(
        owner.user, str(make_reward(cost=150).pk), now=T0 + timedelta(days=31)
    )  # 100 oldest + 50 of mistake
    reversal = services.reverse_entry(
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
    services.cancel_redemption(admin.caller, str(redemption.pk), now=T0 + timedelta(days=33))
    assert assert_invariants(owner.id) == 300


def test_reversal_refused_when_the_balance_is_too_low_changes_nothing(app, admin):
    owner = make_person("SZ")
    mistake = earn(owner.id, 300, now=T0)
    redemption = services.redeem(owner.user, str(make_reward(cost=250).pk), now=T0)
    with pytest.raises(Conflict) as refused:
        services.reverse_entry(admin.caller, str(mistake["_id"]), "Oops", now=T0)
    assert refused.value.error == "insufficient_points"
    assert LedgerEntry.objects(account_id=owner.user.pk, kind="reverse").count() == 0
    assert Lot.objects.get(entry_id=mistake["_id"]).remaining == 50
    assert PointsAccount.objects.get(pk=owner.user.pk).lifetime_earned == 300
    assert assert_invariants(owner.id) == 50
    # Nothing was used up by the refusal: once the points are back, the reversal goes through.
    services.cancel_redemption(admin.caller, str(redemption.pk), now=T0)
    services.reverse_entry(admin.caller, str(mistake["_id"]), "Oops", now=T0)
    assert assert_invariants(owner.id) == 0


def test_only_earns_and_credit_adjustments_are_reversible(app, admin):
    owner = make_person("SZ")
    earn(owner.id, 100, now=T0)
    credit = services.adjust(admin.caller, owner.id, 40, "Goodwill", now=T0)
    debit = services.adjust(admin.caller, owner.id, -10, "Correction", now=T0)
    redemption = services.redeem(owner.user, str(make_reward(cost=20).pk), now=T0)
    services.cancel_redemption(admin.caller, str(redemption.pk), now=T0)
    expiring = earn(owner.id, 5, now=T0 - timedelta(days=1))
    services.expire_due(now=Lot.objects.get(entry_id=expiring["_id"]).expires_at)
    reversal = services.reverse_entry(admin.caller, str(credit["_id"]), "Not owed", now=T0)
    assert reversal["amount"] == -40 and reversal["source"]["kind"] == "adjust"
    # An adjustment never counted as earned, so its reversal does not either.
    assert PointsAccount.objects.get(pk=owner.user.pk).lifetime_earned == 105

    refused = [
        debit["_id"],
        redemption.entry_id,
        redemption.reload().refund_entry_id,
        LedgerEntry.objects.get(account_id=owner.user.pk, kind="expire").pk,
        reversal["_id"],
    ]
    for entry_id in refused:
        with pytest.raises(Conflict) as no:
            services.reverse_entry(admin.caller, str(entry_id), "Try", now=T0)
        assert no.value.error == "not_reversible"
    for entry_id in ("nope", str(ObjectId())):
        with pytest.raises(NotFound):
            services.reverse_entry(admin.caller, entry_id, "Try", now=T0)
    with pytest.raises(Forbidden):
        services.reverse_entry(load_caller(owner.id), str(credit["_id"]), "Mine", now=T0)
    assert assert_invariants(owner.id) == 90


def test_a_credit_is_reversed_at_most_once(app, admin):
    owner = make_person("SZ")
    mistake = earn(owner.id, 300, now=T0)
    earn(owner.id, 500, now=T0)
    first = services.reverse_entry(admin.caller, str(mistake["_id"]), "Twice", key="r1", now=T0)
    # The same request replayed gets its entry back; any other attempt is refused.
    assert (
        services.reverse_entry(admin.caller, str(mistake["_id"]), "Twice", key="r1", now=T0)["_id"]
        == first["_id"]
    )
    other_admin = make_person("SZ", role="admin")
    for by, key in (
        (admin.caller, None),
        (admin.caller, "r2"),
        (load_caller(other_admin.id), "r1"),
    ):
        with pytest.raises(Conflict) as again:
            services.reverse_entry(by, str(mistake["_id"]), "Twice", key=key, now=T0)
        assert again.value.error == "already_reversed"
    assert LedgerEntry.objects(account_id=owner.user.pk, kind="reverse").count() == 1
    assert assert_invariants(owner.id) == 500


def test_a_reversed_earn_leaves_the_tier_figure_for_exactly_its_window(app, admin):
    owner = make_person("SZ")
    mistake = earn(owner.id, 8_000, now=T0)
    earn(owner.id, 2_500, now=T0 + timedelta(days=200))
    assert PointsAccount.objects.get(pk=owner.user.pk).tier == "gold"
    services.reverse_entry(
        admin.caller, str(mistake["_id"]), "Test credit", now=T0 + timedelta(days=300)
    )
    account = PointsAccount.objects.get(pk=owner.user.pk)
    assert (account.tier, account.lifetime_earned) == ("silver", 2_500)
    summary = services.points_summary(owner.id, now=T0 + timedelta(days=300))
    assert (summary["tier"], summary["tier_points"], summary["lifetime_earned"]) == (
        "silver",
        2_500,
        2_500,
    )
    # Before the reversal was written, history still shows the earn.
    assert services.tier_of(owner.id, now=T0 + timedelta(days=299)) == "gold"
    # The reversal is dated by its earn: once the earn leaves the window, so does it.
    assert services.tier_of(owner.id, now=T0 + timedelta(days=370)) == "silver"
    attended = earn(owner.id, 100, now=T0 + timedelta(days=301), rule="event.attended")
    assert attended["amount"] == 110  # silver x1.1, no longer gold x1.2
    assert assert_invariants(owner.id) == 2_610


def test_reconciliation_finds_no_drift_after_reversals_and_repairs_to_the_net(app, admin):
    owner, other = make_person("SZ"), make_person("SZ")
    mistake = earn(owner.id, 8_000, now=T0)
    earn(owner.id, 300, now=T0)
    credit = services.adjust(admin.caller, owner.id, 70, "Goodwill", now=T0)
    services.redeem(owner.user, str(make_reward(cost=100).pk), now=T0)
    services.reverse_entry(admin.caller, str(mistake["_id"]), "Test credit", now=T0)
    services.reverse_entry(admin.caller, str(credit["_id"]), "Not owed", now=T0)
    services.reverse_entry(admin.caller, str(earn(other.id, 50, now=T0)["_id"]), "No", now=T0)
    run = services.run_reconciliation()
    assert (run.drifts, run.repaired, run.entries_checked) == ([], 0, 8)

    PointsAccount.objects(pk=owner.user.pk).update_one(set__lifetime_earned=8_300, set__tier="gold")
    run = services.run_reconciliation()
    assert [
        (drift["cached_lifetime_earned"], drift["computed_lifetime_earned"]) for drift in run.drifts
    ] == [(8_300, 300)]
    account = PointsAccount.objects.get(pk=owner.user.pk)
    assert (account.lifetime_earned, account.tier) == (300, "member")
    assert assert_invariants(owner.id) == 200 and assert_invariants(other.id) == 0
