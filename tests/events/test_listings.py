"""Events as the API lists and shows them: who sees which, in what order, with the
caller's registration and the city's time zone, at a fixed cost in commands."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

from app.clock import utcnow
from events import registration
from events.models import Event
from tests.events.conftest import API, as_caller, many_owners, register
from tests.support import count_commands, make_city, make_person


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
        with count_commands() as sent:
            response = client.get(f"{API}/events", headers=owner.headers)
        assert response.status_code == 200
        return [event["waitlist_count"] for event in response.json["items"]], Counter(sent.names)

    first = make_event(capacity=1, starts_in=timedelta(days=1))
    for person in waiting[:2]:
        registration.register(as_caller(person), str(first.pk))
    page()  # the process reads the cities' time zones once
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


def test_times_are_shown_in_rfc_3339_even_for_old_dates(client, leader, make_event):
    # Stored before times were bounded: Shanghai in 1900 was on local mean time, +08:05:43.
    # (Set afterwards: a time computed from two readings of the clock could be a ms off.)
    old = make_event(publish=False)
    starts_at = datetime(1900, 1, 1, 2, tzinfo=UTC)
    Event.objects(pk=old.pk).update_one(
        set__starts_at=starts_at,
        set__ends_at=starts_at + timedelta(hours=2),
        set__registration_closes_at=starts_at,
    )
    shown = client.get(f"{API}/events/{old.pk}", headers=leader.headers).json
    rfc_3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
    for name in ("starts_at", "ends_at", "registration_closes_at", "created_at"):
        assert rfc_3339.fullmatch(shown[name]), (name, shown[name])
    assert shown["starts_at"] == "1900-01-01T02:00:00+00:00"
