"""Ecosystem partners' reversals, daily credit caps and secret rotation over HTTP, with real
signatures (loyalty/partner_transactions.py, loyalty/partner_systems.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests

from app.clock import utcnow
from app.domains import ScorecardScope
from loyalty import balances
from loyalty.models import LedgerEntry, Lot, PartnerTransaction, PointsAccount
from notifications.models import Notification
from tests.loyalty.conftest import assert_invariants, earn
from tests.loyalty.partners import API, pay_code, register_partner
from tests.support import make_person


def _credit(owner, txn: str, points: int) -> dict:
    return {"member_id": owner.id, "partner_txn_id": txn, "points": points}


def _reversal(original: str, txn: str, points: int) -> dict:
    return {"partner_txn_id": original, "reversal_txn_id": txn, "points": points}


def test_partial_reversals_of_a_credit_never_exceed_it(client, admin):
    owner = make_person("SZ", locale="en")
    partner = register_partner(client, admin)
    assert (
        partner.post(client, "/partner/points/credits", _credit(owner, "c-1", 100)).status_code
        == 201
    )

    def reverse(txn: str, points: int, original: str = "c-1"):
        return partner.post(client, "/partner/points/reversals", _reversal(original, txn, points))

    first = reverse("r-1", 30)
    assert first.status_code == 201, first.json
    assert first.json["kind"] == "reversal" and first.json["original_txn_id"] == "c-1"
    assert first.json["balance_after"] == 70
    assert reverse("r-1", 30).json == first.json  # a replay
    assert reverse("r-1", 30).status_code == 200
    assert reverse("r-1", 31).json["error"] == "partner_txn_reused"
    over = reverse("r-2", 71)
    assert over.status_code == 409 and over.json["error"] == "over_reversal"
    assert over.json["reversible"] == 70
    assert reverse("r-3", 70).status_code == 201
    assert reverse("r-4", 1).json["error"] == "over_reversal"
    assert reverse("r-5", 1, original="nothing").json["error"] == "unknown_partner_txn"
    assert reverse("r-6", 1, original="r-1").json["error"] == "not_reversible"
    account = PointsAccount.objects.get(pk=owner.user.pk)
    # A reversed credit is no longer earned: it leaves the lifetime and tier figures.
    assert account.balance == 0 and account.lifetime_earned == 0
    assert PartnerTransaction.objects.get(partner_txn_id="c-1").reversed == 100
    told = Notification.objects(user_id=owner.user.pk, template="points_reversed")
    assert sorted(n.data["points"] for n in told) == [30, 70]
    assert told.first().data["reason"] == "Reversed by ChargeCo"
    assert assert_invariants(owner.id) == 0


def test_a_debit_reversed_gives_points_back_to_the_lots_it_spent(client, admin):
    owner = make_person("SZ")
    first = earn(owner.id, 100)
    second = earn(owner.id, 100)
    partner = register_partner(client, admin)
    code = pay_code(client, owner, 150)
    body = {"pay_code": code, "partner_txn_id": "d-1", "points": 150}
    assert partner.post(client, "/partner/points/debits", body).status_code == 201
    refund = partner.post(client, "/partner/points/reversals", _reversal("d-1", "r-1", 120))
    assert refund.status_code == 201, refund.json
    assert LedgerEntry.objects.get(pk=refund.json["entry_id"]).kind == "refund"
    # The last points spent come back first: the second lot's 50, then 70 of the first.
    lots = {lot.entry_id: lot.remaining for lot in Lot.objects(account_id=owner.user.pk)}
    assert lots == {first["_id"]: 70, second["_id"]: 100}
    rest = partner.post(client, "/partner/points/reversals", _reversal("d-1", "r-2", 30))
    assert rest.status_code == 201
    assert (
        partner.post(client, "/partner/points/reversals", _reversal("d-1", "r-3", 1)).json["error"]
        == "over_reversal"
    )
    assert assert_invariants(owner.id) == 200


def test_concurrent_reversals_of_one_credit_add_up_to_it_at_most(live_server, client, admin):
    owner = make_person("SZ")
    partner = register_partner(client, admin)
    assert (
        partner.post(client, "/partner/points/credits", _credit(owner, "c-1", 100)).status_code
        == 201
    )

    def reverse(number: int) -> int:
        with requests.Session() as http:
            body = _reversal("c-1", f"r-{number}", 30)
            return partner.post_live(
                http, live_server, "/partner/points/reversals", body
            ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(reverse, range(8)))
    assert statuses == [201, 201, 201, 409, 409, 409, 409, 409], statuses
    assert PartnerTransaction.objects.get(partner_txn_id="c-1").reversed == 90
    assert LedgerEntry.objects(kind="reverse").count() == 3
    assert assert_invariants(owner.id) == 10


def test_the_daily_credit_cap_holds_under_concurrent_credits(live_server, client, admin):
    owners = [make_person("SZ") for _ in range(4)]
    partner = register_partner(client, admin, daily_credit_cap=1_000)

    def credit(number: int):
        with requests.Session() as http:
            body = _credit(owners[number % 4], f"c-{number}", 300)
            return partner.post_live(http, live_server, "/partner/points/credits", body)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(credit, range(8)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201, 201, 201, 409, 409, 409, 409, 409], statuses
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"daily_cap_reached"}
    assert sum(LedgerEntry.objects(kind="earn").values_list("amount")) == 900
    for owner in owners:
        assert_invariants(owner.id)


def test_two_secrets_sign_during_a_rotation_then_only_the_new_one(client, admin):
    owner = make_person("SZ")
    partner = register_partner(client, admin)
    old_secret = partner.secret
    rotated = client.post(
        f"{API}/admin/partners/{partner.id}/secrets",
        headers=admin.headers,
        json={"overlap_hours": 2},
    )
    assert rotated.status_code == 201, rotated.json
    new_secret = rotated.json["secret"]
    assert new_secret != old_secret and rotated.json["previous_secret_until"]
    shown = client.get(f"{API}/admin/partners/{partner.id}", headers=admin.headers).json
    assert "secret" not in shown and shown["previous_secret_until"]

    def credit(txn: str, secret: str):
        return partner.post(
            client, "/partner/points/credits", _credit(owner, txn, 10), secret=secret
        )

    assert credit("c-old", old_secret).status_code == 201
    assert credit("c-new", new_secret).status_code == 201
    retired = client.delete(
        f"{API}/admin/partners/{partner.id}/secrets/previous", headers=admin.headers
    )
    assert retired.status_code == 204
    refused = credit("c-old-2", old_secret)
    assert refused.status_code == 401 and refused.json["error"] == "invalid_signature"
    assert credit("c-new-2", new_secret).status_code == 201
    # A rotation without overlap stops the current secret at once; two at most sign.
    again = client.post(
        f"{API}/admin/partners/{partner.id}/secrets",
        headers=admin.headers,
        json={"overlap_hours": 0},
    ).json["secret"]
    assert credit("c-3", new_secret).status_code == 401
    assert credit("c-4", again).status_code == 201
    assert assert_invariants(owner.id) == 40


def test_partner_settings_are_validated(client, admin):
    partner = register_partner(client, admin)
    for bad in (
        {"timezone": "Mars/Olympus"},
        {"cutoff": "24:00"},
        {"cutoff": "04:00\n"},
        {"currency": "cny"},
        {"daily_credit_cap": 0},
        {"credit_rate_per_1000": -1},
        {},
    ):
        refused = client.patch(
            f"{API}/admin/partners/{partner.id}", headers=admin.headers, json=bad
        )
        assert refused.status_code == 422, (bad, refused.json)
    changed = client.patch(
        f"{API}/admin/partners/{partner.id}",
        headers=admin.headers,
        json={"timezone": "Europe/Berlin", "cutoff": "04:00", "daily_credit_cap": None},
    )
    assert changed.status_code == 200
    assert changed.json["timezone"] == "Europe/Berlin" and changed.json["cutoff"] == "04:00"
    listed = client.get(f"{API}/admin/partners", headers=admin.headers).json["items"]
    assert [item["id"] for item in listed] == [partner.id]


def test_figures_and_the_owners_ledger_name_the_partner(client, admin):
    owner = make_person("SZ")
    partner = register_partner(client, admin, name="SparkCharge")
    assert (
        partner.post(client, "/partner/points/credits", _credit(owner, "c-1", 80)).status_code
        == 201
    )
    assert (
        partner.post(client, "/partner/points/reversals", _reversal("c-1", "r-1", 30)).status_code
        == 201
    )
    earn(owner.id, 500)  # the welcome rule
    now = utcnow()
    part = balances.scorecard_figures(
        ScorecardScope("SZ", None, now.strftime("%Y-%m"), now - timedelta(days=1), now)
    )
    assert part.figures["points_issued_by_source"] == {
        "partner:SparkCharge": 50,
        "vehicle.verified": 500,
    }
    ledger = client.get(f"{API}/me/points/ledger", headers=owner.headers).json["items"]
    named = [(item["reason"], item["source"].get("name")) for item in ledger[1:]]
    assert named == [
        ("Reversed by SparkCharge", "SparkCharge"),
        ("Credited by SparkCharge", "SparkCharge"),
    ]
