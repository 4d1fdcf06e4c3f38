"""The events part of the HTTP contract (API.md), including bursts through a real server."""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlencode

import requests

from app.clock import utcnow
from app.db import transaction
from app.outbox import OutboxEvent
from events import registration, tickets
from events.models import Event, Registration
from loyalty.rules import award
from tests.conftest import mongo_commands
from tests.events.conftest import as_caller, deliver, many_owners
from tests.support import make_city, make_person

API = "/api/v1"


def event_body(**overrides):
    starts_at = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    return {
        "city_code": "SZ",
        "title": "Night drive",
        "venue": "Brand space",
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + timedelta(hours=3)).isoformat(),
        "registration_closes_at": (starts_at - timedelta(hours=2)).isoformat(),
        "capacity": 2,
        "points_reward": 120,
        **overrides,
    }


def register(client, event_id, person, **headers):
    return client.post(
        f"{API}/events/{event_id}/registrations", headers={**person.headers, **headers}
    )


def test_leader_runs_an_event_end_to_end(client, leader):
    created = client.post(f"{API}/events", headers=leader.headers, json=event_body())
    assert created.status_code == 201, created.json
    event = created.json
    assert event["status"] == "draft" and event["seats_left"] == 2
    # Stored in UTC, shown with Shenzhen's offset.
    assert event["starts_at"].endswith("+08:00") and event["timezone"] == "Asia/Shanghai"
    event_id = event["id"]
    published = client.post(f"{API}/events/{event_id}/publish", headers=leader.headers)
    assert published.status_code == 200 and published.json["status"] == "published"

    first, second, third = (make_person("SZ") for _ in range(3))
    assert register(client, event_id, first).json["status"] == "confirmed"
    assert register(client, event_id, second).status_code == 201
    waiting = register(client, event_id, third)
    assert waiting.status_code == 201
    assert waiting.json["status"] == "waitlisted" and waiting.json["waitlist_position"] == 1

    details = client.get(f"{API}/events/{event_id}", headers=third.headers).json
    assert (details["seats_left"], details["waitlist_count"]) == (0, 1)
    assert details["my_registration"]["status"] == "waitlisted"

    assert (
        client.delete(
            f"{API}/events/{event_id}/registrations/me", headers=second.headers
        ).status_code
        == 204
    )
    mine = client.get(f"{API}/me/registrations", headers=third.headers).json["items"]
    assert [(r["status"], r["event"]["id"]) for r in mine] == [("confirmed", event_id)]

    ticket = client.get(f"{API}/events/{event_id}/ticket", headers=first.headers).json["token"]
    # The event begins: check-in opens, and it can be completed afterwards.
    Event.objects(pk=event_id).update_one(set__starts_at=utcnow() - timedelta(minutes=1))
    checked = client.post(
        f"{API}/events/{event_id}/check-ins", headers=leader.headers, json={"token": ticket}
    )
    assert checked.status_code == 201 and checked.json["status"] == "attended"
    completed = client.post(f"{API}/events/{event_id}/complete", headers=leader.headers)
    assert completed.status_code == 200 and completed.json["status"] == "completed"
    listed = client.get(f"{API}/events/{event_id}/registrations", headers=leader.headers).json
    assert Counter(r["status"] for r in listed["items"]) == {
        "attended": 1,
        "no_show": 1,
        "cancelled": 1,
    }


def test_create_refusals(client, leader):
    other_city = make_person("CD", role="circle_leader")
    assert (
        client.post(f"{API}/events", headers=other_city.headers, json=event_body()).status_code
        == 403
    )
    owner = make_person("SZ")
    assert client.post(f"{API}/events", headers=owner.headers, json=event_body()).status_code == 403
    naive = client.post(
        f"{API}/events", headers=leader.headers, json=event_body(starts_at="2030-01-01T10:00:00")
    )
    assert naive.status_code == 422 and "starts_at" in naive.json["errors"]
    backwards = client.post(
        f"{API}/events", headers=leader.headers, json=event_body(ends_at=utcnow().isoformat())
    )
    assert backwards.status_code == 422 and backwards.json["error"] == "invalid_times"
    for bad_capacity in (0, 2.5, "3"):
        assert (
            client.post(
                f"{API}/events", headers=leader.headers, json=event_body(capacity=bad_capacity)
            ).status_code
            == 422
        )
    assert client.post(f"{API}/events", json=event_body()).status_code == 401


