"""A partner's month: figures and money each way, closed once, late lines in the next month
(loyalty/settlement.py)."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from app.auth import load_caller
from app.clock import utcnow
from loyalty import settlement, statement_exceptions, statements
from loyalty.models import EcosystemPartner, LedgerEntry
from loyalty.partner_systems import business_day
from loyalty.partner_transactions import credit_from_partner
from tests.loyalty.conftest import earn
from tests.loyalty.partners import API, pay_code, register_partner
from tests.loyalty.test_statements import at
from tests.support import make_person


def _month(client, admin, partner_id: str, month: str) -> dict:
    answer = client.get(
        f"{API}/admin/partners/{partner_id}/settlement",
        headers=admin.headers,
        query_string={"month": month},
    )
    assert answer.status_code == 200, answer.json
    return answer.json


def test_a_month_adds_up_each_way_at_the_contracts_rates(client, admin):
    owner = make_person("SZ")
    earn(owner.id, 1_000)
    system = register_partner(
        client, admin, credit_rate_per_1000=333, debit_rate_per_1000=1_250, currency="CNY"
    )
    for number, points in enumerate((101, 202, 303)):
        body = {"member_id": owner.id, "partner_txn_id": f"c-{number}", "points": points}
        assert system.post(client, "/partner/points/credits", body).status_code == 201
    body = {"pay_code": pay_code(client, owner, 500), "partner_txn_id": "d-1", "points": 400}
    assert system.post(client, "/partner/points/debits", body).status_code == 201
    reversal = {"partner_txn_id": "c-2", "reversal_txn_id": "r-1", "points": 3}
    assert system.post(client, "/partner/points/reversals", reversal).status_code == 201
    partner = EcosystemPartner.objects.get(pk=system.id)
    month = business_day(partner, utcnow())[:7]

    figures = _month(client, admin, system.id, month)
    assert figures["status"] == "open" and figures["partner_name"] == "ChargeCo"
    assert figures["points_credited"] == 101 + 202 + 303 - 3
    assert figures["points_debited"] == 400
    # 603 points at 333 per 1,000 is 200.799: 201 fen; 400 at 1,250 is 500 fen.
    assert figures["partner_owes"] == 201 and figures["brand_owes"] == 500
    assert figures["net_owed_to_brand"] == -299 and figures["currency"] == "CNY"
    assert [day["points_credited"] for day in figures["days"]] == [603]
    ledger = sum(e.amount for e in LedgerEntry.objects if e.source.get("type") == "partner")
    assert figures["points_credited"] - figures["points_debited"] == ledger

    sheet = client.get(
        f"{API}/admin/partners/{system.id}/settlement.csv",
        headers=admin.headers,
        query_string={"month": month},
    )
    assert sheet.status_code == 200 and sheet.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(sheet.get_data(as_text=True))))
    assert rows[0][:5] == ["partner", "month", "day", "points_credited", "points_debited"]
    assert rows[-1][2:8] == ["total", "603", "400", "CNY", "201", "500"]
    not_yet = client.post(
        f"{API}/admin/partners/{system.id}/settlement/close",
        headers=admin.headers,
        json={"month": month},
    )
    assert not_yet.status_code == 409 and not_yet.json["error"] == "month_not_over"
    for bad in ("2026-13", "26-01", "2026-01\n", "1999-12"):
        refused = client.get(
            f"{API}/admin/partners/{system.id}/settlement",
            headers=admin.headers,
            query_string={"month": bad},
        )
        assert refused.status_code == 422, bad


def test_a_month_closes_once_and_late_lines_land_in_the_next(client, admin):
    owner = make_person("SZ")
    system = register_partner(client, admin)
    partner = EcosystemPartner.objects.get(pk=system.id)
    today = date.fromisoformat(business_day(partner, utcnow()))
    last_day = today.replace(day=1) - timedelta(days=1)
    month, this_month = last_day.strftime("%Y-%m"), today.strftime("%Y-%m")
    lines = [
        {
            "partner_txn_id": txn,
            "member_id": owner.id,
            "kind": "credit",
            "points": points,
            "occurred_at": at(last_day),
        }
        for txn, points in (("before-close", 70), ("after-close", 30))
    ]
    received = statements.receive_statement(
        partner,
        day=last_day,
        count=2,
        total_credit=100,
        total_debit=0,
        lines=lines,
        body=b"the last day",
    )
    statements.match_statement(received["_id"], str(received["upload_id"]))
    found = {e.partner_txn_id: e for e in statements.exceptions_of(received)}
    acting = load_caller(admin.id)

    def accept(txn: str) -> dict:
        return statement_exceptions.resolve_exception(
            acting, found[txn].pk, "accept_theirs", "the charger was offline"
        )

    assert accept("before-close")["resolution"]["booked_on"] == last_day.isoformat()
    assert _month(client, admin, system.id, month)["open_exceptions"] == 1
    close = client.post(
        f"{API}/admin/partners/{system.id}/settlement/close",
        headers={**admin.headers, "Idempotency-Key": "close-once"},
        json={"month": month},
    )
    assert close.status_code == 200, close.json
    assert close.json["status"] == "closed" and close.json["points_credited"] == 70
    assert close.json["open_exceptions"] == 1
    replay = client.post(
        f"{API}/admin/partners/{system.id}/settlement/close",
        headers={**admin.headers, "Idempotency-Key": "close-once"},
        json={"month": month},
    )
    assert replay.get_data() == close.get_data()
    again = client.post(
        f"{API}/admin/partners/{system.id}/settlement/close",
        headers=admin.headers,
        json={"month": month},
    )
    assert again.status_code == 409 and again.json["error"] == "month_closed"

    # The line resolved after the close lands in the month now open.
    assert accept("after-close")["resolution"]["booked_on"] == today.isoformat()
    closed = _month(client, admin, system.id, month)
    assert closed["status"] == "closed" and closed["points_credited"] == 70
    assert closed["closed_by"] == admin.id
    assert _month(client, admin, system.id, this_month)["points_credited"] == 30
    credit_from_partner(
        partner, partner_txn_id="offline", points=5, member_id=owner.id, occurred_at=at(last_day)
    )
    assert _month(client, admin, system.id, this_month)["points_credited"] == 35
    assert settlement.settlement_of(acting, system.id, month)["points_credited"] == 70
