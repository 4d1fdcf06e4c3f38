"""JSON bodies are read once, the same way everywhere: what no field could store (deep
nesting, lone surrogates) is refused with a 4xx envelope before any service runs."""

from __future__ import annotations

import json
import time

import pytest

from accounts.models import User, Vehicle
from events.models import Event
from loyalty.models import LedgerEntry, PartnerTransaction
from tests.events.conftest import event_body
from tests.support import make_city, make_person, partner_signature

API = "/api/v1"
LONE = "\ud800"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def post_raw(client, path: str, body: str | bytes, headers=None):
    return client.post(path, data=body, content_type="application/json", headers=headers or {})


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_deep_json_is_refused_before_login(client, depth):
    response = post_raw(client, f"{API}/auth/login", '{"email": ' + nested(depth) + "}")
    assert response.status_code == 400
    assert response.json["error"] == "json_too_deep"


def test_deep_json_is_refused_on_an_authenticated_endpoint(client):
    owner = make_person()
    response = post_raw(
        client, f"{API}/me/vehicles", '{"model": ' + nested(1_000) + "}", owner.headers
    )
    assert response.status_code == 400
    assert response.json["error"] == "json_too_deep"
    assert Vehicle.objects.count() == 0


def test_nesting_up_to_the_limit_reaches_validation(client):
    # 32 levels in all: the object holding `email` is the first.
    response = post_raw(client, f"{API}/auth/login", '{"email": ' + nested(31) + "}")
    assert response.status_code == 422
    assert "email" in response.json["errors"]


def test_lone_surrogate_in_registration_is_refused_and_nothing_stored(client):
    make_city("SZ")
    body = {
        "email": "a@example.com",
        "password": "password-123",
        "display_name": f"A{LONE}",
        "city_code": "SZ",
    }
    response = post_raw(client, f"{API}/auth/register", json.dumps(body))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_text"
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"email": f"{LONE}@example.com", "password": "password-123"},
        {"email": "a@example.com", "password": "x", LONE: 1},
        {"email": "a@example.com", "password": ["ok", {"deeper": f"x{LONE}y"}]},
        # A high surrogate with no low one after it, and a low one alone.
        {"email": "a@example.com", "password": "\ud83d"},
        {"email": "a@example.com", "password": "\ude00"},
    ],
)
def test_lone_surrogate_anywhere_in_the_body_is_refused(client, body):
    response = post_raw(client, f"{API}/auth/login", json.dumps(body))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_text"


def test_escaped_surrogate_pairs_are_text(client):
    owner = make_person()
    response = client.patch(
        f"{API}/me",
        data='{"display_name": "Rider \\ud83d\\ude97"}',
        content_type="application/json",
        headers=owner.headers,
    )
    assert response.status_code == 200, response.json
    assert User.objects.get(pk=owner.id).display_name == "Rider \U0001f697"


def test_raw_surrogate_bytes_are_malformed(client):
    response = post_raw(client, f"{API}/auth/login", b'{"email": "\xed\xa0\x80"}')
    assert response.status_code == 400
    assert response.json["error"] == "malformed_json"


def test_lone_surrogate_in_vehicle_and_event_is_refused(client):
    owner = make_person()
    vehicle = {"vin": "LSJA24U69MS000001", "model": f"ES8{LONE}"}
    response = post_raw(client, f"{API}/me/vehicles", json.dumps(vehicle), owner.headers)
    assert response.status_code == 400 and response.json["error"] == "invalid_text"
    assert Vehicle.objects.count() == 0

    leader = make_person(role="circle_leader")
    event = event_body(title=f"Night drive {LONE}")
    response = post_raw(client, f"{API}/events", json.dumps(event), leader.headers)
    assert response.status_code == 400 and response.json["error"] == "invalid_text"
    assert Event.objects.count() == 0


def test_lone_surrogate_in_a_signed_partner_credit_is_refused(client):
    admin = make_person(role="admin")
    make_person(phone="13900139000")
    partner = client.post(
        f"{API}/admin/partners",
        headers=admin.headers,
        json={"name": "ChargeCo", "max_points_per_txn": 200},
    ).json
    raw = json.dumps(
        {
            "member_phone": "+8613900139000",
            "points": 50,
            "partner_txn_id": f"txn-{LONE}",
            "occurred_at": "2026-03-01T10:00:00+08:00",
        }
    ).encode()
    stamp = str(int(time.time()))
    headers = {
        "X-Partner-Key": partner["key"],
        "X-Signature": partner_signature(partner["secret"], stamp, raw),
        "X-Timestamp": stamp,
    }
    response = post_raw(client, f"{API}/partner/points/credits", raw, headers)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_text"
    assert PartnerTransaction.objects.count() == 0
    assert LedgerEntry.objects.count() == 0


@pytest.mark.parametrize("query", ["city=%ED%A0%80", "city=%F0%9F", "cursor=%ED%A0%80"])
def test_undecodable_query_text_is_a_4xx(client, query):
    # Werkzeug decodes query strings with replacement characters, never surrogates.
    owner = make_person()
    response = client.get(f"{API}/events?{query}", headers=owner.headers)
    assert 400 <= response.status_code < 500
