"""Spending points at an ecosystem partner: pay codes, and the partner's signed debits over
HTTP (loyalty/pay_codes.py, loyalty/partner_transactions.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests

from app.clock import utcnow
from loyalty import pay_codes
from loyalty.models import LedgerEntry, Lot, PayCode
from tests.loyalty.conftest import assert_invariants, earn
from tests.loyalty.partners import API, pay_code, register_partner
from tests.support import make_person


def _debit(code: str, txn: str, points: int) -> dict:
    return {"pay_code": code, "partner_txn_id": txn, "points": points}


def test_an_owner_pays_with_a_pay_code_spending_lots_oldest_expiry_first(client, admin):
    owner = make_person("SZ")
    now = utcnow()
    older = earn(owner.id, 200, now=now - timedelta(days=300))
    newer = earn(owner.id, 500, now=now - timedelta(days=10))
    partner = register_partner(client, admin)
    issued = client.post(
        f"{API}/me/pay-codes",
        headers=owner.headers,
        json={"max_points": 300, "partner_id": partner.id},
    )
    assert issued.status_code == 201, issued.json
    code = issued.json
    assert len(code["code"]) == 6 and code["code"].isdigit()
    assert code["qr"] == f"ocpay:{code['code']}" and code["partner_name"] == "ChargeCo"
    assert code["max_points"] == 300

    # The partner's scanner read the QR code: its text names the code too.
    debit = partner.post(client, "/partner/points/debits", _debit(code["qr"], "charge-1", 250))
    assert debit.status_code == 201, debit.json
    assert debit.json["kind"] == "debit" and debit.json["member_id"] == owner.id
    assert debit.json["balance_after"] == 450
    lots = {lot.entry_id: lot.remaining for lot in Lot.objects(account_id=owner.user.pk)}
    assert lots == {older["_id"]: 0, newer["_id"]: 450}
    entry = LedgerEntry.objects.get(pk=debit.json["entry_id"])
    assert entry.kind == "redeem" and entry.reason == "Spent at ChargeCo"
    assert entry.source["name"] == "ChargeCo" and entry.source["txn_id"] == "charge-1"

    replay = partner.post(client, "/partner/points/debits", _debit(code["code"], "charge-1", 250))
    assert replay.status_code == 200 and replay.json == debit.json
    reused = partner.post(client, "/partner/points/debits", _debit(code["code"], "charge-1", 251))
    assert reused.status_code == 409 and reused.json["error"] == "partner_txn_reused"
    ledger = client.get(f"{API}/me/points/ledger", headers=owner.headers).json["items"]
    assert ledger[0]["reason"] == "Spent at ChargeCo" and ledger[0]["amount"] == -250
    assert assert_invariants(owner.id) == 450


def test_a_pay_code_used_twice_expired_above_its_maximum_or_at_another_partner_is_refused(
    client, admin
):
    owner = make_person("SZ")
    earn(owner.id, 1_000)
    charging = register_partner(client, admin, name="ChargeCo")
    car_wash = register_partner(client, admin, name="WashCo")
    code = pay_code(client, owner, 300, charging.id)

    def debit(partner, code, txn, points):
        return partner.post(client, "/partner/points/debits", _debit(code, txn, points))

    refused = {
        "another partner": debit(car_wash, code, "w-1", 100),
        "above its maximum": debit(charging, code, "c-1", 301),
        "unknown code": debit(charging, f"{(int(code) + 1) % 10**6:06d}", "c-2", 100),
    }
    assert refused["another partner"].status_code == 422
    assert refused["another partner"].json["error"] == "invalid_pay_code"
    assert refused["above its maximum"].status_code == 409
    assert refused["above its maximum"].json["error"] == "over_pay_code_max"
    assert refused["above its maximum"].json["max_points"] == 300
    assert refused["unknown code"].json["error"] == "invalid_pay_code"
    # Refusals used nothing: the code still pays, once.
    assert debit(charging, code, "c-3", 300).status_code == 201
    twice = debit(charging, code, "c-4", 10)
    assert twice.status_code == 409 and twice.json["error"] == "pay_code_used"

    expired = pay_codes.issue_pay_code(owner.user, 100, now=utcnow() - timedelta(minutes=2))
    late = debit(charging, expired["code"], "c-5", 50)
    assert late.status_code == 409 and late.json["error"] == "pay_code_expired"
    short = debit(charging, pay_code(client, owner, 5_000), "c-6", 800)
    assert short.status_code == 409 and short.json["error"] == "insufficient_points"
    unknown_partner = client.post(
        f"{API}/me/pay-codes",
        headers=owner.headers,
        json={"max_points": 10, "partner_id": "ffffffffffffffffffffffff"},
    )
    assert unknown_partner.status_code == 422 and unknown_partner.json["error"] == "unknown_partner"
    assert LedgerEntry.objects(kind="redeem").count() == 1
    assert assert_invariants(owner.id) == 700


def test_one_pay_code_sent_by_many_requests_at_once_pays_once(live_server, client, admin):
    owner = make_person("SZ")
    earn(owner.id, 1_000)
    partner = register_partner(client, admin)
    code = pay_code(client, owner, 500)

    def send(number: int) -> int:
        with requests.Session() as http:
            body = _debit(code, f"race-{number % 2}", 100)
            return partner.post_live(http, live_server, "/partner/points/debits", body).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(send, range(16)))
    # Two transaction ids race for one code: one pays; its replays answer 200, the other's
    # requests find the code used.
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 409}, statuses
    assert LedgerEntry.objects(kind="redeem").count() == 1
    assert PayCode.objects.get(pk=code).used_for in ("race-0", "race-1")
    assert assert_invariants(owner.id) == 900


def test_a_partner_guessing_pay_codes_is_stopped(app, client, admin, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_PAY_CODE_FAILURES_PER_PARTNER", "3 per minute")
    owner = make_person("SZ")
    earn(owner.id, 1_000)
    guesser = register_partner(client, admin, name="Guesser")
    honest = register_partner(client, admin, name="Honest")
    code = pay_code(client, owner, 100)
    guesses = [
        guesser.post(client, "/partner/points/debits", _debit(f"{n:06d}", f"g-{n}", 10)).status_code
        for n in range(3)
    ]
    assert guesses == [422, 422, 422]
    stopped = guesser.post(client, "/partner/points/debits", _debit(code, "g-right", 10))
    assert stopped.status_code == 429 and stopped.json["error"] == "rate_limited"
    assert "Retry-After" in stopped.headers
    # Another partner is not held back by the guesser's failures.
    paid = honest.post(client, "/partner/points/debits", _debit(code, "h-1", 10))
    assert paid.status_code == 201, paid.json


def test_the_daily_debit_cap_holds_the_partners_business_day(client, admin):
    owner = make_person("SZ")
    earn(owner.id, 2_000)
    partner = register_partner(client, admin, daily_debit_cap=500)
    answers = [
        partner.post(
            client, "/partner/points/debits", _debit(pay_code(client, owner, 400), f"d-{n}", points)
        )
        for n, points in enumerate((300, 300, 200))
    ]
    assert [answer.status_code for answer in answers] == [201, 409, 201]
    assert answers[1].json["error"] == "daily_cap_reached"
    assert answers[1].json["cap"] == 500 and answers[1].json["direction"] == "debit"
    assert assert_invariants(owner.id) == 1_500


def test_pay_code_numbers_are_not_given_to_two_owners(app):
    owners = [make_person("SZ") for _ in range(30)]
    codes = [pay_codes.issue_pay_code(owner.user, 10)["code"] for owner in owners]
    assert len(set(codes)) == 30
    holders = {code.pk: code.user_id for code in PayCode.objects}
    assert sorted(map(str, holders.values())) == sorted(owner.id for owner in owners)
