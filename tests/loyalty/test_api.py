from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from bson import ObjectId

from accounts.models import User
from app.outbox import OutboxEvent
from loyalty import reconciliation
from loyalty.models import EarningRule, LedgerEntry, ReconciliationRun, Redemption, Reward
from loyalty.rules import DEFAULT_RULES
from tests.loyalty.conftest import assert_invariants, earn, make_reward
from tests.support import make_city, make_person, partner_signature, settled_in_city


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


def test_redeem_fulfil_and_cancel_over_http(client, admin):
    owner = make_person("SZ")
    earn(owner.id, 250)
    reward = make_reward(cost=100, stock=3)
    redeemed = client.post(
        "/api/v1/redemptions",
        headers=owner.headers,
        json={"reward_id": str(reward.pk), "quantity": 2},
    )
    assert redeemed.status_code == 201, redeemed.json
    assert redeemed.json["status"] == "pending" and redeemed.json["points"] == 200
    refused = client.post(
        "/api/v1/redemptions", headers=owner.headers, json={"reward_id": str(reward.pk)}
    )
    assert refused.status_code == 409 and refused.json["error"] == "insufficient_points"
    missing = client.post("/api/v1/redemptions", headers=owner.headers, json={"reward_id": "nope"})
    assert missing.status_code == 404
    mine = client.get("/api/v1/me/redemptions", headers=owner.headers).json["items"]
    assert [item["id"] for item in mine] == [redeemed.json["id"]]

    other = make_person("SZ")
    path = f"/api/v1/redemptions/{redeemed.json['id']}"
    assert client.post(f"{path}/cancel", headers=other.headers).status_code == 404
    cancelled = client.post(f"{path}/cancel", headers=owner.headers)
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    again = client.post(f"{path}/cancel", headers=admin.headers)
    assert again.status_code == 409 and again.json["error"] == "not_pending"
    assert Reward.objects.get(pk=reward.pk).stock == 3
    assert assert_invariants(owner.id) == 250

    second = client.post(
        "/api/v1/redemptions", headers=owner.headers, json={"reward_id": str(reward.pk)}
    ).json
    fulfilled = client.post(f"/api/v1/redemptions/{second['id']}/fulfill", headers=admin.headers)
    assert fulfilled.status_code == 200 and fulfilled.json["status"] == "fulfilled"


def test_same_idempotency_key_100_times_gives_one_entry_and_the_same_response(client):
    owner = make_person("SZ")
    earn(owner.id, 1000)
    reward = make_reward(cost=10, stock=500)
    headers = {**owner.headers, "Idempotency-Key": "redeem-once"}
    body = {"reward_id": str(reward.pk)}
    responses = [client.post("/api/v1/redemptions", headers=headers, json=body) for _ in range(100)]
    assert {response.status_code for response in responses} == {201}
    assert all(response.json == responses[0].json for response in responses)
    assert LedgerEntry.objects(account_id=owner.user.pk, kind="redeem").count() == 1
    assert Redemption.objects.count() == 1
    assert Reward.objects.get(pk=reward.pk).stock == 499
    assert assert_invariants(owner.id) == 990


def test_a_redemption_key_sent_with_another_body_is_refused_even_an_invalid_one(client):
    # The view runs before the key is read (`changes_in_transaction`): the replays and
    # the refusals of the key are those of any idempotent view all the same.
    owner = make_person("SZ")
    earn(owner.id, 1000)
    reward, other = make_reward(cost=10), make_reward(cost=10, stock=0)
    headers = {**owner.headers, "Idempotency-Key": "k"}
    first = client.post("/api/v1/redemptions", headers=headers, json={"reward_id": str(reward.pk)})
    assert first.status_code == 201
    for body in ({"reward_id": str(other.pk)}, {"reward_id": str(reward.pk), "quantity": 0}):
        refused = client.post("/api/v1/redemptions", headers=headers, json=body)
        assert (refused.status_code, refused.json["error"]) == (422, "idempotency_key_reused")
    out = client.post(
        "/api/v1/redemptions",
        headers={**headers, "Idempotency-Key": "out"},
        json={"reward_id": str(other.pk)},
    )
    assert (out.status_code, out.json["error"]) == (409, "out_of_stock")
    restocked = Reward.objects(pk=other.pk).update_one(set__stock=5)
    assert restocked
    replay = client.post(
        "/api/v1/redemptions",
        headers={**headers, "Idempotency-Key": "out"},
        json={"reward_id": str(other.pk)},
    )
    assert replay.status_code == 409 and replay.headers["Idempotent-Replayed"] == "true"
    assert Redemption.objects.count() == 1 and assert_invariants(owner.id) == 990


