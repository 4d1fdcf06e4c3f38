"""Ecosystem partners' credits over HTTP: signed requests, one member per transaction id, and
bounded numbers and times."""

from __future__ import annotations

import json
import time

from loyalty.models import LedgerEntry
from tests.loyalty.conftest import assert_invariants
from tests.support import make_person, partner_signature


def _signed(partner, body: dict, *, secret=None, stamp=None, key=None):
    raw = json.dumps(body).encode()
    stamp = str(stamp or int(time.time()))
    return raw, {
        "Content-Type": "application/json",
        "X-Partner-Key": key or partner["key"],
        "X-Signature": partner_signature(secret or partner["secret"], stamp, raw),
        "X-Timestamp": stamp,
    }


def test_partner_credits_over_http(client, admin):
    owner = make_person("SZ", phone="13900139000")
    partner = client.post(
        "/api/v1/admin/partners",
        headers=admin.headers,
        json={"name": "ChargeCo", "max_points_per_txn": 200},
    )
    assert partner.status_code == 201 and partner.json["secret"]
    partner = partner.json
    body = {
        "member_phone": "+8613900139000",
        "points": 50,
        "partner_txn_id": "txn-1",
        "occurred_at": "2026-03-01T10:00:00+08:00",
    }

    raw, headers = _signed(partner, body)
    good = client.post("/api/v1/partner/points/credits", data=raw, headers=headers)
    assert good.status_code == 201, good.json
    assert good.json["points"] == 50 and good.json["member_id"] == owner.id
    replay = client.post("/api/v1/partner/points/credits", data=raw, headers=headers)
    assert replay.status_code == 200 and replay.json == good.json

    bad = [
        _signed(partner, body, secret="wrong"),
        _signed(partner, body, stamp=int(time.time()) - 600),
        _signed(partner, body, key="pk_nobody"),
    ]
    answers = [client.post("/api/v1/partner/points/credits", data=r, headers=h) for r, h in bad]
    assert {answer.status_code for answer in answers} == {401}
    # The same answer whatever failed (each names its own request).
    bodies = [{**answer.json, "request_id": None} for answer in answers]
    assert len({json.dumps(body, sort_keys=True) for body in bodies}) == 1
    unsigned = client.post("/api/v1/partner/points/credits", json={"junk": 1})
    assert unsigned.status_code == 401

    raw, headers = _signed(partner, {**body, "points": 201, "partner_txn_id": "txn-2"})
    over = client.post("/api/v1/partner/points/credits", data=raw, headers=headers)
    assert over.status_code == 422 and over.json["error"] == "over_cap"
    assert assert_invariants(owner.id) == 50


def test_partner_signature_covers_the_timestamp_and_a_txn_id_names_one_member(client, admin):
    owner, other = make_person("SZ", phone="13900139000"), make_person("SZ")
    partner = client.post(
        "/api/v1/admin/partners",
        headers=admin.headers,
        json={"name": "ChargeCo", "max_points_per_txn": 200},
    ).json
    body = {"member_id": owner.id, "points": 50, "partner_txn_id": "txn-1"}
    credits = "/api/v1/partner/points/credits"
    raw, captured = _signed(partner, body, stamp=int(time.time()) - 600)
    # A request captured once, sent again later under a fresh timestamp.
    replayed = client.post(
        credits, data=raw, headers={**captured, "X-Timestamp": str(int(time.time()))}
    )
    assert replayed.status_code == 401 and replayed.json["error"] == "invalid_signature"
    assert LedgerEntry.objects.count() == 0

    raw, headers = _signed(partner, body)
    first = client.post(credits, data=raw, headers=headers)
    assert first.status_code == 201, first.json
    # The same member, named by phone this time: a replay.
    by_phone = {"member_phone": "13900139000", "points": 50, "partner_txn_id": "txn-1"}
    raw, headers = _signed(partner, by_phone)
    same = client.post(credits, data=raw, headers=headers)
    assert same.status_code == 200 and same.json == first.json
    raw, headers = _signed(partner, {**body, "member_id": other.id})
    reused = client.post(credits, data=raw, headers=headers)
    assert reused.status_code == 409 and reused.json["error"] == "partner_txn_reused"
    assert assert_invariants(owner.id) == 50 and assert_invariants(other.id) == 0


def test_partner_credit_numbers_and_times_are_bounded(client, admin):
    owner = make_person("SZ")
    partner = client.post(
        "/api/v1/admin/partners",
        headers=admin.headers,
        json={"name": "ChargeCo", "max_points_per_txn": 200},
    ).json
    assert (
        client.post(
            "/api/v1/admin/partners",
            headers=admin.headers,
            json={"name": "Big", "max_points_per_txn": 10**30},
        ).status_code
        == 422
    )
    body = {"member_id": owner.id, "points": 50, "partner_txn_id": "txn-1"}
    for overrides in (
        {"points": 10**30},
        {"occurred_at": "9999-12-31T23:59:59-12:00"},
        {"occurred_at": "0001-01-01T00:00:00+14:00"},
        {"occurred_at": "2026-03-01T10:00:00"},
    ):
        raw, headers = _signed(partner, {**body, **overrides})
        refused = client.post("/api/v1/partner/points/credits", data=raw, headers=headers)
        assert refused.status_code == 422, (overrides, refused.json)
        assert set(refused.json["errors"]) == set(overrides)
    assert LedgerEntry.objects.count() == 0
