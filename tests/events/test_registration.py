"""Registration and the waitlist: through the services, and over HTTP for the refusals, the
Idempotency-Key and concurrent bursts."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
import requests
from bson import ObjectId

from app.clock import utcnow
from app.errors import Conflict, Forbidden, NotFound
from app.outbox import OutboxEvent
from events import listings, registration
from events.models import CANCELLED, CONFIRMED, WAITLISTED, Event, Registration
from tests.events.conftest import API, as_caller, many_owners, register, register_all, statuses
from tests.support import make_person, post_as_a_client_would


def test_seats_then_waitlist_positions_in_order(make_event):
    event = make_event(capacity=2)
    people = many_owners(5)
    results = register_all(event, people)
    assert [r.status for r in results] == [CONFIRMED] * 2 + [WAITLISTED] * 3
    assert [r.waitlist_position for r in results[2:]] == [1, 2, 3]
    event.reload()
    assert event.seats_left == 0 and event.waitlisted == 3
    assert listings.waitlist_counts([event.pk]) == {event.pk: 3}


def test_a_drop_s_job_run_again_answers_the_place_it_made(make_event):
    """A winner's registration made through the drop (`ThroughDrop`) and asked for again, as
    when the drop's job runs again: the same place, read back, and no second seat."""
    event = make_event(capacity=3)
    through = registration.ThroughDrop(drop_id=ObjectId(), entry_id=ObjectId())
    Event.objects(pk=event.pk).update_one(set__drop_id=through.drop_id)
    winner = as_caller(many_owners(1)[0])
    made = registration.register(winner, str(event.pk), drop=through)
    assert registration.register(winner, str(event.pk), drop=through) == made
    assert made.status == CONFIRMED
    assert Registration.objects(event_id=event.pk).count() == 1
    assert Event.objects.get(pk=event.pk).seats_left == 2


def test_second_registration_is_refused(make_event):
    event = make_event()
    owner = many_owners(1)[0]
    register_all(event, [owner])
    with pytest.raises(Conflict) as refused:
        register_all(event, [owner])
    assert refused.value.error == "already_registered"
    event.reload()
    assert event.seats_left == event.capacity - 1


def test_registration_refusals(make_event):
    owner = many_owners(1)[0]
    with pytest.raises(NotFound):  # drafts are invisible to owners
        register_all(make_event(publish=False), [owner])
    closed = make_event(
        registration_closes_at=utcnow() + timedelta(seconds=-1), starts_in=timedelta(hours=1)
    )
    with pytest.raises(Conflict) as late:
        register_all(closed, [owner])
    assert late.value.error == "registration_closed"
    verified_only = make_event(verified_owners_only=True)
    with pytest.raises(Forbidden) as unverified:
        register_all(verified_only, [owner])
    assert unverified.value.error == "not_verified_owner"
    assert register_all(verified_only, many_owners(1, verified_owner=True))[0].status == CONFIRMED


def test_cancelling_a_seat_promotes_the_first_waitlisted(make_event):
    event = make_event(capacity=1)
    first, second, third = many_owners(3)
    register_all(event, [first, second, third])
    registration.cancel_registration(as_caller(first), str(event.pk))
    after = statuses(event)
    assert after[first.id][0] == CANCELLED
    assert after[second.id][0] == CONFIRMED
    assert after[third.id] == (WAITLISTED, 2)
    promoted = OutboxEvent.objects.get(type="registration.promoted")
    assert promoted.payload["user_id"] == second.id
    event.reload()
    assert event.seats_left == 0


def test_cancelling_a_waitlisted_place_promotes_nobody(make_event):
    event = make_event(capacity=1)
    first, second = many_owners(2)
    register_all(event, [first, second])
    registration.cancel_registration(as_caller(second), str(event.pk))
    assert statuses(event)[first.id][0] == CONFIRMED
    assert OutboxEvent.objects(type="registration.promoted").count() == 0
    with pytest.raises(NotFound):
        registration.cancel_registration(as_caller(second), str(event.pk))


def test_re_registering_after_cancelling_queues_again(make_event):
    event = make_event(capacity=1)
    first, second = many_owners(2)
    register_all(event, [first, second])
    registration.cancel_registration(as_caller(first), str(event.pk))
    again = register_all(event, [first])[0]
    assert (again.status, again.waitlist_position) == (WAITLISTED, 2)
    assert Registration.objects(event_id=event.pk, user_id=first.user.pk).count() == 1


