"""Ecosystem partners' daily statements: matched against the ledger on a real worker, through
HTTP with real signatures; exceptions resolved once however often or concurrently sent
(loyalty/statements.py, loyalty/statement_exceptions.py)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from app.auth import load_caller
from app.clock import utcnow
from app.errors import DomainError
from loyalty import statement_exceptions, statements
from loyalty.models import EcosystemPartner, LedgerEntry, PartnerTransaction
from loyalty.partner_systems import business_day
from loyalty.partner_transactions import credit_from_partner
from notifications.models import Notification
from tests.loyalty.conftest import assert_invariants, earn
from tests.loyalty.partners import API, register_partner
from tests.support import make_person, wait_until

SHANGHAI = ZoneInfo("Asia/Shanghai")


def yesterday() -> date:
    return (utcnow().astimezone(SHANGHAI) - timedelta(days=1)).date()


def at(day: date, hour: int = 12) -> datetime:
    """A time of the partner's business day `day` (Asia/Shanghai, cut-off 00:00), in UTC."""
    return datetime.combine(day, time(hour), SHANGHAI).astimezone(UTC)


def line(txn: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A statement line saying what our transaction says, but for `changes`."""
    body = {
        "partner_txn_id": txn["partner_txn_id"],
        "member_id": str(txn["user_id"]),
        "kind": txn["kind"],
        "points": txn["points"],
        "occurred_at": txn["occurred_at"].isoformat(),
    }
    if txn.get("original_txn_id"):
        body["original_txn_id"] = txn["original_txn_id"]
    return {**body, **changes}


def statement(day: date, lines: list[dict[str, Any]], **header: Any) -> dict[str, Any]:
    """A statement body whose header adds up, but for `header`."""
    totals = statements.control_totals(lines)
    return {
        "date": day.isoformat(),
        "count": totals["count"],
        "total_credit": totals["total_credit"],
        "total_debit": totals["total_debit"],
        "lines": lines,
        **header,
    }


def resolve(http: Any, base: str, admin: Any, exception_id: str, action: str) -> Any:
    return http.post(
        f"{base}{API}/admin/statement-exceptions/{exception_id}/resolution",
        headers=admin.headers,
        json={"action": action, "reason": "checked with the partner's operations desk"},
    )


@pytest.mark.slow
def test_a_statement_of_1000_lines_matched_on_a_worker_and_resolved_once(
    client, live_server, admin, background
):
    owners = [make_person("SZ", locale="en") for _ in range(5)]
    partner_system = register_partner(
        client, admin, credit_rate_per_1000=500, debit_rate_per_1000=800
    )
    partner = EcosystemPartner.objects.get(pk=partner_system.id)
    day = yesterday()
    ours = [
        credit_from_partner(
            partner,
            partner_txn_id=f"t-{number:04d}",
            points=10 + number % 7,
            member_id=owners[number % 5].id,
            occurred_at=at(day) + timedelta(seconds=number),
        )[0]
        for number in range(999)
    ]
    missing_theirs, points_off, member_off, doubled = ours[10], ours[20], ours[30], ours[40]
    lines = [
        line(txn, points=txn["points"] + 5)
        if txn is points_off
        else line(txn, member_id=owners[(owners.index(_owner(txn, owners)) + 1) % 5].id)
        if txn is member_off
        else line(txn)
        for txn in ours
        if txn is not missing_theirs
    ]
    lines.append(line(doubled))
    lines.append(
        {
            "partner_txn_id": "t-late-arrival",
            "member_phone": owners[0].user.phone or "",
            "member_id": owners[0].id,
            "kind": "credit",
            "points": 40,
            "occurred_at": at(day, 20).isoformat(),
        }
    )
    del lines[-1]["member_phone"]
    assert len(lines) == 1000
    background("worker", "dispatcher")

    unsigned = client.post(f"{API}/partner/statements", json=statement(day, lines))
    assert unsigned.status_code == 401
    too_early = partner_system.post(
        client, "/partner/statements", statement(day + timedelta(days=1), [])
    )
    assert too_early.status_code == 409 and too_early.json["error"] == "day_not_over"
    sent = partner_system.post(client, "/partner/statements", statement(day, lines))
    assert sent.status_code == 202, sent.json
    assert sent.json["status"] == "queued" and sent.json["line_count"] == 1000
    path = f"{API}/admin/partners/{partner_system.id}/statements/{day.isoformat()}"

    def matched():
        shown = client.get(path, headers=admin.headers).json
        return shown if shown["status"] == "matched" else None

    result = wait_until(matched, timeout=120, message="the statement matched on the worker")
    found = {exception["kind"]: exception for exception in result["exceptions"]}
    assert Counter(e["kind"] for e in result["exceptions"]) == {
        "missing_ours": 1,
        "missing_theirs": 1,
        "points_mismatch": 1,
        "member_mismatch": 1,
        "duplicate": 1,
    }
    assert result["matched"] == 996
    assert found["missing_theirs"]["partner_txn_id"] == missing_theirs["partner_txn_id"]
    assert found["points_mismatch"]["theirs"]["points"] == points_off["points"] + 5
    assert found["duplicate"]["theirs"]["copies"] == 2
    assert all(e["status"] == "open" for e in result["exceptions"])
    entries_before = LedgerEntry.objects.count()

    # Sent twice in a row, six times at once, and so on: each changes the ledger once.
    with requests.Session() as http:
        first = resolve(http, live_server, admin, found["missing_ours"]["id"], "accept_theirs")
        again = resolve(http, live_server, admin, found["missing_ours"]["id"], "accept_theirs")
    assert first.status_code == again.status_code == 200, first.json()
    assert first.json() == again.json()

    def at_once(exception_id: str, action: str) -> list[int]:
        def send(_: int) -> int:
            with requests.Session() as http:
                return resolve(http, live_server, admin, exception_id, action).status_code

        with ThreadPoolExecutor(6) as pool:
            return list(pool.map(send, range(6)))

    assert at_once(found["missing_theirs"]["id"], "reverse_ours") == [200] * 6
    assert at_once(found["points_mismatch"]["id"], "accept_theirs") == [200] * 6
    other_way = client.post(
        f"{API}/admin/statement-exceptions/{found['points_mismatch']['id']}/resolution",
        headers=admin.headers,
        json={"action": "keep_ours", "reason": "changed my mind"},
    )
    assert other_way.status_code == 409 and other_way.json["error"] == "exception_resolved"
    for _ in range(2):
        moved = client.post(
            f"{API}/admin/statement-exceptions/{found['member_mismatch']['id']}/resolution",
            headers=admin.headers,
            json={"action": "accept_theirs", "reason": "the partner's member is right"},
        )
        assert moved.status_code == 200, moved.json
    kept, replayed = (
        client.post(
            f"{API}/admin/statement-exceptions/{found['duplicate']['id']}/resolution",
            headers={**admin.headers, "Idempotency-Key": "duplicate-seen"},
            json={"action": "keep_ours", "reason": "their file listed it twice"},
        )
        for _ in range(2)
    )
    assert kept.status_code == 200 and kept.json["resolution"]["entry_ids"] == []
    assert kept.json["actions"] == ["keep_ours"]
    assert replayed.get_data() == kept.get_data()
    assert replayed.headers["Idempotent-Replayed"] == "true"
    not_applicable = client.post(
        f"{API}/admin/statement-exceptions/{found['duplicate']['id']}/resolution",
        headers=admin.headers,
        json={"action": "accept_theirs", "reason": "?"},
    )
    assert not_applicable.status_code == 409
    assert not_applicable.json["error"] == "resolution_not_applicable"

    by_exception = Counter(
        entry.idempotency_key.split(":")[1]
        for entry in LedgerEntry.objects
        if entry.idempotency_key.startswith("statement:")
    )
    assert by_exception == {
        found["missing_ours"]["id"]: 1,  # their credit of 40
        found["missing_theirs"]["id"]: 1,  # ours taken back
        found["points_mismatch"]["id"]: 1,  # the 5 points more
        found["member_mismatch"]["id"]: 2,  # out of one member's account, into the other's
    }
    assert LedgerEntry.objects.count() == entries_before + 5
    for owner in owners:
        assert_invariants(owner.id)
    told = Notification.objects(template="points_adjusted")
    assert told.count() == 5
    assert all("ChargeCo, statement of" in n.data["reason"] for n in told)
    resolved_by = {e.actor_id for e in LedgerEntry.objects if e.source.get("exception")}
    assert resolved_by == {admin.user.pk}

    # The settlement adds up to the ledger: every partner movement, credits less debits.
    ledger = sum(e.amount for e in LedgerEntry.objects if e.source.get("type") == "partner")
    months = {day.strftime("%Y-%m"), business_day(partner, utcnow())[:7]}
    settled = [
        client.get(
            f"{API}/admin/partners/{partner_system.id}/settlement",
            headers=admin.headers,
            query_string={"month": month},
        ).json
        for month in sorted(months)
    ]
    assert sum(s["points_credited"] - s["points_debited"] for s in settled) == ledger
    assert sum(s["points_credited"] for s in settled) == ledger
    assert all(s["partner_owes"] == (s["points_credited"] * 500 + 500) // 1000 for s in settled)
    assert sum(s["open_exceptions"] for s in settled) == 0

    # The day sent again (other bytes, same lines) replaces the result, doubling nothing.
    resent = partner_system.post(client, "/partner/statements", statement(day, lines[::-1]))
    assert resent.status_code == 202 and resent.json["version"] == 2
    again = wait_until(
        lambda: (shown := matched()) and shown["version"] == 2 and shown,
        timeout=120,
        message="the statement sent again matched",
    )
    assert again["exception_counts"] == {"duplicate": 1}
    assert {e["status"] for e in again["exceptions"]} == {"resolved"}
    assert LedgerEntry.objects.count() == entries_before + 5


def _owner(txn: dict[str, Any], owners: list[Any]) -> Any:
    return next(owner for owner in owners if owner.id == str(txn["user_id"]))


# --- matching, as a service --------------------------------------------------------------


@pytest.fixture
def partner(client, admin) -> EcosystemPartner:
    return EcosystemPartner.objects.get(pk=register_partner(client, admin).id)


def _match(partner: EcosystemPartner, day: date, lines: list, **header: Any) -> dict:
    body = statement(day, lines, **header)
    received = statements.receive_statement(
        partner,
        day=day,
        count=body["count"],
        total_credit=body["total_credit"],
        total_debit=body["total_debit"],
        total_reversal=header.get("total_reversal"),
        lines=[_loaded(item) for item in lines],
        body=repr(body).encode(),
    )
    assert statements.match_statement(received["_id"], str(received["upload_id"]))
    return {
        exception.partner_txn_id or "totals": exception
        for exception in statements.exceptions_of(received)
    }


def _loaded(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "occurred_at": datetime.fromisoformat(item["occurred_at"])}


def test_late_lines_over_reversals_kind_mismatches_and_wrong_totals(app, partner):
    owner = make_person("SZ", phone="13800138000")
    day = yesterday()

    def credit(txn: str, points: int, hour: int = 12) -> dict:
        return credit_from_partner(
            partner,
            partner_txn_id=txn,
            points=points,
            member_id=owner.id,
            occurred_at=at(day, hour),
        )[0]

    on_time, late, as_debit, reversed_ = (
        credit("on-time", 10),
        credit("late", 10, hour=23),
        credit("as-debit", 10),
        credit("reversed", 100),
    )
    lines = [
        {**line(on_time), "member_phone": "138 0013 8000"},
        line(late, occurred_at=(at(day, 23) + timedelta(hours=2)).isoformat()),
        line(as_debit, kind="debit"),
        line(reversed_),
        *(
            {
                **line(reversed_),
                "kind": "reversal",
                "partner_txn_id": txn,
                "original_txn_id": "reversed",
                "points": 60,
            }
            for txn in ("rev-1", "rev-2")
        ),
    ]
    del lines[0]["member_id"]
    found = _match(partner, day, lines, total_reversal=100, count=7)
    assert {txn: e.kind for txn, e in found.items()} == {
        "late": "late",
        "as-debit": "kind_mismatch",
        "rev-1": "missing_ours",
        "rev-2": "over_reversal",
        "totals": "totals_mismatch",
    }
    assert found["rev-2"].ours["reversible"] == 100
    assert found["totals"].theirs["count"] == 7 and found["totals"].ours["count"] == 6
    assert found["totals"].ours["total_reversal"] == 120
    assert statement_exceptions.actions_for(found["rev-2"].to_mongo()) == ("keep_ours",)


def test_resolutions_apply_theirs_as_they_say(app, partner, admin):
    owner, other = make_person("SZ"), make_person("SZ")
    earn(owner.id, 30)
    day = yesterday()
    as_debit = credit_from_partner(
        partner, partner_txn_id="as-debit", points=10, member_id=owner.id, occurred_at=at(day)
    )[0]
    reversible = credit_from_partner(
        partner, partner_txn_id="c-2", points=50, member_id=other.id, occurred_at=at(day)
    )[0]
    lines = [
        line(as_debit, kind="debit"),
        line(reversible),
        {
            **line(reversible),
            "partner_txn_id": "rev-1",
            "kind": "reversal",
            "original_txn_id": "c-2",
            "points": 20,
        },
        {**line(as_debit), "partner_txn_id": "big-debit", "kind": "debit", "points": 500},
        {**line(as_debit), "partner_txn_id": "to-admin", "member_id": admin.id, "points": 99},
    ]
    found = _match(partner, day, lines)
    acting = load_caller(admin.id)

    def accept(txn: str) -> dict:
        return statement_exceptions.resolve_exception(
            acting, found[txn].pk, "accept_theirs", "as the partner says"
        )

    # Our credit of 10 was their debit of 10: 10 taken back, 10 spent.
    assert len(accept("as-debit")["resolution"]["entry_ids"]) == 2
    assert PartnerTransaction.objects.get(partner_txn_id="as-debit").kind == "debit"
    assert assert_invariants(owner.id) == 30 - 10
    # Their reversal of 20 of the other owner's credit, as if they had sent it.
    accept("rev-1")
    assert PartnerTransaction.objects.get(partner_txn_id="c-2").reversed == 20
    assert assert_invariants(other.id) == 30
    # A debit the owner cannot pay stays open, nothing written.
    with pytest.raises(DomainError) as short:
        accept("big-debit")
    assert short.value.error == "insufficient_points"
    assert found["big-debit"].reload().status == "open"
    # Nobody resolves in their own favour; another admin may.
    with pytest.raises(DomainError) as own:
        accept("to-admin")
    assert own.value.error == "own_points"
    colleague = load_caller(make_person("SZ", role="admin").id)
    statement_exceptions.resolve_exception(colleague, found["to-admin"].pk, "accept_theirs", "ok")
    assert assert_invariants(admin.id) == 99


def test_a_long_statement_has_a_database_budget_of_its_own(app, client, admin, monkeypatch):
    system = register_partner(client, admin)
    owner = make_person("SZ")
    lines = [
        {
            "partner_txn_id": f"t-{number}",
            "member_id": owner.id,
            "kind": "credit",
            "points": 10,
            "occurred_at": at(yesterday()).isoformat(),
        }
        for number in range(5_000)
    ]
    monkeypatch.setitem(app.config, "REQUEST_DB_BUDGET_MS", 1)
    credit = {"member_id": owner.id, "partner_txn_id": "c-1", "points": 10}
    other = system.post(client, "/partner/points/credits", credit)
    assert other.status_code == 503 and other.json["error"] == "service_unavailable"
    sent = system.post(client, "/partner/statements", statement(yesterday(), lines))
    assert sent.status_code == 202, sent.json
    assert sent.json["line_count"] == 5_000
