"""A drop from HTTP to a real worker and back: entries over HTTP, the job started by the
drop's domain event through the dispatcher and Redis, entries decided and owners told on a
real worker; and a worker that is down while owners enter loses nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.clock import utcnow
from drops.models import Drop
from loyalty.models import Redemption, Reward
from notifications.models import Notification
from tests.drops.conftest import API, drop_body, entrants
from tests.loyalty.conftest import assert_invariants
from tests.support import wait_until

# The worker's settle time is its request budget and a second: 2 s here.
WORKER = {"REQUEST_DB_BUDGET_MS": "1000"}


def closes_now(drop_id: str) -> datetime:
    """Close the drop once every owner entered, however long a loaded machine took them:
    a window timed in advance could close before the last entry."""
    closes_at = utcnow()
    Drop.objects(pk=drop_id).update_one(set__closes_at=closes_at)
    return closes_at


def test_a_first_come_drop_decided_and_told_by_a_real_worker(client, background, admin):
    background("worker", "dispatcher", **WORKER)
    people = entrants(5, points=100)
    reward = Reward(title="Launch cap", cost=100, stock=10, fulfillment="shipping").save()
    body = drop_body("reward", reward.pk, quantity=3)
    made = client.post(f"{API}/admin/drops", json=body, headers=admin.headers)
    assert made.status_code == 201, made.json
    for person in people:
        entered = client.post(f"{API}/drops/{made.json['id']}/entries", headers=person.headers)
        assert entered.status_code == 202, entered.json
    closes_now(made.json["id"])

    wait_until(
        lambda: Drop.objects.get(pk=made.json["id"]).status == "decided",
        timeout=60,
        message="the drop decided",
    )
    statuses = [
        client.get(f"{API}/drops/{made.json['id']}/entries/me", headers=p.headers).json["status"]
        for p in people
    ]
    assert statuses == ["won"] * 3 + ["lost"] * 2
    assert Redemption.objects(reward_id=reward.pk).count() == 3
    assert Reward.objects.get(pk=reward.pk).stock == 7
    assert [assert_invariants(p.id) for p in people] == [0, 0, 0, 100, 100]
    wait_until(
        lambda: Notification.objects(template__in=["drop_won", "drop_lost"]).count() == 5,
        timeout=30,
        message="every entrant told",
    )
    figures = client.get(f"{API}/drops/{made.json['id']}/figures", headers=admin.headers).json
    assert figures["told"] == 5 and figures["seconds_from_close_to_last_told"] is not None


def test_owners_enter_while_the_worker_is_down_and_lose_nothing(client, background, admin):
    processes = background("dispatcher", **WORKER)
    people = entrants(4, points=100)
    reward = Reward(title="Launch cap", cost=100, stock=10, fulfillment="shipping").save()
    body = drop_body("reward", reward.pk, quantity=2, mode="draw")
    drop = client.post(f"{API}/admin/drops", json=body, headers=admin.headers).json
    for person in people:
        assert (
            client.post(f"{API}/drops/{drop['id']}/entries", headers=person.headers).status_code
            == 202
        )
    closes_at = closes_now(drop["id"])
    wait_until(lambda: utcnow() > closes_at + timedelta(seconds=1), message="the drop closed")
    assert Drop.objects.get(pk=drop["id"]).status == "running"  # nobody to decide it yet

    processes.start("worker")
    wait_until(
        lambda: Drop.objects.get(pk=drop["id"]).status == "decided",
        timeout=60,
        message="the drop decided once the worker returned",
    )
    shown = [
        client.get(f"{API}/drops/{drop['id']}/entries/me", headers=p.headers).json["status"]
        for p in people
    ]
    assert sorted(shown) == ["lost", "lost", "won", "won"]
    assert Redemption.objects(reward_id=reward.pk).count() == 2
