from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from accounts import services
from accounts.models import User, Vehicle
from app.clock import utcnow
from app.errors import Conflict
from app.outbox import OutboxEvent
from tests.support import make_city, make_person, settled_in_city

REGISTER = "/api/v1/auth/register"


def register(client, **overrides):
    body = {
        "email": "Ann@Example.com",
        "password": "password-123",
        "display_name": "Ann",
        "city_code": "SZ",
        **overrides,
    }
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
    login = client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": "password-123"}
    )
    assert login.status_code == 200
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {login.json['access_token']}"})
    assert me.status_code == 200
    assert me.json["display_name"] == "Ann"
    assert me.json["tier"] == "member"


def test_login_refusals_are_identical(client):
    make_city("SZ")
    register(client)
    wrong = client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": "wrong-password"}
    )
    unknown = client.post(
        "/api/v1/auth/login", json={"email": "bob@example.com", "password": "wrong-password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json


def test_vehicle_verification_emits_event(client):
    owner = make_person("SZ")
    leader = make_person("SZ", role="circle_leader")
    created = client.post(
        "/api/v1/me/vehicles",
        headers=owner.headers,
        json={"vin": "lsja24u69ms012345", "model": "smart #1"},
    )
    assert created.status_code == 201, created.json
    assert created.json["vin"] == "LSJA24U69MS012345"
    verified = client.post(f"/api/v1/vehicles/{created.json['id']}/verify", headers=leader.headers)
    assert verified.status_code == 200, verified.json
    assert verified.json["status"] == "verified"
    assert User.objects.get(pk=owner.user.pk).verified_owner is True
    assert OutboxEvent.objects(type="vehicle.verified", subject_id=created.json["id"]).count() == 1
    again = client.post(f"/api/v1/vehicles/{created.json['id']}/verify", headers=leader.headers)
    assert again.status_code == 409 and again.json["error"] == "not_pending"
    assert Vehicle.objects.count() == 1


def test_refresh_issues_new_access_token(client):
    make_city("SZ")
    tokens = register(client).json
    refreshed = client.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert refreshed.status_code == 200
    me = client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {refreshed.json['access_token']}"}
    )
    assert me.status_code == 200
    with_access = client.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert with_access.status_code == 401


def test_patch_me_changes_profile_and_checks_city(client):
    ann = make_person("SZ")
    settled_in_city(ann, 90)
    make_city("CD")
    changed = client.patch(
        "/api/v1/me",
        headers=ann.headers,
        json={"display_name": "Ann Z", "city_code": "CD", "locale": "en"},
    )
    assert changed.status_code == 200
    assert (changed.json["display_name"], changed.json["city_code"], changed.json["locale"]) == (
        "Ann Z",
        "CD",
        "en",
    )
    unknown = client.patch("/api/v1/me", headers=ann.headers, json={"city_code": "ZZ"})
    assert unknown.status_code == 422 and unknown.json["error"] == "unknown_city"
    read_only = client.patch("/api/v1/me", headers=ann.headers, json={"verified_owner": True})
    assert read_only.status_code == 422
    assert User.objects.get(pk=ann.user.pk).verified_owner is False


def test_the_city_changes_at_most_once_every_90_days(client):
    ann = make_person("SZ")
    make_city("CD")
    make_city("GZ")
    me = client.get("/api/v1/me", headers=ann.headers).json
    assert me["city_since"] == me["created_at"]
    # Naming the city one has is no change.
    same = client.patch("/api/v1/me", headers=ann.headers, json={"city_code": "SZ"})
    assert same.status_code == 200 and same.json["city_since"] == me["city_since"]
    # The first change is free, even right after sign-up: a wrong city is mended at once.
    moved = client.patch("/api/v1/me", headers=ann.headers, json={"city_code": "CD"})
    assert moved.status_code == 200 and moved.json["city_code"] == "CD"
    moved_at = User.objects.get(pk=ann.user.pk).city_changed_at
    assert utcnow() - moved_at < timedelta(minutes=1)
    # The next one waits 90 days, and a refused request changes nothing.
    early = client.patch(
        "/api/v1/me", headers=ann.headers, json={"city_code": "GZ", "display_name": "Ann Z"}
    )
    assert early.status_code == 409 and early.json["error"] == "city_change_too_soon"
    assert early.json["possible_from"] == (moved_at + timedelta(days=90)).isoformat()
    stored = User.objects.get(pk=ann.user.pk)
    assert (stored.city_code, stored.display_name) == ("CD", ann.user.display_name)

    settled_in_city(ann, 90)
    again = client.patch("/api/v1/me", headers=ann.headers, json={"city_code": "GZ"})
    assert again.status_code == 200 and again.json["city_code"] == "GZ"


def test_an_account_not_yet_backfilled_reads_its_city_as_held_since_sign_up(client):
    ann = make_person("SZ")
    make_city("CD")
    User._get_collection().update_one({"_id": ann.user.pk}, {"$unset": {"city_since": ""}})
    me = client.get("/api/v1/me", headers=ann.headers)
    assert me.status_code == 200 and me.json["city_since"] == me.json["created_at"]
    moved = client.patch("/api/v1/me", headers=ann.headers, json={"city_code": "CD"})
    assert moved.status_code == 200 and moved.json["city_code"] == "CD"


def test_of_two_city_changes_sent_at_once_one_is_made(app):
    ann = make_person("SZ")
    settled_in_city(ann, 90)
    make_city("CD"), make_city("GZ")
    # Both requests read the account before either wrote it.
    first, second = User.objects.get(pk=ann.user.pk), User.objects.get(pk=ann.user.pk)
    services.update_profile(first, {"city_code": "CD"})
    with pytest.raises(Conflict) as refused:
        services.update_profile(second, {"city_code": "GZ", "locale": "en"})
    assert refused.value.error == "city_change_too_soon"
    stored = User.objects.get(pk=ann.user.pk)
    assert (stored.city_code, stored.locale) == ("CD", "zh-CN")


def test_role_grants_by_admin_only(client):
    admin = make_person(role="admin")
    ann = make_person("SZ")
    make_city("CD")
    forbidden = client.post(
        "/api/v1/admin/role-grants", headers=ann.headers, json={"user_id": ann.id, "role": "admin"}
    )
    assert forbidden.status_code == 403
    granted = client.post(
        "/api/v1/admin/role-grants",
        headers=admin.headers,
        json={"user_id": ann.id, "role": "circle_leader", "city_codes": ["SZ", "CD"]},
    )
    assert granted.status_code == 201, granted.json
    assert granted.json["city_codes"] == ["CD", "SZ"]
    assert client.get("/api/v1/me", headers=ann.headers).json["roles"] == ["circle_leader", "owner"]
    revoked = client.delete(
        f"/api/v1/admin/role-grants/{granted.json['id']}", headers=admin.headers
    )
    assert revoked.status_code == 204
    assert client.get("/api/v1/me", headers=ann.headers).json["roles"] == ["owner"]


def test_role_grant_refusals(client):
    admin = make_person(role="admin")
    ann = make_person("SZ")
    no_city = client.post(
        "/api/v1/admin/role-grants",
        headers=admin.headers,
        json={"user_id": ann.id, "role": "ambassador"},
    )
    assert no_city.status_code == 422 and no_city.json["error"] == "city_codes_required"
    unknown_city = client.post(
        "/api/v1/admin/role-grants",
        headers=admin.headers,
        json={"user_id": ann.id, "role": "ambassador", "city_codes": ["ZZ"]},
    )
    assert unknown_city.json["error"] == "unknown_city"
    nobody = client.post(
        "/api/v1/admin/role-grants",
        headers=admin.headers,
        json={"user_id": "0" * 24, "role": "admin"},
    )
    assert nobody.status_code == 404
    bad_role = client.post(
        "/api/v1/admin/role-grants", headers=admin.headers, json={"user_id": ann.id, "role": "king"}
    )
    assert bad_role.status_code == 422
    assert (
        client.delete("/api/v1/admin/role-grants/" + "0" * 24, headers=admin.headers).status_code
        == 404
    )


def test_cities_created_by_admin_and_listed_for_anyone(client):
    admin = make_person("SZ", role="admin")
    owner = make_person("SZ")
    body = {"code": "CD", "name": "Chengdu", "province": "Sichuan", "timezone": "Asia/Shanghai"}
    assert client.post("/api/v1/cities", headers=owner.headers, json=body).status_code == 403
    assert client.post("/api/v1/cities", json=body).status_code == 401
    created = client.post("/api/v1/cities", headers=admin.headers, json=body)
    assert created.status_code == 201 and created.json["code"] == "CD"
    again = client.post("/api/v1/cities", headers=admin.headers, json=body)
    assert again.status_code == 409 and again.json["error"] == "city_exists"
    bad_zone = client.post(
        "/api/v1/cities",
        headers=admin.headers,
        json={**body, "code": "GZ", "timezone": "Mars/Olympus"},
    )
    assert bad_zone.status_code == 422 and "timezone" in bad_zone.json["errors"]
    assert [c["code"] for c in client.get("/api/v1/cities").json["items"]] == ["CD", "SZ"]


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
    vehicle = client.post(
        "/api/v1/me/vehicles",
        headers=owner.headers,
        json={"vin": "LSJA24U69MS012345", "model": "smart #1"},
    ).json
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
    cd_vehicle = client.post(
        "/api/v1/me/vehicles",
        headers=cd_owner.headers,
        json={"vin": "LSJA24U69MS000001", "model": "smart #1"},
    ).json
    sz_vehicle = client.post(
        "/api/v1/me/vehicles",
        headers=sz_owner.headers,
        json={"vin": "LSJA24U69MS000002", "model": "smart #3"},
    ).json
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
    vehicle = client.post(
        "/api/v1/me/vehicles",
        headers=owner.headers,
        json={"vin": "LSJA24U69MS000003", "model": "smart #1"},
    ).json
    assert client.get("/api/v1/vehicles", headers=owner.headers).status_code == 403
    assert (
        client.post(f"/api/v1/vehicles/{vehicle['id']}/verify", headers=owner.headers).status_code
        == 404
    )


def test_admin_reviews_in_every_city(client):
    owner = make_person("XN")
    admin = make_person("SZ", role="admin")
    vehicle = client.post(
        "/api/v1/me/vehicles",
        headers=owner.headers,
        json={"vin": "LSJA24U69MS000004", "model": "smart #1"},
    ).json
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
    vehicle = client.post(
        "/api/v1/me/vehicles",
        headers=headers,
        json={"vin": "LSJA24U69MS000005", "model": "smart #1"},
    ).json
    client.post(f"/api/v1/vehicles/{vehicle['id']}/verify", headers=leader.headers)
    completed = OutboxEvent.objects.get(type="referral.completed")
    assert completed.payload == {
        "referrer_id": referrer.id,
        "referee_id": referee.json["user"]["id"],
    }
    bad_code = register(client, email="x@example.com", referral_code="NOPE")
    assert bad_code.status_code == 422 and bad_code.json["error"] == "invalid_referral_code"


def test_export_contains_the_callers_data_only(client):
    ann = make_person("SZ", email="ann@example.com")
    make_person("SZ", email="bob@example.com")
    client.post(
        "/api/v1/me/vehicles",
        headers=ann.headers,
        json={"vin": "LSJA24U69MS000006", "model": "smart #1"},
    )
    export = client.get("/api/v1/me/export", headers=ann.headers)
    assert export.status_code == 200
    body = export.json
    assert body["user_id"] == ann.id
    assert body["account"]["profile"]["email"] == "ann@example.com"
    assert [v["vin"] for v in body["account"]["vehicles"]] == ["LSJA24U69MS000006"]
    assert "bob@example.com" not in export.get_data(as_text=True)


def test_erasure_anonymises_and_revokes_access(client):
    ann = make_person("SZ", email="ann@example.com", phone="13800138000")
    client.post(
        "/api/v1/me/vehicles",
        headers=ann.headers,
        json={"vin": "LSJA24U69MS000007", "model": "smart #1"},
    )
    assert client.delete("/api/v1/me", headers=ann.headers).status_code == 204
    erased = User.objects.get(pk=ann.user.pk)
    assert (erased.email, erased.phone, erased.display_name) == (None, None, "Deleted user")
    assert erased.erased_at is not None
    assert Vehicle.objects.get(owner_id=ann.user.pk).vin.startswith("ERASED-")
    assert OutboxEvent.objects(type="user.erased", subject_id=ann.id).count() == 1
    assert client.get("/api/v1/me", headers=ann.headers).status_code == 401
    login = client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": "password-123"}
    )
    assert login.status_code == 401
    # The email and the VIN are free again.
    make_person("SZ", email="ann@example.com")
    other = make_person("SZ")
    assert (
        client.post(
            "/api/v1/me/vehicles",
            headers=other.headers,
            json={"vin": "LSJA24U69MS000007", "model": "smart #1"},
        ).status_code
        == 201
    )


