"""The events part of the HTTP contract (API.md): an event's lifecycle and its refusals. How
events are listed, registered for, checked in and counted over HTTP: test_listings.py,
test_registration.py, test_tickets.py, test_city_stats.py."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from app.clock import utcnow
from events.models import Event, Registration
from tests.events.conftest import API, event_body, many_owners, register
from tests.support import make_person


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
