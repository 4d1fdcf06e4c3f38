"""Drops over HTTP: who may create one and with what, entering and its refusals (each with
its slug), Idempotency-Key replays, polling an entry, a drop's figures, and the reward or
event claimed through the drop alone while it runs."""

from __future__ import annotations

from datetime import timedelta

from app.clock import utcnow
from drops.models import Drop, Entry
from loyalty.models import Reward
from tests.drops.conftest import API, close, drop_body, entrants, run_job
from tests.support import make_city, make_person


def test_admins_drop_rewards_and_leaders_their_citys_events(client, admin, leader, make_event):
    reward = Reward(title="Cap", cost=100, stock=5, fulfillment="shipping").save()
    event = make_event(capacity=10)
    other_leader = make_person("CD", role="circle_leader")
    owner = make_person("SZ")

    refused = client.post(
        f"{API}/admin/drops",
        json=drop_body("reward", reward.pk, quantity=3, mode="draw"),
        headers=leader.headers,
    )
    assert refused.status_code == 403
    hidden = client.post(
        f"{API}/admin/drops",
        json=drop_body("event", event.pk, quantity=3, mode="draw"),
        headers=other_leader.headers,
    )
    assert hidden.status_code == 404
    assert client.post(
        f"{API}/admin/drops",
        json=drop_body("event", event.pk, quantity=3, mode="draw"),
        headers=owner.headers,
    ).status_code in (403, 404)

    made = client.post(
        f"{API}/admin/drops",
        json=drop_body("reward", reward.pk, quantity=3, mode="draw"),
        headers=admin.headers,
    )
    assert made.status_code == 201, made.json
    assert len(made.json["seed_hash"]) == 64 and made.json["seed"] is None
    assert made.json["phase"] == "open" and made.json["title"] == "Cap"
    again = client.post(
        f"{API}/admin/drops",
        json=drop_body("reward", reward.pk, quantity=3, mode="draw"),
        headers=admin.headers,
    )
    assert again.status_code == 409 and again.json["error"] == "target_unavailable"

    seats = client.post(
        f"{API}/admin/drops",
        json=drop_body("event", event.pk, quantity=11),
        headers=leader.headers,
    )
    assert seats.status_code == 409 and seats.json["error"] == "not_enough_left"
    assert seats.json["left"] == 10
    seats = client.post(
        f"{API}/admin/drops",
        json=drop_body("event", event.pk, quantity=3),
        headers=leader.headers,
    )
    assert seats.status_code == 201 and seats.json["seed_hash"] is None

    # While the drops run, their reward and event are claimed through them alone.
    owner_points = client.post(
        f"{API}/redemptions", json={"reward_id": str(reward.pk)}, headers=owner.headers
    )
    assert owner_points.status_code == 409 and owner_points.json["error"] == "drop_only"
    assert owner_points.json["drop_id"] == made.json["id"]
    registered = client.post(f"{API}/events/{event.pk}/registrations", headers=owner.headers)
    assert registered.status_code == 409 and registered.json["error"] == "drop_only"


def test_creating_a_drop_again_with_its_key_answers_the_drop_made(client, admin):
    reward = Reward(title="Cap", cost=100, stock=5, fulfillment="shipping").save()
    body = drop_body("reward", reward.pk, quantity=3, mode="draw")
    headers = {**admin.headers, "Idempotency-Key": "launch-cap"}
    made = client.post(f"{API}/admin/drops", json=body, headers=headers)
    assert made.status_code == 201, made.json
    # A retry after a lost answer: the same drop (its seed hash too), not `target_unavailable`.
    again = client.post(f"{API}/admin/drops", json=body, headers=headers)
    assert again.status_code == 201 and again.get_data() == made.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Drop.objects(target_id=reward.pk).count() == 1
    other = client.post(f"{API}/admin/drops", json={**body, "quantity": 4}, headers=headers)
    assert other.status_code == 422 and other.json["error"] == "idempotency_key_reused"


def test_a_drop_that_does_not_fit_is_refused_with_the_fields_that_do_not(client, admin):
    reward = Reward(
        title="Cap",
        cost=100,
        stock=5,
        fulfillment="shipping",
        per_owner_limit=2,
        min_tier="silver",
        city_codes=["SZ"],
    ).save()
    make_city("CD")
    now = utcnow()
    bad = client.post(
        f"{API}/admin/drops",
        json=drop_body(
            "reward",
            reward.pk,
            opens_at=(now - timedelta(hours=2)).isoformat(),
            closes_at=(now - timedelta(hours=3)).isoformat(),
            per_owner_limit=3,
            min_tier="member",
            city_codes=["CD"],
        ),
        headers=admin.headers,
    )
    assert (bad.status_code, bad.json["error"]) == (422, "invalid_drop"), bad.json
    assert set(bad.json["errors"]) == {
        "opens_at",
        "closes_at",
        "per_owner_limit",
        "min_tier",
        "city_codes",
    }
    missing = client.post(
        f"{API}/admin/drops", json=drop_body("reward", "not-an-id"), headers=admin.headers
    )
    assert missing.status_code == 404


