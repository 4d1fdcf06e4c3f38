"""Owners' vehicles and their verification by the circle leaders of the vehicle's city."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from accounts.models import User, Vehicle
from app.clock import utcnow
from app.outbox import OutboxEvent
from tests.accounts.calls import register
from tests.support import add_vehicle, make_city, make_person


def test_vehicle_verification_emits_event(client):
    owner = make_person("SZ")
    leader = make_person("SZ", role="circle_leader")
    created = add_vehicle(client, owner.headers, "lsja24u69ms012345")
    assert created["vin"] == "LSJA24U69MS012345"
    verified = client.post(f"/api/v1/vehicles/{created['id']}/verify", headers=leader.headers)
    assert verified.status_code == 200, verified.json
    assert verified.json["status"] == "verified"
    assert User.objects.get(pk=owner.user.pk).verified_owner is True
    assert OutboxEvent.objects(type="vehicle.verified", subject_id=created["id"]).count() == 1
    again = client.post(f"/api/v1/vehicles/{created['id']}/verify", headers=leader.headers)
    assert again.status_code == 409 and again.json["error"] == "not_pending"
    assert Vehicle.objects.count() == 1


@pytest.mark.parametrize(
    "vin",
    [
        "LSJA24U69MS01234",
        "LSJA24U69MS0123456",
        "LSJA24U69MI012345",
        "LSJA24U69MO012345",
        "LSJA24U69MQ012345",
        "LSJA24U69MS01234-",
    ],
)
def test_invalid_vins_are_refused(client, vin):
    owner = make_person()
    response = client.post(
        "/api/v1/me/vehicles", headers=owner.headers, json={"vin": vin, "model": "smart #1"}
    )
    assert response.status_code == 422 and response.json["error"] == "invalid_vin"


def test_vin_is_unique_across_owners(client):
    ann, bob = make_person(), make_person()
    body = {"vin": "LSJA24U69MS012345", "model": "smart #1"}
    assert client.post("/api/v1/me/vehicles", headers=ann.headers, json=body).status_code == 201
    taken = client.post(
        "/api/v1/me/vehicles", headers=bob.headers, json={**body, "vin": body["vin"].lower()}
    )
    assert taken.status_code == 409 and taken.json["error"] == "vin_taken"
    assert client.get("/api/v1/me/vehicles", headers=bob.headers).json["items"] == []
    assert len(client.get("/api/v1/me/vehicles", headers=ann.headers).json["items"]) == 1


def test_reject_needs_reason_and_leaves_owner_unverified(client):
    owner = make_person("SZ")
    leader = make_person("SZ", role="circle_leader")
    vehicle = add_vehicle(client, owner.headers, "LSJA24U69MS012345")
    url = f"/api/v1/vehicles/{vehicle['id']}/reject"
    assert client.post(url, headers=leader.headers, json={}).status_code == 422
    rejected = client.post(url, headers=leader.headers, json={"reason": "Papers unreadable"})
    assert rejected.status_code == 200
    assert (rejected.json["status"], rejected.json["rejection_reason"]) == (
        "rejected",
        "Papers unreadable",
    )
    assert User.objects.get(pk=owner.user.pk).verified_owner is False
    assert OutboxEvent.objects(type="vehicle.verified").count() == 0


def test_leader_acts_only_in_own_city(client):
    cd_owner = make_person("CD")
    sz_owner = make_person("SZ")
    sz_leader = make_person("SZ", role="circle_leader")
    cd_vehicle = add_vehicle(client, cd_owner.headers, "LSJA24U69MS000001")
    sz_vehicle = add_vehicle(client, sz_owner.headers, "LSJA24U69MS000002", "smart #3")
    queue = client.get("/api/v1/vehicles?status=pending", headers=sz_leader.headers).json
    assert [v["id"] for v in queue["items"]] == [sz_vehicle["id"]]
    other_city = client.get("/api/v1/vehicles?city=CD", headers=sz_leader.headers)
    assert other_city.status_code == 403
    for action, body in (("verify", None), ("reject", {"reason": "no"})):
        hidden = client.post(
            f"/api/v1/vehicles/{cd_vehicle['id']}/{action}", headers=sz_leader.headers, json=body
        )
        assert hidden.status_code == 404
    assert Vehicle.objects.get(pk=cd_vehicle["id"]).status == "pending"


def test_owners_cannot_review_or_see_the_queue(client):
    owner = make_person("SZ")
    vehicle = add_vehicle(client, owner.headers, "LSJA24U69MS000003")
    assert client.get("/api/v1/vehicles", headers=owner.headers).status_code == 403
    assert (
        client.post(f"/api/v1/vehicles/{vehicle['id']}/verify", headers=owner.headers).status_code
        == 404
    )


def test_admin_reviews_in_every_city(client):
    owner = make_person("XN")
    admin = make_person("SZ", role="admin")
    vehicle = add_vehicle(client, owner.headers, "LSJA24U69MS000004")
    queue = client.get("/api/v1/vehicles?city=XN", headers=admin.headers).json
    assert [v["id"] for v in queue["items"]] == [vehicle["id"]]
    assert (
        client.post(f"/api/v1/vehicles/{vehicle['id']}/verify", headers=admin.headers).status_code
        == 200
    )


def test_referred_owner_verification_completes_referral(client):
    make_city("SZ")
    referrer = make_person("SZ")
    referee = register(
        client, email="ref@example.com", referral_code=referrer.user.referral_code.lower()
    )
    assert referee.status_code == 201
    leader = make_person("SZ", role="circle_leader")
    headers = {"Authorization": f"Bearer {referee.json['access_token']}"}
    vehicle = add_vehicle(client, headers, "LSJA24U69MS000005")
    client.post(f"/api/v1/vehicles/{vehicle['id']}/verify", headers=leader.headers)
    completed = OutboxEvent.objects.get(type="referral.completed")
    assert completed.payload == {
        "referrer_id": referrer.id,
        "referee_id": referee.json["user"]["id"],
    }
    bad_code = register(client, email="x@example.com", referral_code="NOPE")
    assert bad_code.status_code == 422 and bad_code.json["error"] == "invalid_referral_code"


def test_nobody_reviews_their_own_vehicle(client):
    leader = make_person("SZ", role="circle_leader")
    admin = make_person("SZ", role="admin")
    for number, reviewer in enumerate((leader, admin)):
        vehicle = add_vehicle(client, reviewer.headers, f"LSJA24U69MS10000{number}")
        for action, body in (("verify", None), ("reject", {"reason": "mine"})):
            own = client.post(
                f"/api/v1/vehicles/{vehicle['id']}/{action}", headers=reviewer.headers, json=body
            )
            assert own.status_code == 403 and own.json["error"] == "own_vehicle", own.json
        assert Vehicle.objects.get(pk=vehicle["id"]).status == "pending"
        assert User.objects.get(pk=reviewer.user.pk).verified_owner is False
    assert OutboxEvent.objects(type="vehicle.verified").count() == 0
    colleague = make_person("SZ", role="circle_leader")
    for vehicle in Vehicle.objects:
        verified = client.post(f"/api/v1/vehicles/{vehicle.pk}/verify", headers=colleague.headers)
        assert verified.status_code == 200


def test_nobody_reviews_the_vehicle_of_an_owner_they_referred(client):
    """Its first verification pays the referrer: a leader could invite a made-up owner and
    verify a made-up vehicle for the referral points."""
    leader = make_person("SZ", role="circle_leader")
    invited = make_person("SZ", referral_code=leader.user.referral_code)
    vehicle = add_vehicle(client, invited.headers, "LSJA24U69MS200000")
    for action, body in (("verify", None), ("reject", {"reason": "not theirs"})):
        refused = client.post(
            f"/api/v1/vehicles/{vehicle['id']}/{action}", headers=leader.headers, json=body
        )
        assert refused.status_code == 403 and refused.json["error"] == "own_referral"
    assert Vehicle.objects.get(pk=vehicle["id"]).status == "pending"
    assert OutboxEvent.objects(type__in=["vehicle.verified", "referral.completed"]).count() == 0
    colleague = make_person("SZ", role="circle_leader")
    verified = client.post(f"/api/v1/vehicles/{vehicle['id']}/verify", headers=colleague.headers)
    assert verified.status_code == 200
    completed = OutboxEvent.objects.get(type="referral.completed")
    assert completed.payload["referrer_id"] == leader.id


def test_delivery_date_is_between_1990_and_today_in_the_owners_city(client):
    # Kiritimati is UTC+14: its today is tomorrow almost everywhere else.
    make_city("KT", timezone="Pacific/Kiritimati")
    owner = make_person("KT")
    today = utcnow().astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    for number, delivered_on in enumerate(
        ("2999-01-01", "1989-12-31", (today + timedelta(days=1)).isoformat())
    ):
        refused = client.post(
            "/api/v1/me/vehicles",
            headers=owner.headers,
            json={
                "vin": f"LSJA24U69MS20000{number}",
                "model": "smart #1",
                "delivered_on": delivered_on,
            },
        )
        assert refused.status_code == 422 and refused.json["error"] == "date_out_of_range"
        assert "delivered_on" in refused.json["errors"]
    assert Vehicle.objects.count() == 0
    accepted = client.post(
        "/api/v1/me/vehicles",
        headers=owner.headers,
        json={"vin": "LSJA24U69MS200009", "model": " smart #1 ", "delivered_on": today.isoformat()},
    )
    assert accepted.status_code == 201, accepted.json
    assert (accepted.json["delivered_on"], accepted.json["model"]) == (
        today.isoformat(),
        "smart #1",
    )
