"""Ecosystem partners: authentication and credits, as services."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from app.errors import Conflict, Unauthorized, ValidationFailed
from loyalty import partner_systems, partner_transactions
from loyalty.models import PartnerDayTotal, PartnerTransaction
from tests.loyalty.conftest import assert_invariants
from tests.support import make_person, partner_signature

migration = importlib.import_module("migrations.2026_12_06_partner_transactions")


def test_partner_authentication_and_credit_rules(app, admin):
    owner = make_person("SZ", phone="13800138000")
    partner, secret = partner_systems.create_partner(admin.caller, "ChargeCo", 500)
    body = b'{"points": 10}'
    now = datetime.now(UTC)
    stamp = str(int(now.timestamp()))
    signature = partner_signature(secret, stamp, body)
    assert (
        partner_systems.authenticate_partner(partner.key, signature, stamp, body).pk == partner.pk
    )
    earlier = str(int(now.timestamp()) - 301)
    for key, sig, ts in (
        (partner.key, "0" * 64, stamp),
        ("pk_unknown", signature, stamp),
        (partner.key, partner_signature(secret, earlier, body), earlier),
        (partner.key, signature, str(int(now.timestamp()) - 1)),
        (partner.key, partner_signature(secret, "yesterday", body), "yesterday"),
        (None, None, None),
    ):
        with pytest.raises(Unauthorized):
            partner_systems.authenticate_partner(key, sig, ts, body)

    credit, created = partner_transactions.credit_from_partner(
        partner, partner_txn_id="t1", points=10, member_phone="138 0013 8000"
    )
    assert created and credit["balance_after"] == 10
    replay, created = partner_transactions.credit_from_partner(
        partner, partner_txn_id="t1", points=10, member_phone="138 0013 8000"
    )
    assert not created and replay["entry_id"] == credit["entry_id"]
    with pytest.raises(Conflict):
        partner_transactions.credit_from_partner(
            partner, partner_txn_id="t1", points=11, member_id=owner.id
        )
    with pytest.raises(ValidationFailed) as over:
        partner_transactions.credit_from_partner(
            partner, partner_txn_id="t2", points=501, member_id=owner.id
        )
    assert over.value.error == "over_cap"
    assert assert_invariants(owner.id) == 10


def test_the_migration_moves_partner_credits_into_partner_transactions(app, admin):
    partner, _ = partner_systems.create_partner(admin.caller, "ChargeCo", 500)
    owner = make_person("SZ")
    # 23:30 UTC is the next morning in Shanghai, the partner's (default) time zone.
    received = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    old = PartnerTransaction._get_db()["partner_credits"]
    old.insert_many(
        [
            {
                "partner_id": partner.pk,
                "partner_txn_id": f"t{number}",
                "user_id": owner.user.pk,
                "points": 10 * number,
                "entry_id": ObjectId(),
                "balance_after": 10 * number,
                "occurred_at": None,
                "created_at": received,
            }
            for number in (1, 2)
        ]
    )
    assert migration.migrate() == {"credits_copied": 2, "day_totals_set": 1}
    assert migration.migrate() == {"credits_copied": 0, "day_totals_set": 1}
    copied = PartnerTransaction.objects.get(partner_txn_id="t2")
    assert (copied.kind, copied.points, copied.reversed) == ("credit", 20, 0)
    assert copied.business_day == "2026-03-02"
    total = PartnerDayTotal.objects.get(pk=f"{partner.pk}:2026-03-02:credit")
    assert (total.booked, total.through_api, total.movements) == (30, 30, 2)