def test_entering_and_its_refusals(client, admin, reward_drop):
    drop = reward_drop(stock=5, cost=100, quantity=2, mode="draw", city_codes=["SZ"])
    rich, poor = entrants(2, points=300)[0], entrants(1, points=50)[0]
    unverified = make_person("SZ")
    path = f"{API}/drops/{drop.pk}/entries"

    assert client.get(f"{path}/me", headers=rich.headers).status_code == 404
    entered = client.post(path, headers={**rich.headers, "Idempotency-Key": "enter-1"})
    assert entered.status_code == 202, entered.json
    assert entered.json["status"] == "entered" and entered.json["quantity"] == 1
    replay = client.post(path, headers={**rich.headers, "Idempotency-Key": "enter-1"})
    assert replay.status_code == 202 and replay.get_data() == entered.get_data()
    assert replay.headers["Idempotent-Replayed"] == "true"
    reused = client.post(
        path, json={"quantity": 2}, headers={**rich.headers, "Idempotency-Key": "enter-1"}
    )
    assert reused.status_code == 422 and reused.json["error"] == "idempotency_key_reused"
    twice = client.post(path, headers=rich.headers)
    assert twice.status_code == 409 and twice.json["error"] == "already_entered"

    refusals = {
        "insufficient_points": client.post(path, headers=poor.headers),
        "not_in_city": client.post(path, headers=make_person("CD").headers),
        "staff_entry": client.post(path, headers=admin.headers),
        "over_owner_limit": client.post(path, json={"quantity": 3}, headers=unverified.headers),
    }
    for slug, answer in refusals.items():
        assert answer.json["error"] == slug, answer.json
        assert answer.status_code == (422 if slug == "over_owner_limit" else 403)
    assert refusals["insufficient_points"].json["points"] == 100
    assert Entry.objects(drop_id=drop.pk).count() == 1  # refusals leave nothing behind

    mine = client.get(f"{path}/me", headers=rich.headers)
    assert mine.status_code == 200 and mine.json["status"] == "entered"
    shown = client.get(f"{API}/drops/{drop.pk}", headers=poor.headers).json
    assert shown["seed"] is None and shown["phase"] == "open"

    close(drop)
    late = client.post(path, headers=poor.headers)
    assert late.status_code == 409 and late.json["error"] == "drop_closed"
    # A retry after the close, with the key it entered with, is answered as before.
    retry = client.post(path, headers={**rich.headers, "Idempotency-Key": "enter-1"})
    assert retry.status_code == 202 and retry.get_data() == entered.get_data()
    run_job(drop)
    mine = client.get(f"{path}/me", headers=rich.headers).json
    assert mine["status"] == "won" and mine["position"] == 1 and mine["made_id"]
    shown = client.get(f"{API}/drops/{drop.pk}", headers=poor.headers).json
    assert shown["phase"] == "decided" and len(shown["seed"]) == 64


def test_a_drop_not_open_yet_refuses_entries_and_a_banned_account_enters_none(client, reward_drop):
    opens_at = utcnow() + timedelta(minutes=10)
    drop = reward_drop(opens_at=opens_at, closes_at=opens_at + timedelta(hours=1))
    owner, banned = entrants(2, points=500)
    early = client.post(f"{API}/drops/{drop.pk}/entries", headers=owner.headers)
    assert early.status_code == 409 and early.json["error"] == "drop_not_open"
    assert early.json["opens_at"] == opens_at.isoformat()
    banned.user.update(set__banned_until=utcnow() + timedelta(days=1))
    refused = client.post(f"{API}/drops/{drop.pk}/entries", headers=banned.headers)
    assert refused.status_code == 403 and refused.json["error"] == "account_banned"
    assert Entry.objects(drop_id=drop.pk).count() == 0


def test_a_leader_enters_no_drop_of_their_own_event(client, leader, event_drop):
    drop = event_drop(capacity=10, quantity=3)
    refused = client.post(f"{API}/drops/{drop.pk}/entries", headers=leader.headers)
    assert refused.status_code == 403 and refused.json["error"] == "staff_entry"


def test_an_event_drop_seats_its_winners_and_then_reopens_registration(client, event_drop, leader):
    drop = event_drop(capacity=4, quantity=2, event={"verified_owners_only": True})
    people = entrants(3)
    for person in people:
        assert (
            client.post(f"{API}/drops/{drop.pk}/entries", headers=person.headers).status_code == 202
        )
    unverified = make_person("SZ")
    refused = client.post(f"{API}/drops/{drop.pk}/entries", headers=unverified.headers)
    assert refused.status_code == 403 and refused.json["error"] == "not_verified_owner"
    close(drop)
    run_job(drop)
    statuses = [
        client.get(f"{API}/drops/{drop.pk}/entries/me", headers=p.headers).json["status"]
        for p in people
    ]
    assert statuses == ["won", "won", "lost"]
    event = client.get(f"{API}/events/{drop.target_id}", headers=people[0].headers).json
    assert event["seats_left"] == 2 and event["my_registration"]["status"] == "confirmed"
    # Decided: the seats it left are registered for directly again.
    late = client.post(f"{API}/events/{drop.target_id}/registrations", headers=people[2].headers)
    assert late.status_code == 201 and late.json["status"] == "confirmed"

    figures = client.get(f"{API}/drops/{drop.pk}/figures", headers=leader.headers)
    assert figures.status_code == 200, figures.json
    assert {k: figures.json[k] for k in ("entries", "won", "lost", "refused", "waiting")} == {
        "entries": 3,
        "won": 2,
        "lost": 1,
        "refused": 0,
        "waiting": 0,
    }
    assert figures.json["seconds_from_close_to_last_told"] is not None
    assert figures.json["entries_per_second"]["peak"] >= 1
    other = make_person("CD", role="circle_leader")
    assert client.get(f"{API}/drops/{drop.pk}/figures", headers=other.headers).status_code == 404
    assert (
        client.get(f"{API}/drops/{drop.pk}/figures", headers=people[0].headers).status_code == 404
    )


def test_entering_needs_no_redis(client, servers, reward_drop):
    drop = reward_drop()
    owner = entrants(1, points=500)[0]
    with servers.redis_down():
        answer = client.post(f"{API}/drops/{drop.pk}/entries", headers=owner.headers)
    assert answer.status_code == 202, answer.json
    assert Entry.objects(drop_id=drop.pk, user_id=owner.user.pk).count() == 1