def test_drafts_and_other_cities_are_hidden(client, make_event):
    draft = make_event(publish=False)
    owner = make_person("SZ")
    assert client.get(f"{API}/events/{draft.pk}", headers=owner.headers).status_code == 404
    other_leader = make_person("CD", role="circle_leader")
    published = make_event()
    for method, path in (
        ("patch", ""),
        ("post", "/publish"),
        ("post", "/complete"),
        ("get", "/registrations"),
    ):
        response = getattr(client, method)(
            f"{API}/events/{published.pk}{path}", headers=other_leader.headers, json={"title": "x"}
        )
        assert response.status_code == 404, (method, path)
    assert client.get(f"{API}/events/not-an-id", headers=owner.headers).status_code == 404


def test_an_event_page_costs_the_same_commands_for_one_event_as_for_many(client, make_event):
    owner = make_person("SZ")
    waiting = many_owners(3)

    def page() -> tuple[list[int], Counter]:
        with mongo_commands() as sent:
            response = client.get(f"{API}/events", headers=owner.headers)
        assert response.status_code == 200
        return [event["waitlist_count"] for event in response.json["items"]], Counter(sent)

    first = make_event(capacity=1, starts_in=timedelta(days=1))
    for person in waiting[:2]:
        registration.register(as_caller(person), str(first.pk))
    counts, one_event = page()
    assert counts == [1]

    for days in (2, 3, 4):
        event = make_event(capacity=1, starts_in=timedelta(days=days))
        registration.register(as_caller(waiting[2]), str(event.pk))
    counts, four_events = page()
    assert counts == [1, 0, 0, 0]
    assert four_events == one_event


def test_list_published_soonest_first_with_filters(client, make_event):
    make_city("CD")
    later = make_event(starts_in=timedelta(days=5))
    sooner = make_event(starts_in=timedelta(days=1))
    make_event(publish=False)
    chengdu_leader = make_person("CD", role="circle_leader")
    chengdu = make_event(organizer=chengdu_leader, city_code="CD")
    owner = make_person("SZ")
    listed = client.get(f"{API}/events", headers=owner.headers).json
    assert [e["id"] for e in listed["items"]] == [str(sooner.pk), str(chengdu.pk), str(later.pk)]
    by_city = client.get(f"{API}/events?city=CD", headers=owner.headers).json
    assert [e["id"] for e in by_city["items"]] == [str(chengdu.pk)]
    until = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    window = client.get(f"{API}/events", headers=owner.headers, query_string={"to": until}).json
    assert [e["id"] for e in window["items"]] == [str(sooner.pk), str(chengdu.pk)]
    paged = client.get(f"{API}/events?limit=2", headers=owner.headers).json
    rest = client.get(
        f"{API}/events?limit=2&cursor={paged['next_cursor']}", headers=owner.headers
    ).json
    assert [e["id"] for e in paged["items"] + rest["items"]] == [e["id"] for e in listed["items"]]


def test_each_listed_event_carries_the_callers_registration(client, make_event):
    full, open_, left = (make_event(capacity=1, starts_in=timedelta(days=d)) for d in (1, 2, 3))
    owner, other = many_owners(2)
    for event in (full, open_, left):
        register(client, event.pk, other)
    for event in (full, left):
        register(client, event.pk, owner)
    client.delete(f"{API}/events/{left.pk}/registrations/me", headers=owner.headers)

    def mine(person) -> list[tuple[str | None, int | None]]:
        items = client.get(f"{API}/events", headers=person.headers).json["items"]
        return [
            (r["status"], r["waitlist_position"]) if (r := e["my_registration"]) else (None, None)
            for e in items
        ]

    assert mine(owner) == [("waitlisted", 1), (None, None), (None, None)]
    assert mine(other) == [("confirmed", None)] * 3


