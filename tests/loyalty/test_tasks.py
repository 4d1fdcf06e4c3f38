"""Domain event handlers (through the backbone's `run_handler`), the loyalty actors, and the
HTTP -> outbox -> dispatcher -> real worker -> MongoDB flows."""

from __future__ import annotations

import uuid

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from app import handlers as registry
from app.outbox import DomainEvent
from loyalty import tasks  # registers the loyalty handlers, as the worker does
from loyalty.models import LedgerEntry, ReconciliationRun
from tests.loyalty.conftest import assert_invariants, earn
from tests.support import add_vehicle, make_person, wait_until


def deliver(event_type: str, payload: dict, city_code: str = "SZ", **fields) -> DomainEvent:
    """Apply every registered handler of `event_type` to one event, as the worker would."""
    event = DomainEvent(
        **{
            "id": uuid.uuid4().hex,
            "type": event_type,
            "subject_type": "test",
            "subject_id": "s1",
            "occurred_at": "2026-03-01T00:00:00+00:00",
            "city_code": city_code,
            "payload": payload,
            **fields,  # any of the above, too
        }
    )
    redeliver(event)
    return event


def redeliver(event: DomainEvent) -> list[bool]:
    return [
        registry.run_handler(handler, event)
        for handler in registry.handlers_for(event.type)
        if handler.name.startswith("loyalty.")
    ]


def test_attendance_points_once_even_when_delivered_twice(app):
    owner = make_person("SZ")
    payload = {"user_id": owner.id, "event_id": "e1", "points_reward": 150}
    event = deliver("event.attended", payload)
    assert redeliver(event) == [False]
    # Another domain event for the same owner and event (a second check-in) earns nothing.
    deliver("event.attended", payload)
    entries = LedgerEntry.objects(account_id=owner.user.pk)
    assert [(entry.kind, entry.amount) for entry in entries] == [("earn", 150)]
    assert entries[0].source["event_id"] == event.id
    assert entries[0].city_code == "SZ"


def test_attendance_is_multiplied_by_the_tier(app):
    owner = make_person("SZ")
    earn(owner.id, 2_000)
    deliver("event.attended", {"user_id": owner.id, "event_id": "e2", "points_reward": 100})
    assert (
        LedgerEntry.objects(account_id=owner.user.pk, source__rule="event.attended").get().amount
        == 110
    )


def test_welcome_points_once_per_owner(app):
    owner = make_person("SZ")
    deliver(
        "vehicle.verified",
        {"owner_id": owner.id, "first_verified_vehicle": True, "vin": "V", "model": "smart #1"},
    )
    deliver(
        "vehicle.verified",
        {"owner_id": owner.id, "first_verified_vehicle": True, "vin": "W", "model": "smart #3"},
    )
    deliver(
        "vehicle.verified",
        {"owner_id": owner.id, "first_verified_vehicle": False, "vin": "X", "model": "smart #3"},
    )
    assert assert_invariants(owner.id) == 500


def test_referral_pays_both_sides_once(app):
    referrer, referee = make_person("SZ"), make_person("SZ")
    payload = {"referrer_id": referrer.id, "referee_id": referee.id}
    deliver("referral.completed", payload)
    deliver("referral.completed", payload)
    assert assert_invariants(referrer.id) == 1000
    assert assert_invariants(referee.id) == 300


@pytest.mark.parametrize(
    "event_type, points, cap", [("post.published", 5, 3), ("comment.created", 1, 10)]
)
def test_community_events_earn_within_daily_caps(app, event_type, points, cap):
    author = make_person("SZ")
    for _ in range(cap + 2):
        content = DomainEvent(
            id=uuid.uuid4().hex,
            type=event_type,
            subject_type=event_type.split(".")[0],
            subject_id=uuid.uuid4().hex,
            occurred_at="2026-03-01T00:00:00+00:00",
            city_code="SZ",
            payload={
                "author_id": author.id,
                "points": {"version": 1, "owes": [event_type], "status": "visible"},
            },
        )
        redeliver(content)
    assert assert_invariants(author.id) == points * cap


@pytest.fixture
def stub_broker():
    """The loyalty actors alone on a StubBroker, put back on the real broker afterwards."""
    actors = (tasks.expire_due, tasks.warn_expiring, tasks.reconcile)
    originals = [actor.broker for actor in actors]
    broker = StubBroker()
    broker.emit_after("process_boot")
    for actor in actors:
        actor.broker = broker
        broker.declare_actor(actor)
    worker = dramatiq.Worker(broker, worker_timeout=100)
    worker.start()
    yield broker
    worker.stop()
    for actor, original in zip(actors, originals, strict=True):
        actor.broker = original


def test_loyalty_actors_run_on_a_stub_broker(app, stub_broker):
    owner = make_person("SZ")
    earn(owner.id, 10)
    tasks.expire_due.send()
    tasks.warn_expiring.send()
    tasks.reconcile.send()
    stub_broker.join("loyalty")
    run = ReconciliationRun.objects.get()
    assert run.status == "done" and run.accounts_checked == 1 and run.drifts == []
    assert assert_invariants(owner.id) == 10


def test_vehicle_verified_earns_welcome_points_through_a_real_worker(client, background):
    owner = make_person("SZ")
    leader = make_person("SZ", role="circle_leader")
    vehicle = add_vehicle(client, owner.headers, "LSJA24U69MS099999")
    background("worker", "dispatcher")
    assert (
        client.post(f"/api/v1/vehicles/{vehicle['id']}/verify", headers=leader.headers).status_code
        == 200
    )
    wait_until(
        lambda: client.get("/api/v1/me/points", headers=owner.headers).json["balance"] == 500,
        message="welcome points",
    )
    assert assert_invariants(owner.id) == 500


def test_reconciliation_requested_over_http_runs_on_a_real_worker(client, background, admin):
    owner = make_person("SZ")
    earn(owner.id, 40)
    background("worker", "dispatcher")
    run_id = client.post("/api/v1/admin/reconciliation/runs", headers=admin.headers).json["id"]
    done = wait_until(
        lambda: (
            (
                body := client.get(
                    f"/api/v1/admin/reconciliation/runs/{run_id}", headers=admin.headers
                ).json
            )["status"]
            == "done"
            and body
        ),
        message="the reconciliation run",
    )
    assert done["accounts_checked"] == 1 and done["entries_checked"] == 1
    assert done["drifts"] == [] and done["repaired"] == 0
