"""Redemptions over HTTP: redeeming, fulfilling and cancelling, Idempotency-Key replays, who
may read one, and real concurrent redemptions of one reward and on one account."""

from __future__ import annotations

import itertools
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.idempotency import IdempotencyRecord
from loyalty import reconciliation
from loyalty.models import LedgerEntry, Redemption, Reward
from tests.loyalty.conftest import assert_invariants, earn, make_reward
from tests.support import make_person, post_as_a_client_would


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


def test_nobody_hands_their_own_redemption_over(client, admin):
    """The handover is when stock leaves the store: a witness other than the recipient."""
    leader = make_person("SZ", role="circle_leader")
    for staff in (leader, admin):
        earn(staff.id, 100)
        redeemed = client.post(
            "/api/v1/redemptions", headers=staff.headers, json={"reward_id": str(make_reward().pk)}
        )
        path = f"/api/v1/redemptions/{redeemed.json['id']}/fulfill"
        refused = client.post(path, headers=staff.headers)
        assert refused.status_code == 403 and refused.json["error"] == "own_redemption"
        assert Redemption.objects.get(pk=redeemed.json["id"]).status == "pending"
    handed = client.post(
        f"/api/v1/redemptions/{Redemption.objects.get(user_id=admin.user.pk).pk}/fulfill",
        headers=leader.headers,
    )
    assert handed.status_code == 200 and handed.json["status"] == "fulfilled"


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


def test_a_key_retried_after_its_record_expired_answers_the_redemption_it_made(client):
    """The record gone (as after its expiry), the key still names the redemption on its
    document (`client_key`): the retry answers that one, byte for byte as the first time,
    and redeems nothing more."""
    owner = make_person("SZ")
    earn(owner.id, 1000)
    reward = make_reward(cost=10, stock=5)
    headers = {**owner.headers, "Idempotency-Key": "redeem-late"}
    body = {"reward_id": str(reward.pk)}
    first = client.post("/api/v1/redemptions", headers=headers, json=body)
    assert first.status_code == 201, first.json
    assert IdempotencyRecord.objects(key="redeem-late").delete() == 1
    late = client.post("/api/v1/redemptions", headers=headers, json=body)
    assert late.status_code == 201 and "Idempotent-Replayed" not in late.headers
    assert late.get_data() == first.get_data()
    assert Redemption.objects.count() == 1 and Reward.objects.get(pk=reward.pk).stock == 4
    assert assert_invariants(owner.id) == 990


def test_a_redemption_key_sent_with_another_body_is_refused_even_an_invalid_one(client):
    # The view runs before the key is read (`idempotent(service=...)`): the replays and
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


@pytest.mark.alone
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


@pytest.mark.alone
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
        sent = itertools.count()
        mine: list[str] = []
        session = requests.Session()
        for _ in range(8):
            action = rng.choice(("earn", "redeem", "redeem", "cancel", "debit"))
            if action == "earn":
                points = rng.randint(1, 60)
                earn(owner.id, points)
                change(points)
            elif action == "redeem":
                answer = post_as_a_client_would(
                    session,
                    f"{live_server}/api/v1/redemptions",
                    f"redeem-{seed}-{next(sent)}",
                    owner.headers,
                    {"reward_id": str(reward.pk)},
                )
                assert answer.status_code in (201, 409), answer.text
                if answer.status_code == 201:
                    mine.append(answer.json()["id"])
                    change(-30)
                else:
                    assert answer.json()["error"] == "insufficient_points"
            elif action == "cancel" and mine:
                answer = post_as_a_client_would(
                    session,
                    f"{live_server}/api/v1/redemptions/{mine.pop()}/cancel",
                    f"cancel-{seed}-{next(sent)}",
                    owner.headers,
                )
                assert answer.status_code == 200, answer.text
                change(30)
            elif action == "debit":
                answer = post_as_a_client_would(
                    session,
                    f"{live_server}/api/v1/admin/points/adjustments",
                    f"debit-{seed}-{next(sent)}",
                    admin.headers,
                    {"user_id": owner.id, "amount": -7, "reason": "x"},
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
