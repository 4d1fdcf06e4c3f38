"""A city's figures (`GET /cities/{code}/stats`) for its leaders and admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.clock import utcnow
from app.db import transaction
from events.models import Event
from loyalty.rules import award
from tests.events.conftest import API, register
from tests.support import make_person


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
