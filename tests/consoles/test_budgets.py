"""Command budgets of the consoles' pages (tests/support.py says how they count): each page a
leader opens, on a city with a partner, a budget, events with registrations and answers,
open follow-ups and vehicles waiting, opened by a signed-in leader in a warm process. Every
GET page of the console has a row; a page that needs more says why beside its budget."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.ownership import add_vehicle
from app.auth import load_caller
from app.clock import utcnow
from events import feedback, registration, services, tickets
from events.models import Event
from tests.authz_table import CONSOLE_ACCESS
from tests.consoles.support import page_within_budget, sign_in, sz_partner
from tests.events.conftest import many_owners
from tests.support import make_person

# The caller's account is the first command of every page (its sessions, grants, ban).
PAGES: dict[str, int] = {
    # The caller (a redirect to their home).
    "/console/": 1,
    # The caller, the partners they work for (2), this month's budget, the published
    # events, the open follow-ups (which look up the caller's partners again: feedback's
    # own scope), the vehicle queue's count.
    "/console/leader": 8,
    "/console/ambassador": 1,
    "/console/admin": 1,
    # The caller, the page of events (time zones are kept per process).
    "/console/events": 2,
    # The caller (the form's cities are the caller's grants).
    "/console/events/new": 1,
    # The caller, the event, its door counts (one aggregate), its conflicts.
    "/console/events/{event_id}": 4,
    "/console/events/{event_id}/edit": 2,
    # The caller, the event, its registrations, their owners' names and vehicles (2).
    "/console/events/{event_id}/registrations": 5,
    "/console/events/{event_id}/registrations.csv": 5,
    # The caller, the event (read twice: by the page, and by feedback's own check of who
    # may read it, with the event's partner and whether the caller works for it), the
    # answers' figures, the page of answers.
    "/console/events/{past_event_id}/feedback": 7,
    "/console/events/{event_id}/door": 3,
    # The caller, the event, its registrations, their owners (2), the partner's keys.
    "/console/events/{event_id}/door/kit": 6,
    "/console/events/{event_id}/door/counts": 3,
    # The caller, the queue's page, its owners' names.
    "/console/vehicles": 3,
    # The caller, the partners they work for, the page, its owners' names.
    "/console/follow-ups": 4,
    # The caller, their partners (2), the month's figures, the page of its entries.
    "/console/budget": 5,
    # The caller, their partners (2), the stored months, the current month refreshed as
    # the API's scorecard is.
    "/console/scorecard": 5,
    "/console/scorecard.csv": 4,
}
# Public, static, or forms posted: no page to budget.
NOT_PAGES = ("sign-in", "sign-out", "language", "sw.js", "static")


@pytest.fixture
def busy_city(app, leader):
    """SZ run by a partner, with budget, an event of 12 registrations, a completed one with
    answers and follow-ups, and vehicles waiting."""
    sz_partner(100_000)
    who = load_caller(leader.id)

    starts = utcnow() + timedelta(hours=1)
    ids = {}
    attendees = []
    for name in ("event_id", "past_event_id"):
        event = services.create_event(
            who,
            city_code="SZ",
            title="Coffee salon",
            venue="Brand space",
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
            capacity=40,
            points_reward=10,
        )
        services.publish_event(who, str(event.pk))
        owners = many_owners(12)
        for owner in owners:
            registration.register(load_caller(owner.id), str(event.pk))
        for owner in owners[:6]:
            tickets.check_in(who, str(event.pk), user_id=owner.id)
        ids[name] = str(event.pk)
        attendees = owners[:6]
    past = ids["past_event_id"]
    now = utcnow()
    Event.objects(pk=past).update_one(
        set__starts_at=now - timedelta(hours=3), set__ends_at=now - timedelta(hours=1)
    )
    services.complete_event(who, past)
    for number, owner in enumerate(attendees):
        feedback.give_feedback(load_caller(owner.id), past, number % 5 + 1, number)
    for number, owner in enumerate(many_owners(5, verified_owner=True)):
        add_vehicle(owner.user, f"LSJW74U93MZ{number:06d}", "smart #1")
    return ids


def test_every_console_page_has_a_budget():
    pages = {
        rule.split(" ", 1)[1].replace("<", "{").replace(">", "}")
        for rule in CONSOLE_ACCESS
        if rule.startswith("GET ") and not any(part in rule for part in NOT_PAGES)
    }
    budgeted = {path.replace("{past_event_id}", "{event_id}") for path in PAGES}
    assert pages == budgeted


@pytest.mark.parametrize("path", sorted(PAGES))
def test_a_page_within_its_budget(client, leader, busy_city, path):
    admin_only = path in ("/console/admin", "/console/ambassador")
    person = leader
    if admin_only:
        person = make_person("SZ", role="admin")
    sign_in(client, person)
    status = 302 if path == "/console/" else 200
    page_within_budget(client, path.format(**busy_city), PAGES[path], status)
