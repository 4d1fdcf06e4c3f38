"""A city partner's points budget: allocations, reservations at publish (never below zero
under concurrent publishes), draws at check-in, releases at the end, reconciliation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests

from app.clock import utcnow
from events import services
from events.models import Event
from partners import budget
from partners.models import CityPartnerBudget, CityPartnerBudgetEntry
from tests.events.conftest import as_caller, many_owners
from tests.partners.conftest import draft, run_event
from tests.support import make_person

API = "/api/v1"


def allocate(client, admin, partner, month, points, key=None):
    headers = {**admin.headers, **({"Idempotency-Key": key} if key else {})}
    return client.post(
        f"{API}/admin/city-partners/{partner.pk}/budget-allocations",
        json={"month": month, "points": points},
        headers=headers,
    )


def this_month() -> str:
    return budget.month_of(utcnow() + timedelta(hours=1), "SZ")


def test_allocations_are_idempotent_and_bounded(client, admin, make_partner):
    partner = make_partner()
    month = this_month()
    first = allocate(client, admin, partner, month, 1000, key="alloc-1")
    again = allocate(client, admin, partner, month, 1000, key="alloc-1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json["allocated"] == first.json["left"] == 1000
    for bad, slug in [
        ({"month": "2026-13", "points": 5}, "validation_failed"),
        ({"month": "2026-12\n", "points": 5}, "validation_failed"),
        ({"month": month, "points": 0}, "validation_failed"),
        ({"month": month, "points": 1.5}, "validation_failed"),
        ({"month": "2031-01", "points": 5}, "month_outside_contract"),
    ]:
        answer = client.post(
            f"{API}/admin/city-partners/{partner.pk}/budget-allocations",
            json=bad,
            headers=admin.headers,
        )
        assert answer.status_code == 422, (bad, answer.json)
        assert answer.json["error"] == slug
    assert CityPartnerBudgetEntry.objects.count() == 1
    assert budget.summary(partner.pk, month)["allocated"] == 1000


def test_concurrent_publishes_never_take_the_budget_below_zero(
    live_server, client, admin, leader, make_partner
):
    partner = make_partner()
    allocate(client, admin, partner, this_month(), 1000)
    # Five events of 3 seats x 100 points: 300 each, so three fit in 1,000.
    events = [draft(leader) for _ in range(5)]

    def publish(event: Event) -> requests.Response:
        return requests.post(
            f"{live_server}{API}/events/{event.pk}/publish", headers=leader.headers, timeout=60
        )

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(publish, events))
    assert sorted(answer.status_code for answer in answers) == [200] * 3 + [409] * 2
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"budget_exceeded"}
    figures = budget.summary(partner.pk, this_month())
    assert (figures["reserved"], figures["left"]) == (900, 100)
    published = Event.objects(status="published")
    assert published.count() == 3
    assert all(event.city_partner_id == partner.pk for event in published)
    shown = client.get(f"{API}/events/{published.first().pk}", headers=leader.headers)
    assert shown.json["city_partner_id"] == str(partner.pk)
    assert Event.objects(status="draft", city_partner_id=None).count() == 2
    assert budget.reconcile() == []


def test_check_ins_draw_and_the_end_releases(client, admin, leader, make_partner):
    partner = make_partner()
    month = this_month()
    allocate(client, admin, partner, month, 1000)
    attendees = many_owners(2)
    event = run_event(leader, attendees, many_owners(1), capacity=3, points_reward=100)
    assert budget.summary(partner.pk, month) | {"month": month} == {
        "month": month,
        "allocated": 1000,
        "reserved": 300,
        "drawn": 200,
        "released": 0,
        "left": 700,
    }
    services.complete_event(as_caller(leader), str(event.pk))
    seen = client.get(
        f"{API}/city-partners/{partner.pk}/budget?month={month}", headers=leader.headers
    )
    assert seen.status_code == 200
    assert {name: seen.json[name] for name in budget.FIGURES} == {
        "allocated": 1000,
        "reserved": 300,
        "drawn": 200,
        "released": 100,
        "left": 800,
    }
    assert [entry["kind"] for entry in seen.json["entries"]] == [
        "release",
        "draw",
        "draw",
        "reserve",
        "allocate",
    ]
    assert budget.reconcile() == []


def test_capacity_changes_move_the_reservation_and_cancelling_releases_it(
    client, admin, leader, make_partner
):
    partner = make_partner()
    month = this_month()
    allocate(client, admin, partner, month, 500)
    event = draft(leader, capacity=3, points_reward=100)
    services.publish_event(as_caller(leader), str(event.pk))
    refused = client.patch(f"{API}/events/{event.pk}", json={"capacity": 6}, headers=leader.headers)
    assert refused.status_code == 409 and refused.json["error"] == "budget_exceeded"
    assert Event.objects(pk=event.pk).first().capacity == 3
    assert (
        client.patch(
            f"{API}/events/{event.pk}", json={"capacity": 5}, headers=leader.headers
        ).status_code
        == 200
    )
    assert budget.summary(partner.pk, month)["left"] == 0
    assert (
        client.patch(
            f"{API}/events/{event.pk}", json={"points_reward": 50}, headers=leader.headers
        ).status_code
        == 200
    )
    assert budget.summary(partner.pk, month)["left"] == 250
    services.cancel_event(as_caller(leader), str(event.pk), "Rain")
    assert budget.summary(partner.pk, month)["left"] == 500
    assert budget.reconcile() == []


def test_reconciliation_reports_and_repairs_a_drift(client, admin, make_partner):
    partner = make_partner()
    month = this_month()
    allocate(client, admin, partner, month, 1000)
    CityPartnerBudget.objects(city_partner_id=partner.pk).update_one(inc__left=5)
    [drift] = budget.reconcile()
    assert drift["cached"] == {"left": 1005}
    assert budget.summary(partner.pk, month)["left"] == 1000
    assert budget.reconcile() == []


def test_hq_run_cities_draw_on_no_budget(leader):
    event = draft(leader)
    services.publish_event(as_caller(leader), str(event.pk))
    assert Event.objects(pk=event.pk).first().city_partner_id is None
    assert CityPartnerBudgetEntry.objects.count() == 0


def test_leaders_of_another_partner_see_no_budget(client, admin, make_partner):
    partner = make_partner()
    other = make_person("GZ", role="circle_leader")
    make_partner("GZ")
    answer = client.get(f"{API}/city-partners/{partner.pk}/budget", headers=other.headers)
    assert answer.status_code == 404


def test_an_allocation_with_a_service_key_is_made_once(admin, make_partner):
    """The console's form carries a key of its own: sent twice, or twice at once, one
    allocation."""
    partner = make_partner()
    month = this_month()
    who = as_caller(admin)

    def send(_):
        return budget.allocate(who, str(partner.pk), month, 700, key="form-1")

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, range(4)))
    assert {answer["allocated"] for answer in answers} <= {700}
    budget.allocate(who, str(partner.pk), month, 700, key="form-1")
    assert budget.summary(partner.pk, month)["allocated"] == 700
    budget.allocate(who, str(partner.pk), month, 300, key="form-2")
    assert budget.summary(partner.pk, month)["allocated"] == 1000
