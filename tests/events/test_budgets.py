"""Command budgets of the events hot paths (tests/support.py says how they count): an
owner's registration, the event list and an event's page, whatever the event holds."""

from __future__ import annotations

from datetime import timedelta

from events import registration, tickets
from tests.events.conftest import as_caller, many_owners
from tests.support import READ_BUDGET, WRITE_BUDGET, within_budget

API = "/api/v1"

# The caller, the event in the transaction's snapshot, one command with the key's record,
# the seat (or waitlist place), the registration and its domain event, the commit. The key
# is not read first (`idempotent(service=...)`): a replay runs the same
# reads, fails on the key's record, and reads the answer stored there.
REGISTRATION = WRITE_BUDGET - 1
REPLAY = REGISTRATION + 1
# An event this process registered someone for, with seats left, is not read: its terms come
# from the process's copy, which the seat's claim checks (events/registration.py,
# `_terms_seen`), and the transaction opens with its writes.
REGISTRATION_AGAIN = REGISTRATION - 1
# The caller, the page of events (seats and waitlist lengths are on them), the caller's
# registrations among them in one query.
EVENT_LIST = READ_BUDGET
# The caller, the event, the caller's registration.
EVENT_PAGE = READ_BUDGET


def test_registering_with_a_key_seated_or_waitlisted(client, make_event):
    event = make_event(capacity=1)
    first, second = many_owners(2)
    for owner, status in ((first, "confirmed"), (second, "waitlisted")):
        headers = {**owner.headers, "Idempotency-Key": "register-once"}
        with within_budget(REGISTRATION):
            answer = client.post(f"{API}/events/{event.pk}/registrations", headers=headers)
        assert (answer.status_code, answer.json["status"]) == (201, status)
        # A replay is answered from the key's record.
        with within_budget(REPLAY):
            replay = client.post(f"{API}/events/{event.pk}/registrations", headers=headers)
        assert replay.get_data() == answer.get_data()


def test_registering_for_an_event_registered_for_before(client, make_event):
    event = make_event(capacity=5)
    first, second = many_owners(2)
    registration.register(as_caller(first), str(event.pk))
    with within_budget(REGISTRATION_AGAIN):
        answer = client.post(
            f"{API}/events/{event.pk}/registrations",
            headers={**second.headers, "Idempotency-Key": "register-again"},
        )
    assert (answer.status_code, answer.json["status"]) == (201, "confirmed")


def test_the_event_list_costs_the_same_for_any_events(client, make_event):
    owner, *others = many_owners(4)
    events = [make_event(capacity=1, starts_in=timedelta(days=days)) for days in (1, 2, 3)]
    for event in events:
        for person in (owner, *others):
            registration.register(as_caller(person), str(event.pk))
    client.get(f"{API}/events", headers=owner.headers)  # the process reads the time zones
    with within_budget(EVENT_LIST):
        page = client.get(f"{API}/events", headers=owner.headers)
    assert [event["waitlist_count"] for event in page.json["items"]] == [3, 3, 3]


def test_an_event_page(client, make_event):
    owner, other = many_owners(2)
    event = make_event(capacity=1)
    for person in (other, owner):
        registration.register(as_caller(person), str(event.pk))
    client.get(f"{API}/events/{event.pk}", headers=owner.headers)
    with within_budget(EVENT_PAGE):
        page = client.get(f"{API}/events/{event.pk}", headers=owner.headers)
    assert page.json["my_registration"]["status"] == "waitlisted"
    assert (page.json["seats_left"], page.json["waitlist_count"]) == (0, 1)


# The caller, the event, the scan's nonce (taken before?), the registration, the owner
# (staff are checked in without points), then the transaction: the attendance, one command
# with the scan's record and the domain event, the commit. A ticket's key is kept per
# process. A nonce sent again: the caller, the event, the scan, the registration.
CHECK_IN = 8
CHECK_IN_AGAIN = 4


def test_a_door_scan_with_its_nonce_and_the_same_scan_again(client, leader, make_event):
    event = make_event(starts_in=timedelta(hours=1))
    owner, other = many_owners(2)
    for person in (owner, other):
        registration.register(as_caller(person), str(event.pk))
    path = f"{API}/events/{event.pk}/check-ins"
    warm = tickets.issue_ticket(as_caller(other), str(event.pk))["token"]
    client.post(path, headers=leader.headers, json={"token": warm, "nonce": "warm"})
    token = tickets.issue_ticket(as_caller(owner), str(event.pk))["token"]
    body = {"token": token, "nonce": "scan-1", "device_id": "door-1"}
    with within_budget(CHECK_IN):
        first = client.post(path, headers=leader.headers, json=body)
    assert first.status_code == 201
    with within_budget(CHECK_IN_AGAIN):
        again = client.post(path, headers=leader.headers, json=body)
    assert again.status_code == 201 and again.json == first.json


def test_a_split_event_costs_its_registration_nothing_more_and_its_page_one_read(
    client, make_event
):
    """The event and its seat buckets are one read (a `$lookup`) and the bucket's claim
    rides in the one command of writes; its page reads the buckets to add its free seats."""
    event = make_event(capacity=10, seat_buckets=16)
    first, owner = many_owners(2)
    client.post(f"{API}/events/{event.pk}/registrations", headers=first.headers)
    with within_budget(REGISTRATION):
        answer = client.post(
            f"{API}/events/{event.pk}/registrations",
            headers={**owner.headers, "Idempotency-Key": "split"},
        )
    assert answer.status_code == 201 and answer.json["status"] == "confirmed"
    client.get(f"{API}/events/{event.pk}", headers=owner.headers)  # the time zones, once
    with within_budget(EVENT_PAGE + 1):
        page = client.get(f"{API}/events/{event.pk}", headers=owner.headers)
    assert page.json["seats_left"] == 8
