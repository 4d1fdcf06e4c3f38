from __future__ import annotations

from accounts.models import User, Vehicle
from app.outbox import OutboxEvent
from tests.support import make_city, make_person

REGISTER = "/api/v1/auth/register"


def register(client, **overrides):
    body = {"email": "Ann@Example.com", "password": "password-123", "display_name": "Ann",
            "city_code": "SZ", **overrides}
    return client.post(REGISTER, json={k: v for k, v in body.items() if v is not None})



def test_register_returns_user_and_tokens(client):
    make_city("SZ")
    response = register(client)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["user"]["city_code"] == "SZ"
    assert body["user"]["roles"] == ["owner"]
    assert body["user"]["verified_owner"] is False
    assert body["access_token"] and body["refresh_token"]
    assert User.objects.get(pk=body["user"]["id"]).email == "ann@example.com"


def test_register_normalises_phone_to_e164(client):
    make_city("SZ")
    response = register(client, email=None, phone="138 0013 8000")
    assert response.status_code == 201, response.json
    assert response.json["user"]["phone"] == "+8613800138000"


def test_register_refuses_duplicate_email_in_any_case(client):
    make_city("SZ")
    assert register(client).status_code == 201
    response = register(client, email="ANN@example.COM")
    assert response.status_code == 409
    assert response.json["error"] == "account_exists"


def test_register_refuses_unknown_city_and_bad_fields(client):
    make_city("SZ")
    assert register(client, city_code="ZZ").json["error"] == "unknown_city"
    both = register(client, phone="13800138000")
    assert both.status_code == 422 and both.json["error"] == "validation_failed"
    unknown = register(client, admin=True)
    assert unknown.status_code == 422 and "admin" in unknown.json["errors"]
    short = register(client, password="short")
    assert short.status_code == 422 and "password" in short.json["errors"]


def test_login_and_me(client):
    make_city("SZ")
    register(client)
    login = client.post("/api/v1/auth/login",
                        json={"email": "ann@example.com", "password": "password-123"})
    assert login.status_code == 200
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {login.json['access_token']}"})
    assert me.status_code == 200
    assert me.json["display_name"] == "Ann"
    assert me.json["tier"] == "member"


def test_login_refusals_are_identical(client):
    make_city("SZ")
    register(client)
    wrong = client.post("/api/v1/auth/login",
                        json={"email": "ann@example.com", "password": "wrong-password"})
    unknown = client.post("/api/v1/auth/login",
                          json={"email": "bob@example.com", "password": "wrong-password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json


def test_vehicle_verification_emits_event(client):
    owner = make_person("SZ")
    leader = make_person("SZ", role="circle_leader")
    created = client.post("/api/v1/me/vehicles", headers=owner.headers,
                          json={"vin": "lsja24u69ms012345", "model": "smart #1"})
    assert created.status_code == 201, created.json
    assert created.json["vin"] == "LSJA24U69MS012345"
    verified = client.post(f"/api/v1/vehicles/{created.json['id']}/verify",
                           headers=leader.headers)
    assert verified.status_code == 200, verified.json
    assert verified.json["status"] == "verified"
    assert User.objects.get(pk=owner.user.pk).verified_owner is True
    assert OutboxEvent.objects(type="vehicle.verified", subject_id=created.json["id"]).count() == 1
    again = client.post(f"/api/v1/vehicles/{created.json['id']}/verify", headers=leader.headers)
    assert again.status_code == 409 and again.json["error"] == "not_pending"
    assert Vehicle.objects.count() == 1