def test_referral_summary_counts_invited_and_completed(client):
    ann = make_person("SZ")
    bob = make_person("SZ", referral_code=ann.user.referral_code)
    make_person("SZ", referral_code=ann.user.referral_code)
    make_person("SZ")
    User.objects(pk=bob.user.pk).update_one(set__verified_owner=True)
    summary = client.get("/api/v1/me/referral", headers=ann.headers)
    assert summary.status_code == 200
    assert summary.json == {"code": ann.user.referral_code, "invited": 2, "completed": 1}
    assert client.get("/api/v1/me/referral", headers=bob.headers).json["invited"] == 0


def test_nobody_reviews_their_own_vehicle(client):
    leader = make_person("SZ", role="circle_leader")
    admin = make_person("SZ", role="admin")
    for number, reviewer in enumerate((leader, admin)):
        vehicle = client.post(
            "/api/v1/me/vehicles",
            headers=reviewer.headers,
            json={"vin": f"LSJA24U69MS10000{number}", "model": "smart #1"},
        ).json
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


@pytest.mark.parametrize(
    "overrides",
    [
        {"display_name": "Ann\x00"},
        {"display_name": "   "},
        {"display_name": "\u202enna"},
        {"display_name": "Ann\u2069"},
        {"display_name": "Ann\nSmith"},
        {"city_code": "SZ\n"},
    ],
)
def test_register_refuses_unclean_names_and_codes(client, overrides):
    make_city("SZ")
    refused = register(client, **overrides)
    assert refused.status_code == 422 and set(refused.json["errors"]) == set(overrides)
    assert User.objects.count() == 0


