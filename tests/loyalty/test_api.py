"""Owners' points and the reward catalogue over HTTP: balances and ledger pages, which rewards an
owner sees (city, tier), the admins' catalogue, and the personal data export."""

from __future__ import annotations

from datetime import timedelta

from bson import ObjectId

from accounts.models import User
from loyalty.models import Redemption, Reward
from tests.loyalty.conftest import assert_invariants, earn, make_reward
from tests.support import make_city, make_person, settled_in_city


def test_me_points_and_ledger(client):
    owner = make_person("SZ")
    earn(owner.id, 300)
    earn(owner.id, 200)
    points = client.get("/api/v1/me/points", headers=owner.headers)
    assert points.status_code == 200
    assert points.json["balance"] == 500 and points.json["tier"] == "member"
    assert points.json["next_tier"] == {"name": "silver", "points_needed": 1500}
    assert points.json["expiring"] == []
    ledger = client.get("/api/v1/me/points/ledger?limit=1", headers=owner.headers).json
    assert [entry["amount"] for entry in ledger["items"]] == [200]
    assert ledger["items"][0]["balance_after"] == 500 and ledger["items"][0]["expires_at"]
    rest = client.get(
        f"/api/v1/me/points/ledger?cursor={ledger['next_cursor']}", headers=owner.headers
    ).json
    assert [entry["amount"] for entry in rest["items"]] == [300] and rest["next_cursor"] is None
    assert client.get("/api/v1/me", headers=owner.headers).json["tier"] == "member"


def test_owners_see_only_their_own_points(client):
    owner, other = make_person("SZ"), make_person("SZ")
    earn(owner.id, 300)
    assert client.get("/api/v1/me/points", headers=other.headers).json["balance"] == 0
    assert client.get("/api/v1/me/points/ledger", headers=other.headers).json["items"] == []
    assert client.get("/api/v1/me/points").status_code == 401


def test_reward_catalog_is_admin_managed_and_filtered_for_owners(client, admin):
    owner = make_person("SZ")
    make_city("CD")
    body = {"title": "Cap", "cost": 100, "stock": 5, "fulfillment": "pickup", "per_owner_limit": 1}
    assert client.post("/api/v1/rewards", json=body, headers=owner.headers).status_code == 403
    created = client.post("/api/v1/rewards", json=body, headers=admin.headers)
    assert created.status_code == 201, created.json
    client.post(
        "/api/v1/rewards",
        headers=admin.headers,
        json={**body, "title": "Gold only", "min_tier": "gold"},
    )
    client.post(
        "/api/v1/rewards",
        headers=admin.headers,
        json={**body, "title": "Chengdu only", "city_codes": ["CD"]},
    )
    bad = client.post("/api/v1/rewards", headers=admin.headers, json={**body, "cost": 1.5})
    assert bad.status_code == 422
    listed = client.get("/api/v1/rewards", headers=owner.headers).json["items"]
    assert [reward["title"] for reward in listed] == ["Cap"]
    in_cd = client.get("/api/v1/rewards?city=CD", headers=owner.headers).json["items"]
    assert sorted(reward["title"] for reward in in_cd) == ["Cap", "Chengdu only"]
    patched = client.patch(
        f"/api/v1/rewards/{created.json['id']}", headers=admin.headers, json={"active": False}
    )
    assert patched.status_code == 200 and patched.json["active"] is False
    assert client.get("/api/v1/rewards", headers=owner.headers).json["items"] == []


def test_reward_cities_are_checked_by_the_catalog_not_before_the_caller(client, admin):
    owner = make_person("SZ")
    body = {"title": "Cap", "cost": 100, "stock": 5, "fulfillment": "pickup", "city_codes": ["QQ"]}
    created = client.post("/api/v1/rewards", headers=owner.headers, json=body)
    assert created.status_code == 403, created.json
    reward = make_reward()
    path = f"/api/v1/rewards/{reward.pk}"
    changed = client.patch(path, headers=owner.headers, json={"city_codes": ["QQ"]})
    assert changed.status_code == 403, changed.json
    missing = client.patch(
        f"/api/v1/rewards/{ObjectId()}", headers=admin.headers, json={"city_codes": ["QQ"]}
    )
    assert missing.status_code == 404, missing.json
    unknown = client.patch(path, headers=admin.headers, json={"city_codes": ["QQ"]})
    assert unknown.status_code == 422 and unknown.json["error"] == "unknown_city"
    assert Reward.objects.get(pk=reward.pk).city_codes == []
    assert Reward.objects.count() == 1


