"""An event's seats split into buckets: concurrent registrations land on different
documents, never more confirmed than the capacity and no bucket below zero, the waitlist
still 1, 2, 3... in order and promoted first come first served, and capacity changes keep
the seats taken."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from events import registration, services
from events.models import CONFIRMED, WAITLISTED, Event, EventSeats, Registration
from tests.events.conftest import API, as_caller, many_owners, register_all, statuses


def seats_in_buckets(event) -> list[int]:
    return [b.seats_left for b in EventSeats.objects(event_id=event.pk).order_by("bucket")]


def test_a_split_event_shows_its_free_seats_and_fills_its_waitlist_in_order(
    client, make_event, leader
):
    event = make_event(capacity=5, seat_buckets=4)
    assert seats_in_buckets(event) == [2, 1, 1, 1] and event.seats_left == 0
    people = many_owners(8)
    register_all(event, people)
    assert seats_in_buckets(event) == [0, 0, 0, 0]
    waiting = sorted(
        (position, user) for user, (status, position) in statuses(event).items() if position
    )
    assert [position for position, _ in waiting] == [1, 2, 3]
    shown = client.get(f"{API}/events/{event.pk}", headers=people[0].headers).json
    assert (shown["seats_left"], shown["waitlist_count"], shown["seat_buckets"]) == (0, 3, 4)

    # A seated owner leaves: the first in line takes the seat, nothing is freed.
    registration.cancel_registration(as_caller(people[0]), str(event.pk))
    first = Registration.objects.get(event_id=event.pk, user_id=people[5].user.pk)
    assert first.status == CONFIRMED and sum(seats_in_buckets(event)) == 0
    # A raise of the capacity seats the next two in line.
    caller = as_caller(leader)
    services.update_event(caller, str(event.pk), {"capacity": 7})
    assert Registration.objects(event_id=event.pk, status=WAITLISTED).count() == 0
    assert Event.objects.get(pk=event.pk).capacity == 7
    # A seated owner leaves with nobody waiting: the seat goes back to a bucket.
    registration.cancel_registration(as_caller(people[1]), str(event.pk))
    assert sum(seats_in_buckets(event)) == 1
    lowered = client.patch(f"{API}/events/{event.pk}", json={"capacity": 5}, headers=leader.headers)
    assert lowered.status_code == 409 and lowered.json["confirmed"] == 6
    gathered = client.patch(
        f"{API}/events/{event.pk}", json={"seat_buckets": 1}, headers=leader.headers
    )
    assert gathered.status_code == 200, gathered.json
    assert (gathered.json["seats_left"], gathered.json["seat_buckets"]) == (1, 1)
    assert seats_in_buckets(event) == []


def test_concurrent_registrations_on_a_split_event(live_server, make_event):
    event = make_event(capacity=20, seat_buckets=8)
    people = many_owners(60)

    def send(person) -> int:
        with requests.Session() as http:
            return http.post(
                f"{live_server}{API}/events/{event.pk}/registrations",
                headers=person.headers,
                timeout=60,
            ).status_code

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, people))
    assert set(answers) <= {201, 503}
    stored = list(Registration.objects(event_id=event.pk))
    confirmed = [r for r in stored if r.status == CONFIRMED]
    positions = sorted(r.waitlist_position for r in stored if r.status == WAITLISTED)
    assert len(confirmed) == 20 and seats_in_buckets(event) == [0] * 8
    assert positions == list(range(1, len(stored) - 20 + 1))
    assert Event.objects.get(pk=event.pk).waitlisted == len(positions)