def test_leaders_list_their_cities_events_in_any_status(client, leader, make_event):
    make_city("CD")
    draft = make_event(publish=False, starts_in=timedelta(days=2))
    published = make_event(starts_in=timedelta(days=1))
    chengdu = make_event(organizer=make_person("CD", role="circle_leader"), city_code="CD")
    admin, owner = make_person("SZ", role="admin"), make_person("SZ")

    def managed(person, query: str = "") -> list[str]:
        response = client.get(f"{API}/events/managed{query}", headers=person.headers)
        assert response.status_code == 200, response.json
        return [event["id"] for event in response.json["items"]]

    assert managed(leader) == [str(published.pk), str(draft.pk)]
    assert managed(leader, "?status=draft") == [str(draft.pk)]
    assert managed(admin, "?city=CD") == [str(chengdu.pk)]
    assert len(managed(admin)) == 3
    for person, query in ((owner, ""), (leader, "?city=CD")):
        refused = client.get(f"{API}/events/managed{query}", headers=person.headers)
        assert refused.status_code == 403 and refused.json["error"] == "forbidden"


def test_patch_capacity_promotes_and_refuses_below_confirmed(client, leader, make_event):
    event = make_event(capacity=1)
    first, second = many_owners(2)
    for person in (first, second):
        register(client, event.pk, person)
    lowered = client.patch(
        f"{API}/events/{event.pk}", headers=leader.headers, json={"capacity": 1, "title": "Renamed"}
    )
    assert lowered.status_code == 200 and lowered.json["title"] == "Renamed"
    refused = client.patch(f"{API}/events/{event.pk}", headers=leader.headers, json={"capacity": 0})
    assert refused.status_code == 422  # below 1 is not a capacity at all
    raised = client.patch(f"{API}/events/{event.pk}", headers=leader.headers, json={"capacity": 2})
    assert raised.json["seats_left"] == 0 and raised.json["waitlist_count"] == 0
    assert Registration.objects.get(user_id=second.user.pk).status == "confirmed"
    below = client.patch(f"{API}/events/{event.pk}", headers=leader.headers, json={"capacity": 1})
    assert below.status_code == 409 and below.json["error"] == "capacity_below_confirmed"
    assert (
        client.patch(f"{API}/events/{event.pk}", headers=leader.headers, json={}).status_code == 422
    )


def test_registration_refusals_and_idempotency_key(client, make_event):
    event = make_event(capacity=5, verified_owners_only=True)
    owner = make_person("SZ")
    refused = register(client, event.pk, owner)
    assert refused.status_code == 403 and refused.json["error"] == "not_verified_owner"
    verified = make_person("SZ", verified_owner=True)
    first = register(client, event.pk, verified, **{"Idempotency-Key": "reg-1"})
    replay = register(client, event.pk, verified, **{"Idempotency-Key": "reg-1"})
    assert first.status_code == replay.status_code == 201
    assert replay.json == first.json and replay.headers["Idempotent-Replayed"] == "true"
    again = register(client, event.pk, verified)
    assert again.status_code == 409 and again.json["error"] == "already_registered"
    assert Event.objects.get(pk=event.pk).seats_left == 4
    closed = make_event(
        starts_in=timedelta(hours=1), registration_closes_at=utcnow() - timedelta(minutes=1)
    )
    late = register(client, closed.pk, verified)
    assert late.status_code == 409 and late.json["error"] == "registration_closed"


def test_cancel_registration_refusals(client, make_event):
    event = make_event()
    owner = make_person("SZ")
    assert (
        client.delete(
            f"{API}/events/{event.pk}/registrations/me", headers=owner.headers
        ).status_code
        == 404
    )
    register(client, event.pk, owner)
    Event.objects(pk=event.pk).update_one(set__starts_at=utcnow() - timedelta(minutes=1))
    started = client.delete(f"{API}/events/{event.pk}/registrations/me", headers=owner.headers)
    assert started.status_code == 409 and started.json["error"] == "cancellation_closed"