def test_admin_adjustments_are_idempotent_and_audited(client, admin):
    owner = make_person("SZ")
    headers = {**admin.headers, "Idempotency-Key": "adj-1"}
    body = {"user_id": owner.id, "amount": 75, "reason": "Apology for a late delivery"}
    first = client.post("/api/v1/admin/points/adjustments", headers=headers, json=body)
    assert first.status_code == 201, first.json
    assert first.json["actor_id"] == admin.id and first.json["kind"] == "adjust"
    replay = client.post("/api/v1/admin/points/adjustments", headers=headers, json=body)
    assert replay.json == first.json
    assert LedgerEntry.objects(account_id=owner.user.pk).count() == 1
    assert first.json["id"] == str(LedgerEntry.objects.get(account_id=owner.user.pk).pk)
    overdraw = client.post(
        "/api/v1/admin/points/adjustments", headers=admin.headers, json={**body, "amount": -100}
    )
    assert overdraw.status_code == 409 and overdraw.json["error"] == "insufficient_points"
    by_owner = client.post("/api/v1/admin/points/adjustments", headers=owner.headers, json=body)
    assert by_owner.status_code == 403


def test_no_adjustment_for_an_erased_account(client, admin):
    owner = make_person("SZ")
    assert client.delete("/api/v1/me", headers=owner.headers).status_code == 204
    body = {"user_id": owner.id, "amount": 75, "reason": "Goodwill"}
    response = client.post("/api/v1/admin/points/adjustments", headers=admin.headers, json=body)
    assert response.status_code == 404
    assert response.json["error"] == "not_found"
    assert LedgerEntry.objects.count() == 0


def test_admin_reversal_over_http_is_idempotent_and_admin_only(client, admin):
    owner = make_person("SZ")
    mistake = earn(owner.id, 300)
    earn(owner.id, 50)
    path = f"/api/v1/admin/points/entries/{mistake['_id']}/reversal"
    headers = {**admin.headers, "Idempotency-Key": "rev-1"}
    body = {"reason": "Credited to the wrong owner"}
    assert client.post(path, headers=owner.headers, json=body).status_code == 403
    first = client.post(path, headers=headers, json=body)
    assert first.status_code == 201, first.json
    assert (first.json["kind"], first.json["amount"], first.json["balance_after"]) == (
        "reverse",
        -300,
        50,
    )
    assert first.json["actor_id"] == admin.id and first.json["account_id"] == owner.id
    assert first.json["source"]["id"] == str(mistake["_id"])
    replay = client.post(path, headers=headers, json=body)
    assert replay.status_code == 201 and replay.json == first.json
    assert first.json["id"] == str(LedgerEntry.objects.get(kind="reverse").pk)
    again = client.post(path, headers=admin.headers, json=body)
    assert again.status_code == 409 and again.json["error"] == "already_reversed"
    for unknown in (ObjectId(), "nope"):
        missing = client.post(
            f"/api/v1/admin/points/entries/{unknown}/reversal", headers=admin.headers, json=body
        )
        assert missing.status_code == 404
    assert client.post(path, headers=admin.headers, json={"reason": ""}).status_code == 422
    assert assert_invariants(owner.id) == 50


def test_reading_the_earning_rules_stores_nothing(client, admin):
    rules = client.get("/api/v1/admin/earning-rules", headers=admin.headers).json
    assert [rule["code"] for rule in rules] == sorted(DEFAULT_RULES)
    assert {rule["code"]: rule["active"] for rule in rules} == dict.fromkeys(DEFAULT_RULES, True)
    assert EarningRule.objects.count() == 0
    client.put(
        "/api/v1/admin/earning-rules/comment.created", headers=admin.headers, json={"points": 2}
    )
    assert [rule.code for rule in EarningRule.objects] == ["comment.created"]
    listed = client.get("/api/v1/admin/earning-rules", headers=admin.headers).json
    assert {rule["code"]: rule["points"] for rule in listed}["comment.created"] == 2


