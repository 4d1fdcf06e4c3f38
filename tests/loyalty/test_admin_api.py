"""Admins' loyalty endpoints over HTTP: adjustments and reversals, earning rules, reconciliation
runs, and the bounds on the numbers they send."""

from __future__ import annotations

from bson import ObjectId

from app.outbox import OutboxEvent
from loyalty.models import EarningRule, LedgerEntry, ReconciliationRun, Reward
from loyalty.rules import DEFAULT_RULES
from tests.loyalty.conftest import assert_invariants, earn
from tests.support import make_person


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


def test_nobody_adjusts_or_reverses_their_own_points(client, admin):
    credit = earn(admin.id, 300)
    adjusted = client.post(
        "/api/v1/admin/points/adjustments",
        headers=admin.headers,
        json={"user_id": admin.id.upper(), "amount": 1_000, "reason": "Bonus"},
    )
    assert adjusted.status_code == 403 and adjusted.json["error"] == "own_points"
    reversed_ = client.post(
        f"/api/v1/admin/points/entries/{credit['_id']}/reversal",
        headers=admin.headers,
        json={"reason": "Mine"},
    )
    assert reversed_.status_code == 403 and reversed_.json["error"] == "own_points"
    assert LedgerEntry.objects(account_id=admin.user.pk).count() == 1
    other_admin = make_person("CD", role="admin")
    corrected = client.post(
        "/api/v1/admin/points/adjustments",
        headers=other_admin.headers,
        json={"user_id": admin.id, "amount": 50, "reason": "Goodwill"},
    )
    assert corrected.status_code == 201
    assert assert_invariants(admin.id) == 350


def test_reading_the_earning_rules_stores_nothing(client, admin):
    listed = client.get("/api/v1/admin/earning-rules", headers=admin.headers).json
    # The list envelope every list has (it was a bare array): one page of a few rules.
    assert listed["next_cursor"] is None
    rules = listed["items"]
    assert [rule["code"] for rule in rules] == sorted(DEFAULT_RULES)
    assert {rule["code"]: rule["active"] for rule in rules} == dict.fromkeys(DEFAULT_RULES, True)
    assert EarningRule.objects.count() == 0
    client.put(
        "/api/v1/admin/earning-rules/comment.created", headers=admin.headers, json={"points": 2}
    )
    assert [rule.code for rule in EarningRule.objects] == ["comment.created"]
    listed = client.get("/api/v1/admin/earning-rules", headers=admin.headers).json["items"]
    assert {rule["code"]: rule["points"] for rule in listed}["comment.created"] == 2


def test_earning_rules_admin(client, admin):
    owner = make_person("SZ")
    assert client.get("/api/v1/admin/earning-rules", headers=owner.headers).status_code == 403
    rules = client.get("/api/v1/admin/earning-rules", headers=admin.headers).json["items"]
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
    rules = client.get("/api/v1/admin/earning-rules", headers=admin.headers).json["items"]
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
