"""Handlers and actors of events: points for attendance through loyalty's handlers,
notifications through real worker processes, and reminders under two schedulers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app import handlers as registry
from app.db import database, transaction
from app.outbox import DomainEvent, OutboxEvent
from events import registration, tickets
from loyalty.balances import ledger_of, points_summary
from loyalty.rules import award
from notifications.models import Notification
from tests.events.conftest import as_caller, many_owners
from tests.support import make_person, wait_until

API = "/api/v1"


def delivered_twice(event_type: str) -> None:
    """Apply every handler of the last `event_type` event twice, as a redelivery would."""
    registry.load_handler_modules()
    document = OutboxEvent._get_collection().find_one({"type": event_type})
    event = DomainEvent.from_document(document)
    handlers = registry.handlers_for(event_type)
    assert handlers, f"no handler for {event_type}"
    for handler in handlers:
        assert registry.run_handler(handler, event) is True
        assert registry.run_handler(handler, event) is False


def test_attendance_points_arrive_exactly_once_when_delivered_twice(leader, make_event):
    event = make_event(points_reward=150, starts_in=timedelta(hours=1))
    owner = make_person("SZ")
    registration.register(as_caller(owner), str(event.pk))
    tickets.check_in(as_caller(leader), str(event.pk), user_id=owner.id)
    delivered_twice("event.attended")
    assert points_summary(owner.id)["balance"] == 150
    assert ledger_of(owner.id).count() == 1
    assert Notification.objects(user_id=owner.user.pk, template="points_earned").count() == 1


def test_attendance_points_carry_the_tier_multiplier(leader, make_event):
    event = make_event(points_reward=100, starts_in=timedelta(hours=1))
    owner = make_person("SZ")
    transaction(
        lambda session: award(
            session,
            owner.id,
            "vehicle.verified",
            key="silver",
            source={"type": "test"},
            points=2000,
        )
    )
    registration.register(as_caller(owner), str(event.pk))
    tickets.check_in(as_caller(leader), str(event.pk), user_id=owner.id)
    delivered_twice("event.attended")
    assert points_summary(owner.id)["balance"] == 2000 + 110  # silver: x1.1


def test_promotion_handler_notifies_the_promoted_owner_once(make_event):
    event = make_event(capacity=1)
    first, second = many_owners(2)
    for person in (first, second):
        registration.register(as_caller(person), str(event.pk))
    registration.cancel_registration(as_caller(first), str(event.pk))
    delivered_twice("registration.promoted")
    notices = Notification.objects(template="registration_promoted")
    assert [str(n.user_id) for n in notices] == [second.id]


def test_reminder_actor_run_twice_sends_once(make_event):
    from events.tasks import send_reminders

    event = make_event(starts_in=timedelta(hours=1, minutes=30))
    owner = make_person("SZ", locale="en")
    registration.register(as_caller(owner), str(event.pk))
    send_reminders()
    send_reminders()
    notice = Notification.objects.get(user_id=owner.user.pk)
    assert notice.title == "Your event starts soon" and "Brand space" in notice.body


def test_cancellation_reaches_every_registrant_through_real_worker(
    client, leader, make_event, background
):
    event = make_event(capacity=2)
    people = [make_person("SZ", locale="en") for _ in range(3)]
    for person in people:
        assert (
            client.post(
                f"{API}/events/{event.pk}/registrations", headers=person.headers
            ).status_code
            == 201
        )
    background("worker", "dispatcher")
    assert (
        client.delete(
            f"{API}/events/{event.pk}/registrations/me", headers=people[0].headers
        ).status_code
        == 204
    )
    promoted = wait_until(
        lambda: Notification.objects(template="registration_promoted").first(),
        message="the promotion notice",
    )
    assert str(promoted.user_id) == people[2].id and promoted.title == "You have a place"

    assert (
        client.post(
            f"{API}/events/{event.pk}/cancel",
            headers=leader.headers,
            json={"reason": "Typhoon warning"},
        ).status_code
        == 200
    )
    wait_until(
        lambda: Notification.objects(template="event_cancelled").count() == 2,
        message="two cancellation notices",
    )
    notices = Notification.objects(template="event_cancelled")
    assert {str(n.user_id) for n in notices} == {people[1].id, people[2].id}
    assert all("Typhoon warning" in n.body for n in notices)


@pytest.mark.slow
def test_reminder_sent_once_with_two_schedulers_running(make_event, background):
    event = make_event(starts_in=timedelta(hours=20), capacity=20)
    people = many_owners(20)
    for person in people:
        registration.register(as_caller(person), str(event.pk))
    group = background(
        "worker",
        "scheduler",
        EXTRA_HANDLER_MODULES="tests.events.jobs",
        EXTRA_SCHEDULE_MODULES="tests.events.jobs",
    )
    group.start("scheduler", alias="second-scheduler")
    runs = database()["test_reminder_runs"]
    reminders = Notification.objects(template="event_reminder_24h")
    wait_until(
        lambda: runs.count_documents({}) >= 4 and reminders.count() >= 20,
        timeout=90,
        message="four scheduled reminder runs and the reminders",
    )
    assert sorted(str(n.user_id) for n in reminders) == sorted(p.id for p in people)
    # Both schedulers were up the whole time, each firing every second.
    assert all(group.processes[name].poll() is None for name in ("scheduler", "second-scheduler"))
