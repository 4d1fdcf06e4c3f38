"""A reward's stock split into buckets: concurrent redemptions land on different documents,
no bucket and no total goes below zero, out of stock only when every bucket is empty, and
the admin's stock and split changes keep the total."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from loyalty import rewards
from loyalty.models import Redemption, Reward, StockBucket
from tests.events.conftest import many_owners
from tests.loyalty.conftest import assert_invariants, earn
from tests.support import make_person

API = "/api/v1"


def buckets(reward_id) -> list[int]:
    return [b.stock for b in StockBucket.objects(reward_id=reward_id).order_by("bucket")]


def test_a_reward_created_with_buckets_shows_its_whole_stock(client, admin):
    made = client.post(
        f"{API}/rewards",
        json={
            "title": "Cap",
            "cost": 10,
            "stock": 10,
            "stock_buckets": 4,
            "fulfillment": "digital",
        },
        headers=admin.headers,
    )
    assert made.status_code == 201, made.json
    assert (made.json["stock"], made.json["stock_buckets"]) == (10, 4)
    assert buckets(made.json["id"]) == [3, 3, 2, 2]
    assert Reward.objects.get(pk=made.json["id"]).stock == 0
    owner = make_person("SZ")
    listed = client.get(f"{API}/rewards", headers=owner.headers).json["items"]
    assert [(item["stock"], item["redeemable"]) for item in listed] == [(10, True)]

    changed = client.patch(
        f"{API}/rewards/{made.json['id']}", json={"stock": 7}, headers=admin.headers
    )
    assert (changed.json["stock"], buckets(made.json["id"])) == (7, [2, 2, 2, 1])
    gathered = client.patch(
        f"{API}/rewards/{made.json['id']}", json={"stock_buckets": 1}, headers=admin.headers
    )
    assert (gathered.json["stock"], gathered.json["stock_buckets"]) == (7, 1)
    assert buckets(made.json["id"]) == [] and Reward.objects.get(pk=made.json["id"]).stock == 7


def test_a_redemption_takes_from_several_buckets_when_none_holds_enough(app, admin):
    reward = rewards.create_reward(
        admin.caller,
        {"title": "Cap", "cost": 1, "stock": 5, "stock_buckets": 4, "fulfillment": "digital"},
    )
    owner = make_person("SZ")
    earn(owner.id, 10)
    redemption = rewards.redeem(owner.user, str(reward.pk), 3)
    assert redemption.quantity == 3 and sum(buckets(reward.pk)) == 2
    assert min(buckets(reward.pk)) >= 0
    rewards.cancel_redemption(admin.caller, str(redemption.pk))
    assert sum(buckets(reward.pk)) == 5
    assert assert_invariants(owner.id) == 10


def test_concurrent_redemptions_of_a_bucketed_reward_take_exactly_its_stock(live_server, admin):
    reward = rewards.create_reward(
        admin.caller,
        {"title": "Cap", "cost": 1, "stock": 12, "stock_buckets": 4, "fulfillment": "digital"},
    )
    people = many_owners(40)
    for person in people:
        earn(person.id, 5)
    answers: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def redeem(person) -> None:
        with requests.Session() as http:
            answer = http.post(
                f"{live_server}{API}/redemptions",
                json={"reward_id": str(reward.pk)},
                headers=person.headers,
                timeout=60,
            )
        with lock:
            answers.append((answer.status_code, answer.json().get("error")))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(redeem, people))
    assert answers.count((201, None)) == 12
    assert set(answers) <= {(201, None), (409, "out_of_stock"), (503, "service_unavailable")}
    assert buckets(reward.pk) == [0, 0, 0, 0]
    assert Redemption.objects(reward_id=reward.pk).count() == 12