def test_profile_text_is_trimmed_and_clean_and_a_patch_changes_something(client):
    ann = make_person("SZ")
    trimmed = client.patch("/api/v1/me", headers=ann.headers, json={"display_name": "  Ann Z  "})
    assert trimmed.status_code == 200 and trimmed.json["display_name"] == "Ann Z"
    for body in ({"display_name": "\tAnn\x1b[31m"}, {"city_code": "SZ\n"}, {}):
        assert client.patch("/api/v1/me", headers=ann.headers, json=body).status_code == 422
    assert client.patch("/api/v1/me", headers=ann.headers).status_code == 422
    assert User.objects.get(pk=ann.user.pk).display_name == "Ann Z"


def test_city_codes_are_exact_everywhere(client):
    admin = make_person("SZ", role="admin")
    ann = make_person("SZ")
    grant = client.post(
        "/api/v1/admin/role-grants",
        headers=admin.headers,
        json={"user_id": ann.id, "role": "ambassador", "city_codes": ["SZ\n"]},
    )
    assert grant.status_code == 422 and "city_codes" in grant.json["errors"]
    city = client.post(
        "/api/v1/cities",
        headers=admin.headers,
        json={"code": "QQ\n", "name": "Q", "province": "Q"},
    )
    assert city.status_code == 422 and "code" in city.json["errors"]
    assert client.get("/api/v1/vehicles?city=SZ%0A", headers=admin.headers).status_code == 422
    unknown = client.post(
        "/api/v1/admin/role-grants",
        headers=admin.headers,
        json={"user_id": ann.id, "role": "ambassador", "city_codes": ["SZ", "QQ", "ZZ"]},
    )
    assert unknown.status_code == 422 and unknown.json["error"] == "unknown_city"
    assert unknown.json["errors"] == {"city_codes": ["Unknown city: QQ.", "Unknown city: ZZ."]}
    named = client.post(
        "/api/v1/cities",
        headers=admin.headers,
        json={"code": "QQ", "name": "Qingdao\u202e", "province": " "},
    )
    assert named.status_code == 422 and set(named.json["errors"]) == {"name", "province"}
