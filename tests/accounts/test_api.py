from __future__ import annotations

from datetime import timedelta

import pytest

from accounts import services
from accounts.models import User
from app.clock import utcnow
from app.errors import Conflict
from tests.accounts.calls import register
from tests.support import make_city, make_person, settled_in_city


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
    # The same answer, but for the id of the request it answers.
    first, second = wrong.get_json(), unknown.get_json()
    assert first.pop("request_id") != second.pop("request_id")
    assert first == second


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
