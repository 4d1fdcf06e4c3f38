"""Tickets and check-in: through the services, and over HTTP for replays, forgeries, the
check-in window and the points a check-in may award."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from bson import ObjectId

from app.clock import utcnow
from app.errors import Conflict, ValidationFailed
from app.outbox import OutboxEvent
from events import tickets
from events.models import ATTENDED, Event, Registration
from tests.events.conftest import API, as_caller, deliver, many_owners, register, register_all
from tests.support import make_person


def test_tickets_are_bound_to_owner_event_and_expiry(make_event, leader):
    event = make_event()
    other_event = make_event()
    owner = many_owners(1)[0]
    register_all(event, [owner])
    ticket = tickets.issue_ticket(as_caller(owner), str(event.pk))
    read = tickets.read_ticket(ticket["token"], event)
    assert (read.owner_id, read.ticket_id) == (owner.user.pk, ticket["ticket_id"])
    for bad in (ticket["token"] + "x", ticket["token"].replace(".", "", 1)):
        with pytest.raises(ValidationFailed):
            tickets.read_ticket(bad, event)
    with pytest.raises(ValidationFailed):
        tickets.read_ticket(ticket["token"], other_event)
    expired = tickets.ticket_token(
        event, ticket["ticket_id"], owner.id, utcnow() - timedelta(seconds=1)
    )
    with pytest.raises(ValidationFailed) as refused:
        tickets.read_ticket(expired, event)
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
    first = tickets.check_in(as_caller(leader), str(event.pk), token=token)
    again = tickets.check_in(as_caller(leader), str(event.pk), user_id=owner.id)
    assert (first.status_code, again.status_code) == (201, 200)
    registration = first.registration
    assert registration.status == again.registration.status == ATTENDED
    attended = OutboxEvent.objects.get(type="event.attended")
    assert attended.subject_id == str(registration.pk)
    assert attended.actor_id == leader.id and attended.city_code == "SZ"
    assert attended.payload == {
        "user_id": owner.id,
        "event_id": str(event.pk),
        "points_reward": 150,
    }


def test_check_in_replay_forgery_other_event_and_other_city(client, leader, make_event):
    event = make_event(starts_in=timedelta(hours=1))
    other_event = make_event()
    owner = make_person("SZ")
    register(client, event.pk, owner)
    register(client, other_event.pk, owner)
    token = client.get(f"{API}/events/{event.pk}/ticket", headers=owner.headers).json["token"]
    other_token = client.get(f"{API}/events/{other_event.pk}/ticket", headers=owner.headers).json[
        "token"
    ]
    check_ins = f"{API}/events/{event.pk}/check-ins"

    chengdu_leader = make_person("CD", role="circle_leader")
    foreign = client.post(check_ins, headers=chengdu_leader.headers, json={"token": token})
    assert foreign.status_code == 404
    # An owner holds no role that checks in: 403, as the API guide says (was 404).
    assert client.post(check_ins, headers=owner.headers, json={"token": token}).status_code == 403
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), other_token, "garbage"):
        refused = client.post(check_ins, headers=leader.headers, json={"token": bad})
        assert refused.status_code == 422 and refused.json["error"] == "invalid_ticket"
    expired = tickets.ticket_token(event, ObjectId(), owner.id, utcnow() - timedelta(minutes=1))
    assert (
        client.post(check_ins, headers=leader.headers, json={"token": expired}).json["error"]
        == "invalid_ticket"
    )
    assert (
        client.post(
            check_ins, headers=leader.headers, json={"token": token, "user_id": owner.id}
        ).status_code
        == 422
    )

    first = client.post(check_ins, headers=leader.headers, json={"token": token})
    replay = client.post(check_ins, headers=leader.headers, json={"token": token})
    by_hand = client.post(check_ins, headers=leader.headers, json={"user_id": owner.id})
    assert first.status_code == 201 and first.json["status"] == "attended"
    assert replay.status_code == by_hand.status_code == 200
    assert replay.json == first.json
    assert OutboxEvent.objects(type="event.attended").count() == 1
    stranger = make_person("SZ")
    assert (
        client.post(check_ins, headers=leader.headers, json={"user_id": stranger.id}).status_code
        == 404
    )


def test_ticket_needs_a_confirmed_registration(client, make_event):
    event = make_event(capacity=1)
    first, second, stranger = (make_person("SZ") for _ in range(3))
    register(client, event.pk, first)
    register(client, event.pk, second)
    assert (
        client.get(f"{API}/events/{event.pk}/ticket", headers=second.headers).json["error"]
        == "not_confirmed"
    )
    assert (
        client.get(f"{API}/events/{event.pk}/ticket", headers=stranger.headers).status_code == 404
    )


def test_staff_cannot_mint_points_by_checking_in(client, leader, make_event):
    event = make_event(points_reward=1000, capacity=10, starts_in=timedelta(hours=1))
    check_ins = f"{API}/events/{event.pk}/check-ins"
    second_leader = make_person("SZ", role="circle_leader")
    ambassador = make_person("SZ", role="ambassador")
    admin = make_person("GZ", role="admin")
    visiting_leader = make_person("CD", role="circle_leader")
    owner = make_person("SZ")
    for person in (leader, second_leader, ambassador, admin, visiting_leader):
        assert register(client, event.pk, person).status_code == 201
    register(client, event.pk, owner)

    ticket = client.get(f"{API}/events/{event.pk}/ticket", headers=leader.headers).json["token"]
    for body in ({"user_id": leader.id}, {"token": ticket}):
        own = client.post(check_ins, headers=leader.headers, json=body)
        assert own.status_code == 403 and own.json["error"] == "self_check_in"
    assert Registration.objects.get(user_id=leader.user.pk).status == "confirmed"

    # Staff attend, and earn nothing for it: neither two leaders checking each other in, nor
    # an ambassador or an admin, nor a leader of another city (issue 20: staff earn nothing
    # from another staff member's action).
    for person in (leader, ambassador, admin, visiting_leader, owner):
        checked = client.post(check_ins, headers=second_leader.headers, json={"user_id": person.id})
        assert checked.status_code == 201 and checked.json["status"] == "attended"
    deliver("event.attended")
    balances = {
        person.id: client.get(f"{API}/me/points", headers=person.headers).json["balance"]
        for person in (leader, ambassador, admin, visiting_leader, owner)
    }
    assert balances == {
        leader.id: 0,
        ambassador.id: 0,
        admin.id: 0,
        visiting_leader.id: 0,
        owner.id: 1000,
    }


def test_check_in_opens_two_hours_before_the_start_and_closes_after_the_grace(
    client, leader, make_event
):
    event = make_event(starts_in=timedelta(hours=3))
    owner = make_person("SZ")
    register(client, event.pk, owner)
    check_ins = f"{API}/events/{event.pk}/check-ins"
    early = client.post(check_ins, headers=leader.headers, json={"user_id": owner.id})
    assert early.status_code == 409 and early.json["error"] == "check_in_closed"
    # The window in the city's time, as the event's own times are shown.
    shown = client.get(f"{API}/events/{event.pk}", headers=owner.headers).json
    assert early.json["opens_at"].endswith("+08:00") and shown["starts_at"].endswith("+08:00")
    assert datetime.fromisoformat(early.json["opens_at"]) == datetime.fromisoformat(
        shown["starts_at"]
    ) - timedelta(hours=2)
    assert Registration.objects.get(user_id=owner.user.pk).status == "confirmed"

    now = utcnow()
    Event.objects(pk=event.pk).update_one(
        set__starts_at=now - timedelta(hours=10), set__ends_at=now - timedelta(hours=6, minutes=1)
    )
    late = client.post(check_ins, headers=leader.headers, json={"user_id": owner.id})
    assert late.status_code == 409 and late.json["error"] == "check_in_closed"

    Event.objects(pk=event.pk).update_one(
        set__starts_at=now + timedelta(hours=1, minutes=55), set__ends_at=now + timedelta(hours=4)
    )
    opened = client.post(check_ins, headers=leader.headers, json={"user_id": owner.id})
    assert opened.status_code == 201 and opened.json["status"] == "attended"


def test_an_owner_checking_in_at_a_published_event_is_forbidden(client, make_event):
    # The event is public and who may check in is no secret: 403, not 404.
    event = make_event()
    owner, stranger = make_person("SZ"), make_person("SZ")
    register(client, event.pk, owner)
    refused = client.post(
        f"{API}/events/{event.pk}/check-ins", headers=stranger.headers, json={"user_id": owner.id}
    )
    assert refused.status_code == 403 and refused.json["error"] == "forbidden"
    assert Registration.objects.get(user_id=owner.user.pk).status == "confirmed"
