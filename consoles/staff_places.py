"""Where a staff member works: the cities they lead and the city partners they work for
(an admin: every city and every partner under contract), and the leader's overview.

`GET /me` will carry the same (`grants`, `city_partners`); when its service lands,
`cities_of` and `partners_of` are the functions to point at it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from accounts import ownership
from accounts.services import CIRCLE_LEADER, city_timezones
from app.auth import Caller
from app.clock import utcnow
from app.errors import NotFound
from events import feedback, listings
from events.models import OPEN, PUBLISHED
from partners import budget, services
from partners.models import CityPartner
from partners.scorecards import current_month

# How many of each list the leader's home shows (each links to its full page).
OVERVIEW_ROWS = 5


def cities_of(staff: Caller) -> list[str]:
    """The cities the caller leads (an admin: every city), with no read: a leader's come
    with their account, every city's with the time zones each process keeps."""
    cities = staff.cities_for(CIRCLE_LEADER)
    return sorted(city_timezones() if cities is None else cities)


def partners_of(staff: Caller) -> list[CityPartner]:
    """The partners the caller works for (an admin: every partner not ended)."""
    return services.my_partners(staff)


def summary(partner: CityPartner) -> dict[str, Any]:
    return {"id": partner.pk, "name": partner.name, "city_code": partner.city_code}


def partner_of(staff: Caller, partner_id: str | None) -> tuple[CityPartner, list[CityPartner]]:
    """The partner a page is about, and those the caller may pick from: the one asked for
    among them, else the first (404 when the caller works for none, or not for it)."""
    found = partners_of(staff)
    chosen = next((p for p in found if str(p.pk) == partner_id), None) if partner_id else None
    if chosen is None and (partner_id or not found):
        raise NotFound(message="You work for no such city partner.")
    return chosen or found[0], found


def overview(staff: Caller) -> dict[str, Any]:
    """The leader's home: each partner's budget left this month, the events coming up (and
    those started but not completed), open follow-ups and vehicles waiting."""
    budgets = [
        {
            "partner": summary(partner),
            **budget.summary(partner.pk, current_month(partner.city_code)),
        }
        for partner in partners_of(staff)
    ]
    since = utcnow() - timedelta(days=2)
    events = listings.managed_events(staff, None, PUBLISHED, None, 20)["items"]
    upcoming = [event for event in events if event["ends_at"] >= since][:OVERVIEW_ROWS]
    follow_ups = feedback.follow_ups(staff, None, OPEN, False, None, OVERVIEW_ROWS)
    queue = ownership.verification_queue(staff, "pending", None)
    return {
        "cities": cities_of(staff),
        "budgets": budgets,
        "events": upcoming,
        "follow_ups": follow_ups["items"],
        "more_follow_ups": follow_ups["next_cursor"] is not None,
        "vehicles_waiting": queue.count(),
    }
