"""Points expiry and the warnings before it."""

from __future__ import annotations

from datetime import timedelta

from app.auth import load_caller
from loyalty import (
    expiry,
    rewards,
)
from loyalty.models import LedgerEntry, Lot
from notifications.models import Notification
from tests.loyalty.conftest import T0, assert_invariants, earn, make_reward
from tests.support import make_person


def test_expiry_writes_expire_entries_once_and_warns_thirty_days_before(app):
    owner = make_person("SZ", locale="en")
    earn(owner.id, 300, now=T0)
    lot = Lot.objects.get(account_id=owner.user.pk)
    assert expiry.warn_expiring(now=lot.expires_at - timedelta(days=31)) == 0
    assert expiry.warn_expiring(now=lot.expires_at - timedelta(days=29)) == 1
    assert expiry.warn_expiring(now=lot.expires_at - timedelta(days=28)) == 0
    warning = Notification.objects.get(user_id=owner.user.pk, template="points_expiring")
    assert "300" in warning.body and "2028-03-01" in warning.body

    assert expiry.expire_due(now=lot.expires_at - timedelta(seconds=1)) == 0
    assert expiry.expire_due(now=lot.expires_at) == 1
    assert expiry.expire_due(now=lot.expires_at + timedelta(hours=1)) == 0
    expired = LedgerEntry.objects.get(account_id=owner.user.pk, kind="expire")
    assert expired.amount == -300 and expired.balance_after == 0
    assert assert_invariants(owner.id) == 0


def test_refund_into_an_expired_lot_expires_again(app):
    owner = make_person("SZ")
    earn(owner.id, 100, now=T0)
    redemption = rewards.redeem(owner.user, str(make_reward().pk), now=T0)
    lot = Lot.objects.get(account_id=owner.user.pk)
    rewards.cancel_redemption(
        load_caller(owner.id), str(redemption.pk), now=lot.expires_at + timedelta(days=1)
    )
    assert expiry.expire_due(now=lot.expires_at + timedelta(days=1)) == 1
    assert assert_invariants(owner.id) == 0