def test_two_hundred_concurrent_registrations_fill_capacity_exactly(live_server, make_event):
    event = make_event(capacity=50)
    people = many_owners(200)
    barrier = threading.Barrier(len(people))
    answers = []

    def attempt(person):
        with requests.Session() as session:
            barrier.wait(30)
            response = session.post(
                f"{live_server}{API}/events/{event.pk}/registrations",
                headers=person.headers,
                timeout=120,
            )
            answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=attempt, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert [status for status, _ in answers] == [201] * 200
    assert Counter(body["status"] for _, body in answers) == {"confirmed": 50, "waitlisted": 150}
    positions = sorted(
        body["waitlist_position"] for _, body in answers if body["status"] == "waitlisted"
    )
    assert positions == list(range(1, 151))
    stored = Counter(r.status for r in Registration.objects(event_id=event.pk))
    assert stored == {"confirmed": 50, "waitlisted": 150}
    assert Event.objects.get(pk=event.pk).seats_left == 0


def test_double_submit_by_one_owner_registers_once(live_server, make_event):
    event = make_event(capacity=5)
    owner = many_owners(1)[0]
    barrier = threading.Barrier(10)
    codes = []

    def attempt():
        barrier.wait(30)
        codes.append(
            requests.post(
                f"{live_server}{API}/events/{event.pk}/registrations",
                headers=owner.headers,
                timeout=60,
            ).status_code
        )

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert Counter(codes) == {201: 1, 409: 9}
    assert Event.objects.get(pk=event.pk).seats_left == 4


def test_check_in_replay_forgery_other_event_and_other_city(client, leader, make_event):
    event = make_event(starts_in=timedelta(hours=1))
    other_event = make_event()
    owner = make_person("SZ")
    register(client, event.pk, owner)
    register(client, other_event.pk, owner)
    token = client.get(f"{API}/events/{event.pk}/ticket", headers=owner.headers).json["token"]
    other_token = client.get(f"{API}/events/{other_event.pk}/ticket", headers=owner.headers).json[
        "token"
    ]
    check_ins = f"{API}/events/{event.pk}/check-ins"

    chengdu_leader = make_person("CD", role="circle_leader")
    foreign = client.post(check_ins, headers=chengdu_leader.headers, json={"token": token})
    assert foreign.status_code == 404
    assert client.post(check_ins, headers=owner.headers, json={"token": token}).status_code == 404
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), other_token, "garbage"):
        refused = client.post(check_ins, headers=leader.headers, json={"token": bad})
        assert refused.status_code == 422 and refused.json["error"] == "invalid_ticket"
    expired = tickets.ticket_token(event.pk, owner.id, utcnow() - timedelta(minutes=1))
    assert (
        client.post(check_ins, headers=leader.headers, json={"token": expired}).json["error"]
        == "invalid_ticket"
    )
    assert (
        client.post(
            check_ins, headers=leader.headers, json={"token": token, "user_id": owner.id}
        ).status_code
        == 422
    )

    first = client.post(check_ins, headers=leader.headers, json={"token": token})
    replay = client.post(check_ins, headers=leader.headers, json={"token": token})
    by_hand = client.post(check_ins, headers=leader.headers, json={"user_id": owner.id})
    assert first.status_code == 201 and first.json["status"] == "attended"
    assert replay.status_code == by_hand.status_code == 200
    assert replay.json == first.json
    assert OutboxEvent.objects(type="event.attended").count() == 1
    stranger = make_person("SZ")
    assert (
        client.post(check_ins, headers=leader.headers, json={"user_id": stranger.id}).status_code
        == 404
    )


def test_ticket_needs_a_confirmed_registration(client, make_event):
    event = make_event(capacity=1)
    first, second, stranger = (make_person("SZ") for _ in range(3))
    register(client, event.pk, first)
    register(client, event.pk, second)
    assert (
        client.get(f"{API}/events/{event.pk}/ticket", headers=second.headers).json["error"]
        == "not_confirmed"
    )
    assert (
        client.get(f"{API}/events/{event.pk}/ticket", headers=stranger.headers).status_code == 404
    )