def test_earning_rules_admin(client, admin):
    owner = make_person("SZ")
    assert client.get("/api/v1/admin/earning-rules", headers=owner.headers).status_code == 403
    rules = client.get("/api/v1/admin/earning-rules", headers=admin.headers).json
    assert {rule["code"]: rule["points"] for rule in rules}["event.attended"] == 100
    changed = client.put(
        "/api/v1/admin/earning-rules/post.published",
        headers=admin.headers,
        json={"points": 8, "caps": {"day": 5, "week": 20}},
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["caps"] == {"day": 5, "week": 20} and changed.json["points"] == 8
    assert (
        client.put(
            "/api/v1/admin/earning-rules/nope", headers=admin.headers, json={"points": 1}
        ).status_code
        == 404
    )
    assert (
        client.put(
            "/api/v1/admin/earning-rules/post.published",
            headers=admin.headers,
            json={"caps": {"year": 1}},
        ).status_code
        == 422
    )


def test_reconciliation_run_request_is_an_outbox_event(client, admin):
    started = client.post("/api/v1/admin/reconciliation/runs", headers=admin.headers)
    assert started.status_code == 202
    run = ReconciliationRun.objects.get(pk=started.json["id"])
    assert run.status == "queued"
    assert OutboxEvent.objects.get(type="reconciliation.requested").subject_id == str(run.pk)
    shown = client.get(f"/api/v1/admin/reconciliation/runs/{run.pk}", headers=admin.headers)
    assert shown.status_code == 200 and shown.json["status"] == "queued"
    owner = make_person("SZ")
    assert (
        client.post("/api/v1/admin/reconciliation/runs", headers=owner.headers).status_code == 403
    )


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
    assert len({json.dumps(answer.json, sort_keys=True) for answer in answers}) == 1
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


def test_fifty_concurrent_redemptions_of_stock_ten(live_server):
    reward = make_reward(cost=10, stock=10)
    owners = [make_person("SZ") for _ in range(50)]
    for owner in owners:
        earn(owner.id, 10)

    def redeem(owner):
        return requests.post(
            f"{live_server}/api/v1/redemptions",
            headers=owner.headers,
            json={"reward_id": str(reward.pk)},
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(redeem, owners))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] * 10 + [409] * 40
    assert {answer.json()["error"] for answer in answers if answer.status_code == 409} == {
        "out_of_stock"
    }
    assert Reward.objects.get(pk=reward.pk).stock == 0
    assert Redemption.objects.count() == 10
    assert sum(assert_invariants(owner.id) for owner in owners) == 40 * 10


def test_twenty_threads_earning_and_redeeming_on_one_account(live_server, admin):
    owner = make_person("SZ")
    reward = make_reward(cost=30, stock=10_000)
    earn(owner.id, 100)
    expected = {"balance": 100}
    lock = threading.Lock()

    def change(delta: int) -> None:
        with lock:
            expected["balance"] += delta

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        mine: list[str] = []
        session = requests.Session()
        for _ in range(8):
            action = rng.choice(("earn", "redeem", "redeem", "cancel", "debit"))
            if action == "earn":
                points = rng.randint(1, 60)
                earn(owner.id, points)
                change(points)
            elif action == "redeem":
                answer = session.post(
                    f"{live_server}/api/v1/redemptions",
                    headers=owner.headers,
                    json={"reward_id": str(reward.pk)},
                    timeout=120,
                )
                assert answer.status_code in (201, 409), answer.text
                if answer.status_code == 201:
                    mine.append(answer.json()["id"])
                    change(-30)
                else:
                    assert answer.json()["error"] == "insufficient_points"
            elif action == "cancel" and mine:
                answer = session.post(
                    f"{live_server}/api/v1/redemptions/{mine.pop()}/cancel",
                    headers=owner.headers,
                    timeout=120,
                )
                assert answer.status_code == 200, answer.text
                change(30)
            elif action == "debit":
                answer = session.post(
                    f"{live_server}/api/v1/admin/points/adjustments",
                    headers=admin.headers,
                    timeout=120,
                    json={"user_id": owner.id, "amount": -7, "reason": "x"},
                )
                assert answer.status_code in (201, 409), answer.text
                if answer.status_code == 201:
                    change(-7)

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(worker, range(20)))

    assert assert_invariants(owner.id) == expected["balance"]
    balances = [entry.balance_after for entry in LedgerEntry.objects(account_id=owner.user.pk)]
    assert min(balances) >= 0
    run = reconciliation.run_reconciliation()
    assert run.drifts == [] and run.entries_checked == len(balances)