def test_concurrent_cancellations_never_leave_a_seat_free_while_someone_waits(make_event):
    event = make_event(capacity=10)
    people = many_owners(30)
    register_all(event, people)
    leaving = people[:10]
    threads = [
        threading.Thread(
            target=registration.cancel_registration, args=(as_caller(person), str(event.pk))
        )
        for person in leaving
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    after = statuses(event)
    confirmed = [p for p in people if after[p.id][0] == CONFIRMED]
    # The ten who waited longest, positions 1..10, got the seats.
    assert confirmed == people[10:20]
    event.reload()
    assert event.seats_left == 0


def test_registrations_are_part_of_the_personal_data_export(make_event):
    from app.privacy import export_personal_data

    event = make_event()
    owner = make_person("SZ")
    register_all(event, [owner])
    exported = export_personal_data(owner.id)["event_registrations"]
    assert exported == [{**exported[0], "event_id": str(event.pk), "status": CONFIRMED}]


def test_the_migration_counts_the_waitlists_of_existing_events(make_event):
    import importlib

    migration = importlib.import_module("migrations.2026_12_02_event_waitlist_counts")
    event, quiet = make_event(capacity=1), make_event()
    register_all(event, many_owners(3))
    Event._get_collection().update_many({}, {"$unset": {"waitlisted": ""}})
    assert migration.migrate() == {"events_counted": 2}
    assert [Event.objects.get(pk=e.pk).waitlisted for e in (event, quiet)] == [2, 0]


def test_a_crash_between_claim_and_registration_leaks_no_seat(make_event, monkeypatch):
    # The claim and the registration are one transaction: a failure after the claim was
    # queued (here, writing the domain event) leaves the seat free.
    event = make_event(capacity=1)
    owner = many_owners(1)[0]

    def crash(*args, **kwargs):
        raise RuntimeError("the process dies")

    monkeypatch.setattr(registration, "record_event", crash)
    with pytest.raises(RuntimeError):
        register_all(event, [owner])
    event.reload()
    assert event.seats_left == 1
    assert Registration.objects(event_id=event.pk).count() == 0


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


def test_a_keyed_registration_replays_its_answer_after_the_event_changed(client, make_event):
    """The key is not read before the view runs: a replay reads the event again, and whatever
    the event has become (full, closed, cancelled), it gets the first answer."""
    event = make_event(capacity=1)
    owner, latecomer = many_owners(2)
    first = register(client, event.pk, owner, **{"Idempotency-Key": "tap"})
    assert register(client, event.pk, latecomer).json["status"] == "waitlisted"
    for change in (
        {"set__registration_closes_at": utcnow() - timedelta(minutes=1)},
        {"set__status": CANCELLED},
    ):
        Event.objects(pk=event.pk).update_one(**change)
        replay = register(client, event.pk, owner, **{"Idempotency-Key": "tap"})
        assert (replay.status_code, replay.get_data()) == (201, first.get_data())
        assert replay.headers["Idempotent-Replayed"] == "true"
    assert Registration.objects(event_id=event.pk, user_id=owner.user.pk).count() == 1
    assert OutboxEvent.objects(type="registration.created").count() == 2


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


@pytest.mark.alone
def test_two_hundred_concurrent_registrations_fill_capacity_exactly(live_server, make_event):
    event = make_event(capacity=50)
    people = many_owners(200)
    barrier = threading.Barrier(len(people))
    answers = []

    def attempt(person):
        with requests.Session() as session:
            barrier.wait(30)
            response = post_as_a_client_would(
                session,
                f"{live_server}{API}/events/{event.pk}/registrations",
                f"register-{person.user.pk}",
                person.headers,
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


@pytest.mark.parametrize("key", [None, "double-tap"])
def test_double_submit_by_one_owner_registers_once(live_server, make_event, key):
    """Without a key the other nine are refused; with one they all get the first answer."""
    event = make_event(capacity=5)
    owner = many_owners(1)[0]
    headers = {**owner.headers, **({"Idempotency-Key": key} if key else {})}
    barrier = threading.Barrier(10)
    answers = []

    def attempt():
        barrier.wait(30)
        answer = requests.post(
            f"{live_server}{API}/events/{event.pk}/registrations", headers=headers, timeout=60
        )
        answers.append((answer.status_code, answer.content))

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    codes = Counter(status for status, _ in answers)
    assert codes == ({201: 10} if key else {201: 1, 409: 9})
    if key:
        assert len({body for _, body in answers}) == 1
    assert Event.objects.get(pk=event.pk).seats_left == 4
    assert Registration.objects(event_id=event.pk).count() == 1