def test_cancel_event_over_http(client, leader, make_event):
    event = make_event()
    owner = make_person("SZ")
    register(client, event.pk, owner)
    assert (
        client.post(f"{API}/events/{event.pk}/cancel", headers=leader.headers, json={}).status_code
        == 422
    )
    cancelled = client.post(
        f"{API}/events/{event.pk}/cancel", headers=leader.headers, json={"reason": "Typhoon"}
    )
    assert cancelled.status_code == 200
    assert (cancelled.json["status"], cancelled.json["cancel_reason"]) == ("cancelled", "Typhoon")
    assert Registration.objects.get(user_id=owner.user.pk).status == "cancelled"
    assert (
        client.post(f"{API}/events/{event.pk}/publish", headers=leader.headers).json["error"]
        == "not_draft"
    )


def test_city_stats(client, leader, make_event):
    make_person("SZ", verified_owner=True)
    event = make_event(capacity=3, starts_in=timedelta(hours=1))
    came, missed = make_person("SZ"), make_person("SZ")
    for person in (came, missed):
        register(client, event.pk, person)
    client.post(
        f"{API}/events/{event.pk}/check-ins", headers=leader.headers, json={"user_id": came.id}
    )
    Event.objects(pk=event.pk).update_one(set__starts_at=utcnow() - timedelta(minutes=1))
    client.post(f"{API}/events/{event.pk}/complete", headers=leader.headers)
    transaction(
        lambda session: award(
            session, came.id, "event.attended", key="stats-test", source={"type": "test"}, points=80
        )
    )

    stats = client.get(f"{API}/cities/SZ/stats", headers=leader.headers)
    assert stats.status_code == 200, stats.json
    figures = stats.json
    assert figures["members"] == 4  # the leader, the verified owner and the two attendees
    assert figures["verified_owners"] == 1
    assert (figures["events_held"], figures["registrations"]) == (1, 2)
    assert (figures["attended"], figures["no_show"], figures["attendance_rate"]) == (1, 1, 0.5)
    assert (figures["points_issued"], figures["points_redeemed"]) == (80, 0)

    earlier = (datetime.now(UTC) - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    empty = client.get(
        f"{API}/cities/SZ/stats",
        headers=leader.headers,
        query_string={"from": earlier, "to": before},
    ).json
    assert (empty["events_held"], empty["attendance_rate"]) == (0, None)
    backwards = client.get(
        f"{API}/cities/SZ/stats",
        headers=leader.headers,
        query_string={"from": before, "to": earlier},
    )
    assert backwards.status_code == 422

    chengdu_leader = make_person("CD", role="circle_leader")
    assert client.get(f"{API}/cities/SZ/stats", headers=chengdu_leader.headers).status_code == 404
    assert client.get(f"{API}/cities/SZ/stats", headers=came.headers).status_code == 404
    admin = make_person("CD", role="admin")
    assert client.get(f"{API}/cities/SZ/stats", headers=admin.headers).status_code == 200
    assert client.get(f"{API}/cities/ZZ/stats", headers=admin.headers).status_code == 404


def test_event_times_outside_a_sane_window_are_refused_and_leave_nothing(client, leader):
    created = event_body()
    event_id = client.post(f"{API}/events", headers=leader.headers, json=created).json["id"]
    starts = datetime.fromisoformat(created["starts_at"])
    refused_bodies = [
        # The end of the calendar: any conversion to UTC or to the city's zone overflows.
        event_body(starts_at="9999-12-31T10:00:00Z", ends_at="9999-12-31T12:00:00Z"),
        event_body(ends_at="9999-12-31T23:59:59-12:00"),
        event_body(starts_at="0001-01-01T00:00:00+14:00"),
        # Before 1901 zoneinfo answers with local mean time (+08:05:43): not RFC 3339.
        event_body(starts_at="1900-01-01T10:00:00+08:00", ends_at="1900-01-01T12:00:00+08:00"),
        # In the past, and far ahead.
        event_body(
            starts_at=(utcnow() - timedelta(hours=1)).isoformat(),
            ends_at=(utcnow() + timedelta(hours=1)).isoformat(),
            registration_closes_at=(utcnow() - timedelta(hours=2)).isoformat(),
        ),
        event_body(
            starts_at=(starts + timedelta(days=6 * 365)).isoformat(),
            ends_at=(starts + timedelta(days=6 * 365, hours=2)).isoformat(),
            registration_closes_at=(starts + timedelta(days=6 * 365)).isoformat(),
        ),
    ]
    before = Event.objects.count()
    for body in refused_bodies:
        refused = client.post(f"{API}/events", headers=leader.headers, json=body)
        assert refused.status_code == 422, (body, refused.json)
        assert set(refused.json["errors"]) <= {"starts_at", "ends_at", "registration_closes_at"}
    assert Event.objects.count() == before
    for changes in (
        {"ends_at": "9999-12-31T23:59:59-12:00"},
        {"starts_at": "0001-01-01T00:00:00+14:00"},
        {"starts_at": (utcnow() - timedelta(minutes=5)).isoformat()},
    ):
        patched = client.patch(f"{API}/events/{event_id}", headers=leader.headers, json=changes)
        assert patched.status_code == 422, (changes, patched.json)
    assert (
        client.get(f"{API}/events/{event_id}", headers=leader.headers).json["starts_at"]
        == starts.astimezone(timezone(timedelta(hours=8))).isoformat()
    )

    for bound in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"):
        for path in ("/events?city=SZ&", "/cities/SZ/stats?"):
            for name in ("from", "to"):
                answer = client.get(
                    f"{API}{path}{urlencode({name: bound})}", headers=leader.headers
                )
                assert answer.status_code == 422, (path, name, bound, answer.json)
    assert client.get(f"{API}/events?city=SZ", headers=leader.headers).status_code == 200


def test_event_fields_are_bounded_and_clean(client, leader):
    before = Event.objects.count()
    for overrides in (
        {"points_reward": 100_000},
        {"points_reward": 10**30},
        {"capacity": 10**30},
        {"title": "Night\x00drive"},
        {"title": "   "},
        {"venue": "Brand \u202espace"},
        {"description": "Bring\x07 a friend"},
        {"city_code": "SZ\n"},
        {"verified_owners_only": 0},
        {"verified_owners_only": "true"},
    ):
        refused = client.post(f"{API}/events", headers=leader.headers, json=event_body(**overrides))
        assert refused.status_code == 422, (overrides, refused.json)
        assert set(refused.json["errors"]) == set(overrides), refused.json
    assert Event.objects.count() == before
    created = client.post(
        f"{API}/events",
        headers=leader.headers,
        json=event_body(
            title="  Night drive ",
            description="Route:\n\t1. Coast road\r\n",
            points_reward=1000,
            verified_owners_only=True,
        ),
    )
    assert created.status_code == 201, created.json
    assert created.json["title"] == "Night drive"
    assert created.json["description"] == "Route:\n\t1. Coast road"
    event_path = f"{API}/events/{created.json['id']}"
    assert client.patch(event_path, headers=leader.headers).status_code == 422
    assert client.patch(event_path, headers=leader.headers, json={}).status_code == 422
    for bad in ({"title": "\u2066x\u2069"}, {"points_reward": 1001}, {"capacity": 10**30}):
        assert client.patch(event_path, headers=leader.headers, json=bad).status_code == 422
    cancelled = client.post(
        f"{event_path}/cancel", headers=leader.headers, json={"reason": "Typhoon\x1b[2J"}
    )
    assert cancelled.status_code == 422


def test_admins_set_the_most_points_an_event_may_award(client, leader):
    admin = make_person("SZ", role="admin")
    rule = f"{API}/admin/earning-rules/event.attended"
    lowered = client.put(rule, headers=admin.headers, json={"max_points": 500})
    assert lowered.status_code == 200 and lowered.json["max_points"] == 500, lowered.json
    for code, body in (
        ("post.published", {"max_points": 10}),
        ("event.attended", {"max_points": 10**6}),
    ):
        refused = client.put(f"{API}/admin/earning-rules/{code}", headers=admin.headers, json=body)
        assert refused.status_code == 422 and "max_points" in refused.json["errors"], refused.json
    assert client.put(rule, headers=leader.headers, json={"max_points": 5000}).status_code == 403

    too_high = client.post(
        f"{API}/events", headers=leader.headers, json=event_body(points_reward=501)
    )
    assert too_high.status_code == 422 and too_high.json["error"] == "points_reward_too_high"
    assert set(too_high.json["errors"]) == {"points_reward"}
    assert Event.objects.count() == 0
    created = client.post(
        f"{API}/events", headers=leader.headers, json=event_body(points_reward=500)
    )
    assert created.status_code == 201, created.json
    path = f"{API}/events/{created.json['id']}"
    raised = client.patch(path, headers=leader.headers, json={"points_reward": 501, "title": "New"})
    assert raised.status_code == 422 and raised.json["error"] == "points_reward_too_high"
    stored = Event.objects.get(pk=created.json["id"])
    assert (stored.points_reward, stored.title) == (500, "Night drive")


def test_staff_cannot_mint_points_by_checking_in(client, leader, make_event):
    event = make_event(points_reward=1000, capacity=10, starts_in=timedelta(hours=1))
    check_ins = f"{API}/events/{event.pk}/check-ins"
    second_leader = make_person("SZ", role="circle_leader")
    ambassador = make_person("SZ", role="ambassador")
    admin = make_person("GZ", role="admin")
    visiting_leader = make_person("CD", role="circle_leader")
    owner = make_person("SZ")
    for person in (leader, second_leader, ambassador, admin, visiting_leader):
        assert register(client, event.pk, person).status_code == 201
    register(client, event.pk, owner)

    ticket = client.get(f"{API}/events/{event.pk}/ticket", headers=leader.headers).json["token"]
    for body in ({"user_id": leader.id}, {"token": ticket}):
        own = client.post(check_ins, headers=leader.headers, json=body)
        assert own.status_code == 403 and own.json["error"] == "self_check_in"
    assert Registration.objects.get(user_id=leader.user.pk).status == "confirmed"

    # Staff of the city attend, and earn nothing for it: neither two leaders checking each
    # other in, nor an ambassador or an admin. A leader of another city is a guest here.
    for person in (leader, ambassador, admin, visiting_leader, owner):
        checked = client.post(check_ins, headers=second_leader.headers, json={"user_id": person.id})
        assert checked.status_code == 201 and checked.json["status"] == "attended"
    deliver("event.attended")
    balances = {
        person.id: client.get(f"{API}/me/points", headers=person.headers).json["balance"]
        for person in (leader, ambassador, admin, visiting_leader, owner)
    }
    assert balances == {
        leader.id: 0,
        ambassador.id: 0,
        admin.id: 0,
        visiting_leader.id: 1000,
        owner.id: 1000,
    }


def test_check_in_opens_two_hours_before_the_start_and_closes_after_the_grace(
    client, leader, make_event
):
    event = make_event(starts_in=timedelta(hours=3))
    owner = make_person("SZ")
    register(client, event.pk, owner)
    check_ins = f"{API}/events/{event.pk}/check-ins"
    early = client.post(check_ins, headers=leader.headers, json={"user_id": owner.id})
    assert early.status_code == 409 and early.json["error"] == "check_in_closed"
    assert Registration.objects.get(user_id=owner.user.pk).status == "confirmed"

    now = utcnow()
    Event.objects(pk=event.pk).update_one(
        set__starts_at=now - timedelta(hours=10), set__ends_at=now - timedelta(hours=6, minutes=1)
    )
    late = client.post(check_ins, headers=leader.headers, json={"user_id": owner.id})
    assert late.status_code == 409 and late.json["error"] == "check_in_closed"

    Event.objects(pk=event.pk).update_one(
        set__starts_at=now + timedelta(hours=1, minutes=55), set__ends_at=now + timedelta(hours=4)
    )
    opened = client.post(check_ins, headers=leader.headers, json={"user_id": owner.id})
    assert opened.status_code == 201 and opened.json["status"] == "attended"


def test_times_are_shown_in_rfc_3339_even_for_old_dates(client, leader, make_event):
    # Stored before times were bounded: Shanghai in 1900 was on local mean time, +08:05:43.
    old = make_event(publish=False, starts_in=datetime(1900, 1, 1, 2, tzinfo=UTC) - utcnow())
    shown = client.get(f"{API}/events/{old.pk}", headers=leader.headers).json
    rfc_3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
    for name in ("starts_at", "ends_at", "registration_closes_at", "created_at"):
        assert rfc_3339.fullmatch(shown[name]), (name, shown[name])
    assert shown["starts_at"] == "1900-01-01T02:00:00+00:00"
