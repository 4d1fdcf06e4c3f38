"""The ledger core: entries, lots and the cached totals they move."""

from __future__ import annotations

from datetime import UTC, datetime

from loyalty import ledger
from loyalty.models import LedgerEntry, Lot, PointsAccount
from notifications.models import Notification
from tests.loyalty.conftest import T0, assert_invariants, earn
from tests.support import make_person


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


def test_add_months_clamps_to_month_end():
    assert ledger.add_months(datetime(2024, 2, 29, tzinfo=UTC), 24) == datetime(
        2026, 2, 28, tzinfo=UTC
    )
    assert ledger.add_months(datetime(2025, 11, 30, tzinfo=UTC), 3) == datetime(
        2026, 2, 28, tzinfo=UTC
    )