def test_personal_data_export_includes_points(client):
    owner = make_person("SZ")
    other = make_person("SZ")
    earn(owner.id, 40)
    earn(other.id, 7)
    export = client.get("/api/v1/me/export", headers=owner.headers).json
    assert export["points"]["summary"]["balance"] == 40
    assert [entry["amount"] for entry in export["points"]["ledger"]] == [40]
    assert export["points"]["redemptions"] == []


def test_admin_numbers_are_bounded_and_booleans_strict(client, admin):
    rule = "/api/v1/admin/earning-rules/post.published"
    for body in (
        {"caps": {"day": 10**30}},
        {"caps": {"week": 10_001}},
        {"points": 10**30},
        {"active": 0},
        {"multipliable": "true"},
        {"description": "Posts\x00"},
        {},
    ):
        refused = client.put(rule, headers=admin.headers, json=body)
        assert refused.status_code == 422, (body, refused.json)
    assert client.put(rule, headers=admin.headers).status_code == 422
    rules = client.get("/api/v1/admin/earning-rules", headers=admin.headers).json
    assert {rule["code"]: rule["caps"] for rule in rules}["post.published"] == {"day": 3}

    body = {"title": "Cap", "cost": 100, "stock": 5, "fulfillment": "pickup"}
    for overrides in (
        {"per_owner_limit": 10**30},
        {"cost": 10**30},
        {"stock": 10**30},
        {"active": 1},
        {"title": " \u202eCap"},
        {"description": "Nice\x07"},
        {"city_codes": ["SZ\n"]},
    ):
        refused = client.post("/api/v1/rewards", headers=admin.headers, json={**body, **overrides})
        assert refused.status_code == 422, (overrides, refused.json)
        assert set(refused.json["errors"]) == set(overrides)
    unknown = client.post(
        "/api/v1/rewards", headers=admin.headers, json={**body, "city_codes": ["SZ", "QQ"]}
    )
    assert unknown.status_code == 422 and unknown.json["error"] == "unknown_city"
    assert Reward.objects.count() == 0

    reward = client.post(
        "/api/v1/rewards",
        headers=admin.headers,
        json={**body, "title": " Cap ", "description": "Black,\none size"},
    ).json
    assert (reward["title"], reward["description"]) == ("Cap", "Black,\none size")
    path = f"/api/v1/rewards/{reward['id']}"
    for changes in ({}, {"per_owner_limit": 10**30}, {"city_codes": ["QQ"]}):
        assert client.patch(path, headers=admin.headers, json=changes).status_code == 422, changes
    assert client.patch(path, headers=admin.headers).status_code == 422
    assert Reward.objects.get(pk=reward["id"]).city_codes == []

    for adjustment in ({"amount": 10**30}, {"amount": 5, "reason": "\u2066gift\u2069"}):
        refused = client.post(
            "/api/v1/admin/points/adjustments",
            headers=admin.headers,
            json={"user_id": admin.id, "reason": "gift", **adjustment},
        )
        assert refused.status_code == 422, refused.json
    assert LedgerEntry.objects.count() == 0


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


def test_a_redemption_is_read_by_its_owner_or_an_admin(client, admin):
    owner, other = make_person("SZ"), make_person("SZ")
    earn(owner.id, 500)
    mug = make_reward(title="Mug")
    redeemed = client.post(
        "/api/v1/redemptions", json={"reward_id": str(mug.pk)}, headers=owner.headers
    ).json
    path = f"/api/v1/redemptions/{redeemed['id']}"
    assert client.get(path, headers=owner.headers).json == redeemed
    assert client.get(path, headers=admin.headers).json["id"] == redeemed["id"]
    hidden = client.get(path, headers=other.headers)
    assert hidden.status_code == 404 and hidden.json["error"] == "not_found"
    assert client.get("/api/v1/redemptions/nope", headers=owner.headers).status_code == 404
