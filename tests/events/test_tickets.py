"""Tickets and check-in, called without HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.clock import utcnow
from app.errors import Conflict, ValidationFailed
from app.outbox import OutboxEvent
from events import tickets
from events.models import ATTENDED
from tests.events.conftest import as_caller, many_owners, register_all


def test_tickets_are_bound_to_owner_event_and_expiry(make_event, leader):
    event = make_event()
    other_event = make_event()
    owner = many_owners(1)[0]
    register_all(event, [owner])
    ticket = tickets.issue_ticket(as_caller(owner), str(event.pk))
    assert tickets.read_ticket(ticket["token"], event.pk) == owner.user.pk
    for bad in (ticket["token"] + "x", ticket["token"].replace(".", "", 1)):
        with pytest.raises(ValidationFailed):
            tickets.read_ticket(bad, event.pk)
    with pytest.raises(ValidationFailed):
        tickets.read_ticket(ticket["token"], other_event.pk)
    expired = tickets.ticket_token(event.pk, owner.id, utcnow() - timedelta(seconds=1))
    with pytest.raises(ValidationFailed) as refused:
        tickets.read_ticket(expired, event.pk)
    assert refused.value.error == "invalid_ticket"


def test_waitlisted_owner_gets_no_ticket(make_event):
    event = make_event(capacity=1)
    first, second = many_owners(2)
    register_all(event, [first, second])
    with pytest.raises(Conflict) as refused:
        tickets.issue_ticket(as_caller(second), str(event.pk))
    assert refused.value.error == "not_confirmed"


def test_check_in_records_attendance_once(make_event, leader):
    event = make_event(points_reward=150, starts_in=timedelta(hours=1))
    owner = many_owners(1)[0]
    register_all(event, [owner])
    token = tickets.issue_ticket(as_caller(owner), str(event.pk))["token"]
    registration, first = tickets.check_in(as_caller(leader), str(event.pk), token=token)
    again, second = tickets.check_in(as_caller(leader), str(event.pk), user_id=owner.id)
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
