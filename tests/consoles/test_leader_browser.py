"""A circle leader runs an event from draft to completion in a real browser (headless
Chromium), in zh-CN and in en: create and publish it, owners register through the API,
check-in by typing a ticket and by search, one ticket scanned offline (the browser taken
offline), uploaded when back online and again (taken once), the same ticket scanned offline
on a second device (one conflict, one award), complete, a follow-up closed, a vehicle
verified and the scorecard read. Every page is photographed at phone and desktop sizes."""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from accounts.ownership import add_vehicle
from app.auth import load_caller
from app.clock import utcnow
from app.outbox import OutboxEvent
from events.models import CheckInScan, Event, Registration
from tests.consoles.browser import DESKTOP, PHONE, new_page, sign_in_page
from tests.consoles.support import sz_partner
from tests.support import make_city, make_person, wait_until

API = "/api/v1"

# What the page says, by language, where a test reads it.
SAYS = {
    "zh-CN": {"offline": "离线", "online": "在线", "welcome": "欢迎", "already": "已签到"},
    "en": {"offline": "Offline", "online": "Online", "welcome": "Welcome", "already": "Already"},
}


@pytest.fixture
def city_with_partner(app):
    """SZ run by a partner with this month's budget, its leader, and three owners."""
    make_city("SZ")
    leader = make_person("SZ", role="circle_leader", display_name="Lin (leader)")
    partner = sz_partner()
    owners = [
        make_person("SZ", display_name=name, phone=f"+86 139 0000 {1000 + n}")
        for n, name in enumerate(("Wang Fang", "Li Na", "Zhang Wei"))
    ]
    return leader, partner, owners


def api(base: str, method: str, path: str, person, **kwargs) -> requests.Response:
    return requests.request(
        method, f"{base}{API}{path}", headers=person.headers, timeout=30, **kwargs
    )


def open_door(page, base: str, event_id: str, says: dict[str, str]) -> None:
    page.goto(f"{base}/console/events/{event_id}/door")
    until(page, f"localStorage.getItem('door:kit:{event_id}') !== null")
    assert says["online"] in page.inner_text("#door-network")


def until(page, expression: str, timeout: float = 20.0, arg=None):
    """Poll a JavaScript expression in the page until it is truthy. (Playwright's
    wait_for_function evaluates strings as code in the page, which the console's CSP
    refuses, as it should.)"""
    return wait_until(
        lambda: page.evaluate(expression, arg), timeout=timeout, interval=0.1, message=expression
    )


def type_ticket(page, token: str) -> None:
    """As a keyboard-wedge scanner does: the ticket's text, then Enter."""
    page.fill("#door-ticket-input", token)
    page.press("#door-ticket-input", "Enter")


def answer(page, colour: str, says: str) -> str:
    """Wait for the door's answer in `colour` saying `says`; returns all it says."""
    return until(
        page,
        """([colour, says]) => {
            const box = document.getElementById('door-answer');
            return box.classList.contains(colour) && box.innerText.includes(says) && box.innerText;
        }""",
        arg=[colour, says],
    )


