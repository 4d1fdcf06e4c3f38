"""Event feedback: only attendees, only in the week after the end, once; a low score opens
one follow-up for the city's leaders; the answers are the event's leaders' to read."""

from __future__ import annotations

from datetime import timedelta

from accounts.models import RoleGrant
from app.clock import utcnow
from events.models import Event, EventFeedback, FollowUp
from loyalty.models import LedgerEntry
from tests.events.conftest import deliver, many_owners
from tests.partners.conftest import run_event
from tests.support import make_person

API = "/api/v1"


def rate(client, person, event, **fields):
    return client.post(
        f"{API}/events/{event.pk}/feedback",
        json={"score": 5, "recommend": 10, **fields},
        headers=person.headers,
    )


def test_attendees_rate_once_within_the_window_and_earn_points(client, leader):
    attendee, no_show = many_owners(2)
    event = run_event(leader, [attendee], [no_show])
    outsider = make_person("SZ")
    assert rate(client, no_show, event).json["error"] == "not_attended"
    assert rate(client, outsider, event).status_code == 403
    given = rate(client, attendee, event, comment="Great coffee")
    assert given.status_code == 201, given.json
    again = rate(client, attendee, event, score=1)
    assert again.status_code == 409 and again.json["error"] == "feedback_exists"
    assert EventFeedback.objects.count() == 1 and FollowUp.objects.count() == 0
    deliver("event.feedback_given")
    [points] = LedgerEntry.objects(source__rule="event.feedback")
    assert (points.account_id, points.amount) == (attendee.user.pk, 20)
    deliver("event.feedback_given")
    assert LedgerEntry.objects(source__rule="event.feedback").count() == 1


def test_staff_of_any_city_neither_earn_nor_rate(client, leader):
    """Issue 20, finding 6: a leader of another city attended and rated a partner's event
    for points; a grant revoked after the check-in let its holder rate."""
    co_leader = make_person("SZ", role="circle_leader")
    ambassador = make_person("SZ", role="ambassador")
    visitor = make_person("GZ", role="circle_leader")
    revoked = make_person("GZ", role="ambassador")
    event = run_event(leader, [co_leader, ambassador, visitor, revoked], capacity=4)
    deliver("event.attended")
    assert LedgerEntry.objects(source__rule="event.attended").count() == 0  # no points
    admin = make_person("SZ", role="admin")
    [grant] = RoleGrant.objects(user_id=revoked.user.pk)
    answer = client.delete(f"{API}/admin/role-grants/{grant.pk}", headers=admin.headers)
    assert answer.status_code == 204
    for staff in (co_leader, ambassador, leader, visitor, revoked):
        refused = rate(client, staff, event)
        assert refused.status_code == 403 and refused.json["error"] == "staff_feedback"
    assert EventFeedback.objects.count() == 0


def test_a_cancelled_event_takes_no_feedback(client, leader):
    """Issue 20, finding 6: attendees rated a cancelled event (points, and a follow-up)."""
    attendee = many_owners(1)[0]
    event = run_event(leader, [attendee])
    Event.objects(pk=event.pk).update_one(set__status="cancelled")
    refused = rate(client, attendee, event, score=1)
    assert refused.status_code == 409 and refused.json["error"] == "event_cancelled"
    assert EventFeedback.objects.count() == 0 and FollowUp.objects.count() == 0


def test_feedback_opens_at_the_end_and_closes_a_week_later(client, leader):
    early, late = many_owners(2)
    event = run_event(leader, [early, late])
    now = utcnow()
    Event.objects(pk=event.pk).update_one(set__ends_at=now + timedelta(minutes=5))
    refused = rate(client, early, event)
    assert refused.status_code == 409 and refused.json["error"] == "feedback_closed"
    assert refused.json["opens_at"].endswith("+08:00")  # the city's time, as the event's
    Event.objects(pk=event.pk).update_one(set__ends_at=now - timedelta(days=7, minutes=1))
    assert rate(client, late, event).json["error"] == "feedback_closed"
    assert EventFeedback.objects.count() == 0


def test_bad_feedback_is_refused(client, leader):
    [attendee] = many_owners(1)
    event = run_event(leader, [attendee])
    for bad in ({"score": 0}, {"score": 6}, {"recommend": 11}, {"score": "5"}, {"score": 4.5}):
        answer = rate(client, attendee, event, **bad)
        assert answer.status_code == 422, bad
    assert (
        client.post(
            f"{API}/events/nope/feedback",
            json={"score": 5, "recommend": 5},
            headers=attendee.headers,
        ).status_code
        == 404
    )
    assert EventFeedback.objects.count() == 0


def test_a_low_score_opens_one_follow_up_the_leaders_close(client, leader):
    unhappy, happy = many_owners(2)
    event = run_event(leader, [unhappy, happy])
    assert rate(client, unhappy, event, score=2, recommend=3).status_code == 201
    assert rate(client, happy, event, score=4, recommend=9).status_code == 201
    [follow_up] = FollowUp.objects
    assert follow_up.score == 2 and follow_up.status == "open"

    answers = client.get(f"{API}/events/{event.pk}/feedback", headers=leader.headers)
    assert answers.status_code == 200
    assert (answers.json["count"], answers.json["average_score"], answers.json["nps"]) == (
        2,
        3.0,
        0.0,
    )
    assert client.get(f"{API}/events/{event.pk}/feedback", headers=happy.headers).status_code == 404

    listed = client.get(f"{API}/follow-ups?city=SZ&status=open", headers=leader.headers)
    assert [item["id"] for item in listed.json["items"]] == [str(follow_up.pk)]
    other_city = make_person("GZ", role="circle_leader")
    assert client.get(f"{API}/follow-ups", headers=other_city.headers).json["items"] == []
    assert client.get(f"{API}/follow-ups?city=SZ", headers=other_city.headers).status_code == 403
    assert (
        client.post(
            f"{API}/follow-ups/{follow_up.pk}/close",
            json={"note": "Called"},
            headers=other_city.headers,
        ).status_code
        == 404
    )

    admin = make_person("SZ", role="admin")
    assert client.get(f"{API}/follow-ups?overdue=true", headers=admin.headers).json["items"] == []
    FollowUp.objects(pk=follow_up.pk).update_one(
        set__created_at=utcnow() - timedelta(days=3, minutes=1)
    )
    overdue = client.get(f"{API}/follow-ups?overdue=true", headers=admin.headers)
    assert [item["id"] for item in overdue.json["items"]] == [str(follow_up.pk)]

    closed = client.post(
        f"{API}/follow-ups/{follow_up.pk}/close",
        json={"note": "Called, refunded"},
        headers=leader.headers,
    )
    assert closed.status_code == 200 and closed.json["status"] == "closed"
    again = client.post(
        f"{API}/follow-ups/{follow_up.pk}/close", json={"note": "Again"}, headers=leader.headers
    )
    assert again.status_code == 409 and again.json["error"] == "follow_up_closed"
    assert client.get(f"{API}/follow-ups?status=open", headers=leader.headers).json["items"] == []