def test_city_rewards_are_for_owners_settled_in_the_city(client):
    make_city("CD")
    hopper, local = make_person("SZ"), make_person("CD")
    settled_in_city(hopper, 90)
    settled_in_city(local, 30)
    earn(hopper.id, 500)
    earn(local.id, 500)
    reward = make_reward(city_codes=["CD"], cost=100)
    redeem = {"reward_id": str(reward.pk)}
    refused = client.post("/api/v1/redemptions", headers=hopper.headers, json=redeem)
    assert refused.status_code == 409 and refused.json["error"] == "not_in_city"

    moved = client.patch("/api/v1/me", headers=hopper.headers, json={"city_code": "CD"})
    assert moved.status_code == 200, moved.json
    too_soon = client.post("/api/v1/redemptions", headers=hopper.headers, json=redeem)
    assert too_soon.status_code == 409 and too_soon.json["error"] == "city_too_recent"
    moved_at = User.objects.get(pk=hopper.user.pk).city_changed_at
    assert too_soon.json["eligible_from"] == (moved_at + timedelta(days=30)).isoformat()
    back = client.patch("/api/v1/me", headers=hopper.headers, json={"city_code": "SZ"})
    assert back.status_code == 409 and back.json["error"] == "city_change_too_soon"
    assert Redemption.objects.count() == 0 and Reward.objects.get(pk=reward.pk).stock == 10
    assert assert_invariants(hopper.id) == 500

    settled = client.post("/api/v1/redemptions", headers=local.headers, json=redeem)
    assert settled.status_code == 201, settled.json


def test_personal_data_export_includes_points(client):
    owner = make_person("SZ")
    other = make_person("SZ")
    earn(owner.id, 40)
    earn(other.id, 7)
    export = client.get("/api/v1/me/export", headers=owner.headers).json
    assert export["points"]["summary"]["balance"] == 40
    assert [entry["amount"] for entry in export["points"]["ledger"]] == [40]
    assert export["points"]["redemptions"] == []


def test_locked_rewards_say_why_and_show_only_when_asked(client):
    owner = make_person("SZ")
    make_city("CD")
    mug = make_reward(title="Mug")
    make_reward(title="Jacket", min_tier="gold")
    make_reward(title="Gone", stock=0)
    make_reward(title="Chengdu tea", city_codes=["CD"])
    make_reward(title="Shenzhen cap", city_codes=["SZ"])

    def offers(query: str = "") -> dict[str, tuple[bool, str | None]]:
        response = client.get(f"/api/v1/rewards{query}", headers=owner.headers)
        assert response.status_code == 200, response.json
        return {
            item["title"]: (item["redeemable"], item.get("locked_reason"))
            for item in response.json["items"]
        }

    assert offers() == {
        "Mug": (True, None),
        "Gone": (False, "out_of_stock"),
        "Shenzhen cap": (False, "city_too_recent"),
    }
    assert offers("?include_locked=true")["Jacket"] == (False, "tier_too_low")
    assert offers("?city=CD")["Chengdu tea"] == (False, "not_in_city")
    settled_in_city(owner, days=31)
    assert offers()["Shenzhen cap"] == (True, None)
    redeemed = client.post(
        "/api/v1/redemptions", json={"reward_id": str(mug.pk)}, headers=owner.headers
    )
    assert redeemed.status_code == 409 and redeemed.json["error"] == "insufficient_points"


def test_admins_list_the_whole_catalogue(client, admin):
    make_reward(title="Mug")
    make_reward(title="Retired", active=False)
    make_reward(title="Chengdu tea", city_codes=["CD"])
    owner = make_person("SZ")
    assert client.get("/api/v1/admin/rewards", headers=owner.headers).status_code == 403
    listed = client.get("/api/v1/admin/rewards?limit=2", headers=admin.headers).json
    following = client.get(
        f"/api/v1/admin/rewards?cursor={listed['next_cursor']}", headers=admin.headers
    ).json
    titles = [reward["title"] for reward in listed["items"] + following["items"]]
    assert titles == ["Chengdu tea", "Retired", "Mug"]