@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.slow
def test_a_leader_runs_an_event_from_draft_to_scorecard(
    browser, console_url, screenshot, city_with_partner, language
):
    leader, partner, (wang, li, zhang) = city_with_partner
    says = SAYS[language]
    desk = new_page(browser, language, DESKTOP)
    sign_in_page(desk, console_url, leader.user.email)
    assert desk.url.endswith("/console/leader")
    screenshot(desk, "home-empty")

    # Create a draft in the city's wall-clock time, then publish it.
    desk.goto(f"{console_url}/console/events/new")
    starts = utcnow() + timedelta(hours=1)
    shanghai = ZoneInfo("Asia/Shanghai")
    local = lambda moment: moment.astimezone(shanghai).strftime("%Y-%m-%dT%H:%M")  # noqa: E731
    desk.fill("#title", "Coffee salon")
    desk.fill("#venue", "Brand space, Nanshan")
    desk.fill("#description", "Coffee and a short drive.")
    desk.fill("#starts_at", local(starts))
    desk.fill("#ends_at", local(starts + timedelta(hours=2)))
    desk.fill("#capacity", "10")
    desk.fill("#points_reward", "50")
    screenshot(desk, "event-new")
    desk.click("form.form button[type=submit]")
    desk.wait_for_selector(".badge.draft")
    event = Event.objects.get(title="Coffee salon")
    assert abs(event.starts_at - starts) < timedelta(minutes=1)
    desk.click("form[action$='/publish'] button")
    desk.wait_for_selector(".badge.published")
    screenshot(desk, "event-published")

    # Owners register through the API and fetch their tickets.
    tickets = {}
    for owner in (wang, li, zhang):
        assert (
            api(console_url, "POST", f"/events/{event.pk}/registrations", owner).status_code == 201
        )
        tickets[owner.id] = api(console_url, "GET", f"/events/{event.pk}/ticket", owner).json()[
            "token"
        ]

    # Two phones open the door while online: each keeps the kit and installs the page.
    phones = [new_page(browser, language, PHONE) for _ in range(2)]

    for phone in phones:
        sign_in_page(phone, console_url, leader.user.email)
        open_door(phone, console_url, str(event.pk), says)
        until(phone, "navigator.serviceWorker.controller !== null")
        until(
            phone,
            "caches.open('console-door-v1').then(c => c.match(location.pathname)).then(Boolean)",
        )
    screenshot(phones[0], "door-ready")

    # At the desk: a ticket typed (as a scanner types it), then an owner found by phone tail.
    open_door(desk, console_url, str(event.pk), says)
    type_ticket(desk, tickets[wang.id])
    answer(desk, "green", "Wang Fang")
    screenshot(desk, "door-checked-in")
    desk.fill("#door-search", "1001")
    desk.click("#door-results li button")
    answer(desk, "green", "Li Na")
    type_ticket(desk, tickets[wang.id])
    answer(desk, "orange", says["already"])
    screenshot(desk, "door-already")
    until(desk, "document.getElementById('door-checked-in').textContent === '2'")

    # Offline: both phones scan Zhang's ticket; the page says so at once.
    for phone in phones:
        phone.context.set_offline(True)
        until(
            phone,
            f"document.getElementById('door-network').textContent.includes({json.dumps(says['offline'])})",
        )
        type_ticket(phone, tickets[zhang.id])
        answer(phone, "green", "Zhang Wei")
        assert "1" in phone.inner_text("#door-network")
    screenshot(phones[0], "door-offline")
    queued = json.loads(phones[0].evaluate(f"localStorage.getItem('door:queue:{event.pk}')"))
    assert [item["offline"] for item in queued] == [True]
    assert Registration.objects.get(user_id=zhang.user.pk).status == "confirmed"

    # Back online, the first phone's queue uploads by itself...
    phones[0].context.set_offline(False)
    wait_until(
        lambda: Registration.objects.get(user_id=zhang.user.pk).status == "attended",
        message="the queued scan uploaded",
    )
    until(phones[0], f"localStorage.getItem('door:queue:{event.pk}') === '[]'")
    # ...and the same scan sent again is taken once.
    again = phones[0].evaluate(
        """([url, body]) => fetch(url, {method: 'POST',
            headers: {'Content-Type': 'application/json',
                      'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content},
            body: JSON.stringify(body)}).then(r => r.status)""",
        [f"{console_url}/console/events/{event.pk}/door/scans", queued[0]],
    )
    assert again == 201
    # The second phone's scan of the same ticket becomes a conflict, not a second award.
    phones[1].context.set_offline(False)
    wait_until(
        lambda: CheckInScan.objects(event_id=event.pk, outcome="conflict").count() == 1,
        message="the second device's conflict",
    )
    [conflict] = CheckInScan.objects(event_id=event.pk, outcome="conflict")
    assert conflict.reason == "already_checked_in" and conflict.user_id == zhang.user.pk
    attended = OutboxEvent.objects(type="event.attended")
    assert sorted(e.payload["user_id"] for e in attended) == sorted([wang.id, li.id, zhang.id])

    desk.goto(f"{console_url}/console/events/{event.pk}")
    assert "Zhang Wei" in desk.inner_text("main")
    screenshot(desk, "event-conflicts")
    desk.goto(f"{console_url}/console/events/{event.pk}/registrations")
    desk.fill("#q", "Zhang")
    until(desk, "document.querySelectorAll('#registration-rows tbody tr').length === 1")
    screenshot(desk, "registrations")

    # The event ends; the leader completes it.
    now = utcnow()
    Event.objects(pk=event.pk).update_one(
        set__starts_at=now - timedelta(hours=2), set__ends_at=now - timedelta(minutes=1)
    )
    desk.goto(f"{console_url}/console/events/{event.pk}")
    desk.click("form[action$='/complete'] button")
    desk.wait_for_selector(".badge.completed")

    # An owner rates it low: the follow-up is closed with a note.
    assert (
        api(
            console_url,
            "POST",
            f"/events/{event.pk}/feedback",
            wang,
            json={"score": 2, "recommend": 4, "comment": "Too crowded"},
        ).status_code
        == 201
    )
    desk.goto(f"{console_url}/console/events/{event.pk}/feedback")
    assert "Too crowded" in desk.inner_text("main")
    screenshot(desk, "feedback")
    desk.goto(f"{console_url}/console/follow-ups")
    screenshot(desk, "follow-ups")
    desk.fill("textarea[name=note]", "Called: next time two sessions.")
    desk.click("form[action$='/close'] button")
    desk.wait_for_selector(".flash.success")

    # Vehicles: one verified; the leader's own is refused with the API's reason.
    add_vehicle(wang.user, "LSJW74U93MZ100001", "smart #1")
    add_vehicle(leader.user, "LSJW74U93MZ100002", "smart #3")
    desk.goto(f"{console_url}/console/vehicles")
    screenshot(desk, "vehicles")
    desk.click("tr:has-text('Wang Fang') form[action$='/verify'] button")
    desk.wait_for_selector(".flash.success")
    desk.click("tr:has-text('LSJW74U93MZ100002') form[action$='/verify'] button")
    desk.wait_for_selector(".flash.error")
    assert load_caller(wang.id).user.verified_owner

    # Budget and scorecard, with charts.
    desk.goto(f"{console_url}/console/budget")
    assert desk.locator(".card .figure").count() == 5
    screenshot(desk, "budget")
    desk.goto(f"{console_url}/console/scorecard")
    assert desk.locator(".charts img").count() == 3
    assert desk.locator(".card .figure").first.inner_text().strip() != ""
    screenshot(desk, "scorecard")
    desk.goto(f"{console_url}/console/leader")
    screenshot(desk, "home")

    # Every page at phone size too.
    phone = phones[1]
    for name, path in (
        ("home", "/console/leader"),
        ("events", "/console/events"),
        ("event", f"/console/events/{event.pk}"),
        ("registrations", f"/console/events/{event.pk}/registrations"),
        ("feedback", f"/console/events/{event.pk}/feedback"),
        ("follow-ups", "/console/follow-ups?status=closed"),
        ("vehicles", "/console/vehicles"),
        ("budget", "/console/budget"),
        ("scorecard", "/console/scorecard"),
    ):
        phone.goto(f"{console_url}{path}")
        screenshot(phone, name)
    desk.goto(f"{console_url}/console/events")
    screenshot(desk, "events")
    # The console's pages carry no inline script and their policy says so.
    policy = requests.get(f"{console_url}/console/sign-in", timeout=10).headers[
        "Content-Security-Policy"
    ]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    # The door page the service worker kept opens with no network.
    phone.goto(f"{console_url}/console/events/{event.pk}/door")
    kept = phone.evaluate(
        "caches.open('console-door-v1').then(c => c.match(location.pathname)).then(r => r.text())"
    )
    assert 'id="door-ticket-input"' in kept
    phone.context.set_offline(True)
    phone.reload()
    phone.wait_for_selector("#door-ticket-input")
    until(
        phone, f"document.getElementById('door-network').textContent.includes('{says['offline']}')"
    )
    for page in (desk, *phones):
        page.context.close()
