"""Business rules of events, called without HTTP."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from app.clock import utcnow
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.outbox import OutboxEvent
from events import services
from events.models import (
    ATTENDED,
    CANCELLED,
    CONFIRMED,
    NO_SHOW,
    WAITLISTED,
    Event,
    Registration,
)
from notifications.models import Notification
from tests.events.conftest import as_caller, many_owners
from tests.support import make_person


def register_all(event, people):
    return [services.register(as_caller(person), str(event.pk)) for person in people]


def statuses(event):
    return {
        str(r.user_id): (r.status, r.waitlist_position)
        for r in Registration.objects(event_id=event.pk)
    }


def test_times_must_be_consistent(make_event):
    with pytest.raises(ValidationFailed) as ends_first:
        make_event(publish=False, ends_at=utcnow())
    assert ends_first.value.error == "invalid_times"
    assert "ends_at" in ends_first.value.details["errors"]
    with pytest.raises(ValidationFailed) as closes_late:
        make_event(publish=False, registration_closes_at=utcnow() + timedelta(days=3))
    assert "registration_closes_at" in closes_late.value.details["errors"]


def test_leader_creates_only_in_own_city(make_event):
    other = make_person("CD", role="circle_leader")
    with pytest.raises(Forbidden):
        make_event(organizer=other)
    admin = make_person("CD", role="admin")
    assert make_event(organizer=admin).city_code == "SZ"


def test_seats_then_waitlist_positions_in_order(make_event):
    event = make_event(capacity=2)
    people = many_owners(5)
    results = register_all(event, people)
    assert [r.status for r in results] == [CONFIRMED] * 2 + [WAITLISTED] * 3
    assert [r.waitlist_position for r in results[2:]] == [1, 2, 3]
    event.reload()
    assert event.seats_left == 0 and services.waitlist_count(event.pk) == 3


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
    services.cancel_registration(as_caller(first), str(event.pk))
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
    services.cancel_registration(as_caller(second), str(event.pk))
    assert statuses(event)[first.id][0] == CONFIRMED
    assert OutboxEvent.objects(type="registration.promoted").count() == 0
    with pytest.raises(NotFound):
        services.cancel_registration(as_caller(second), str(event.pk))


def test_re_registering_after_cancelling_queues_again(make_event):
    event = make_event(capacity=1)
    first, second = many_owners(2)
    register_all(event, [first, second])
    services.cancel_registration(as_caller(first), str(event.pk))
    again = register_all(event, [first])[0]
    assert (again.status, again.waitlist_position) == (WAITLISTED, 2)
    assert Registration.objects(event_id=event.pk, user_id=first.user.pk).count() == 1


def test_capacity_raise_promotes_in_order_and_lower_is_bounded(make_event, leader):
    event = make_event(capacity=2)
    people = many_owners(5)
    register_all(event, people)
    who = as_caller(leader)
    with pytest.raises(Conflict) as refused:
        services.update_event(who, str(event.pk), {"capacity": 1})
    assert refused.value.error == "capacity_below_confirmed"
    raised = services.update_event(who, str(event.pk), {"capacity": 4})
    assert (raised.capacity, raised.seats_left) == (4, 0)
    after = statuses(event)
    assert [after[p.id][0] for p in people] == [CONFIRMED] * 4 + [WAITLISTED]
    services.cancel_registration(as_caller(people[0]), str(event.pk))  # promotes the 5th
    services.cancel_registration(as_caller(people[1]), str(event.pk))
    lowered = services.update_event(who, str(event.pk), {"capacity": 3})
    assert (lowered.capacity, lowered.seats_left) == (3, 0)


def test_concurrent_cancellations_never_leave_a_seat_free_while_someone_waits(make_event):
    event = make_event(capacity=10)
    people = many_owners(30)
    register_all(event, people)
    leaving = people[:10]
    threads = [
        threading.Thread(
            target=services.cancel_registration, args=(as_caller(person), str(event.pk))
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


def test_cancel_event_cancels_registrations_and_notifies_each_once(make_event, leader):
    event = make_event(capacity=1)
    first, second, third = many_owners(3)
    register_all(event, [first, second, third])
    services.cancel_registration(as_caller(third), str(event.pk))
    services.cancel_event(as_caller(leader), str(event.pk), "Typhoon warning")
    assert {status for status, _ in statuses(event).values()} == {CANCELLED}
    cancelled = OutboxEvent.objects.get(type="event.cancelled")
    for _ in range(2):
        services.notify_event_cancelled(None, str(event.pk), cancelled.pk)
    notified = {str(n.user_id) for n in Notification.objects(template="event_cancelled")}
    assert notified == {first.id, second.id}  # not the owner who had left already
    assert Notification.objects(template="event_cancelled").count() == 2
    with pytest.raises(Conflict) as again:
        services.cancel_event(as_caller(leader), str(event.pk), "twice")
    assert again.value.error == "event_closed"
    with pytest.raises(Conflict):
        register_all(event, many_owners(1))


def test_complete_marks_no_shows(make_event, leader):
    event = make_event(capacity=2)
    came, stayed_home, waited = many_owners(3)
    register_all(event, [came, stayed_home, waited])
    with pytest.raises(Conflict) as early:
        services.complete_event(as_caller(leader), str(event.pk))
    assert early.value.error == "event_not_started"
    Event.objects(pk=event.pk).update_one(set__starts_at=utcnow() - timedelta(minutes=5))
    services.check_in(as_caller(leader), str(event.pk), user_id=came.id)
    services.complete_event(as_caller(leader), str(event.pk))
    after = statuses(event)
    assert after[came.id][0] == ATTENDED
    assert after[stayed_home.id][0] == NO_SHOW
    assert after[waited.id][0] == CANCELLED


def test_tickets_are_bound_to_owner_event_and_expiry(make_event, leader):
    event = make_event()
    other_event = make_event()
    owner = many_owners(1)[0]
    register_all(event, [owner])
    ticket = services.issue_ticket(as_caller(owner), str(event.pk))
    assert services.read_ticket(ticket["token"], event.pk) == owner.user.pk
    for bad in (ticket["token"] + "x", ticket["token"].replace(".", "", 1)):
        with pytest.raises(ValidationFailed):
            services.read_ticket(bad, event.pk)
    with pytest.raises(ValidationFailed):
        services.read_ticket(ticket["token"], other_event.pk)
    expired = services.ticket_token(event.pk, owner.id, utcnow() - timedelta(seconds=1))
    with pytest.raises(ValidationFailed) as refused:
        services.read_ticket(expired, event.pk)
    assert refused.value.error == "invalid_ticket"


def test_waitlisted_owner_gets_no_ticket(make_event):
    event = make_event(capacity=1)
    first, second = many_owners(2)
    register_all(event, [first, second])
    with pytest.raises(Conflict) as refused:
        services.issue_ticket(as_caller(second), str(event.pk))
    assert refused.value.error == "not_confirmed"


def test_check_in_records_attendance_once(make_event, leader):
    event = make_event(points_reward=150, starts_in=timedelta(hours=1))
    owner = many_owners(1)[0]
    register_all(event, [owner])
    token = services.issue_ticket(as_caller(owner), str(event.pk))["token"]
    registration, first = services.check_in(as_caller(leader), str(event.pk), token=token)
    again, second = services.check_in(as_caller(leader), str(event.pk), user_id=owner.id)
    assert (first, second) == (True, False)
    assert registration.status == again.status == ATTENDED
    attended = OutboxEvent.objects.get(type="event.attended")
    assert attended.subject_id == str(registration.pk)
    assert attended.actor_id == leader.id and attended.city_code == "SZ"
    assert attended.payload == {
        "user_id": owner.id,
        "event_id": str(event.pk),
        "points_reward": 150,
    }


def test_reminders_are_sent_once_per_window(make_event):
    tomorrow = make_event(starts_in=timedelta(hours=20))
    soon = make_event(starts_in=timedelta(hours=1))
    later = make_event(starts_in=timedelta(days=3))
    owner = many_owners(1)[0]
    register_all(tomorrow, [owner])
    register_all(soon, [owner])
    register_all(later, [owner])
    assert services.send_reminders() == 2
    assert services.send_reminders() == 0
    templates = sorted(n.template for n in Notification.objects(user_id=owner.user.pk))
    assert templates == ["event_reminder_24h", "event_reminder_2h"]
    # 22 hours on, the first event is two hours away: its second reminder goes out.
    assert services.send_reminders(utcnow() + timedelta(hours=18, minutes=30)) == 1
    assert Notification.objects(template="event_reminder_2h").count() == 2


def test_concurrent_reminder_runs_send_each_reminder_once(make_event):
    event = make_event(starts_in=timedelta(hours=5), capacity=40)
    people = many_owners(40)
    register_all(event, people)
    sent = []
    barrier = threading.Barrier(4)

    def run():
        barrier.wait()
        sent.append(services.send_reminders())

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(sent) == 40
    assert Notification.objects(template="event_reminder_24h").count() == 40


def test_registrations_are_part_of_the_personal_data_export(make_event):
    from app.privacy import export_personal_data

    event = make_event()
    owner = make_person("SZ")
    register_all(event, [owner])
    exported = export_personal_data(owner.id)["event_registrations"]
    assert exported == [{**exported[0], "event_id": str(event.pk), "status": CONFIRMED}]


def test_demo_events_are_upcoming_published_and_seeded_once(app):
    from accounts.seed import DEMO_CITIES, seed_people
    from events.seed import DEMO_EVENTS, seed_events

    seed_people()
    seed_events()
    seed_events()
    for code, _, _ in DEMO_CITIES:
        events = Event.objects(city_code=code)
        assert events.count() == len(DEMO_EVENTS)
        assert all(e.status == "published" and e.starts_at > utcnow() for e in events)
