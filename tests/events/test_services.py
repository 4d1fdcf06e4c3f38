"""Events' lifecycle, called without HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.clock import utcnow
from app.errors import Conflict, Forbidden, ValidationFailed
from app.outbox import OutboxEvent
from events import notices, registration, services, tickets
from events.models import ATTENDED, CANCELLED, CONFIRMED, NO_SHOW, WAITLISTED, Event
from notifications.models import Notification
from tests.events.conftest import as_caller, many_owners, register_all, statuses
from tests.support import make_person


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
    registration.cancel_registration(as_caller(people[0]), str(event.pk))  # promotes the 5th
    registration.cancel_registration(as_caller(people[1]), str(event.pk))
    lowered = services.update_event(who, str(event.pk), {"capacity": 3})
    assert (lowered.capacity, lowered.seats_left) == (3, 0)


def test_cancel_event_cancels_registrations_and_notifies_each_once(make_event, leader):
    event = make_event(capacity=1)
    first, second, third = many_owners(3)
    register_all(event, [first, second, third])
    registration.cancel_registration(as_caller(third), str(event.pk))
    services.cancel_event(as_caller(leader), str(event.pk), "Typhoon warning")
    assert {status for status, _ in statuses(event).values()} == {CANCELLED}
    cancelled = OutboxEvent.objects.get(type="event.cancelled")
    for _ in range(2):
        notices.notify_event_cancelled(None, str(event.pk), cancelled.pk)
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
    tickets.check_in(as_caller(leader), str(event.pk), user_id=came.id)
    services.complete_event(as_caller(leader), str(event.pk))
    after = statuses(event)
    assert after[came.id][0] == ATTENDED
    assert after[stayed_home.id][0] == NO_SHOW
    assert after[waited.id][0] == CANCELLED


def test_demo_events_are_upcoming_published_and_seeded_once(app):
    from accounts.seed import DEMO_CITIES, seed_people
    from events.seed import DEMO_EVENTS, seed_events

    seed_people()
    seed_events()
    seed_events()
    for code, _, _ in DEMO_CITIES:
        # Besides these, one past event (completed, rated) gives the scorecards something.
        events = Event.objects(city_code=code, status__ne="completed")
        assert events.count() == len(DEMO_EVENTS)
        assert all(e.status == "published" and e.starts_at > utcnow() for e in events)
