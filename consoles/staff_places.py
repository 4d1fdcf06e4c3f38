"""Where a staff member works: the cities they lead and the city partners they work for
(an admin: every city and every partner under contract), and the leader's overview.

`GET /me` will carry the same (`grants`, `city_partners`); when its service lands, `places`
is the one function to point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from accounts import ownership
from accounts.services import CIRCLE_LEADER, city_timezones
from app.auth import Caller
from app.clock import utcnow
from events import feedback, listings
from events.models import OPEN, PUBLISHED
from partners import budget, services
from partners.scorecards import current_month

# How many of each list the leader's home shows (each links to its full page).
OVERVIEW_ROWS = 5


@dataclass
class Places:
    cities: list[str]
    # {id, name, city_code} of each partner the person works for (an admin: all running).
    partners: list[dict[str, Any]] = field(default_factory=list)


def places(staff: Caller) -> Places:
    cities = staff.cities_for(CIRCLE_LEADER)
    if cities is None:
        partners = [
            services.describe(partner)
            for partner in services.list_partners(None, None, 100)["items"]
            if services.is_running(partner)
        ]
        return Places(sorted(city_timezones()), partners)
    return Places(sorted(cities), [services.describe(p) for p in services.my_partners(staff)])


def partner_of(staff: Caller, partner_id: str | None) -> dict[str, Any] | None:
    """The partner a page is about: the one asked for (when the person may see it), else
    the first they work for."""
    found = places(staff).partners
    if partner_id:
        return next((p for p in found if str(p["id"]) == partner_id), None) or services.describe(
            services.partner_for(staff, partner_id)
        )
    return found[0] if found else None


def overview(staff: Caller) -> dict[str, Any]:
    """The leader's home: each partner's budget left this month, the events coming up (and
    those started but not completed), open follow-ups and vehicles waiting."""
    where = places(staff)
    budgets = [
        {
            "partner": partner,
            **budget.summary(partner["id"], current_month(partner["city_code"])),
        }
        for partner in where.partners
    ]
    since = utcnow() - timedelta(days=2)
    events = listings.managed_events(staff, None, PUBLISHED, None, 20)["items"]
    upcoming = [event for event in events if event["ends_at"] >= since][:OVERVIEW_ROWS]
    follow_ups = feedback.follow_ups(staff, None, OPEN, False, None, OVERVIEW_ROWS)
    queue = ownership.verification_queue(staff, "pending", None)
    return {
        "cities": where.cities,
        "budgets": budgets,
        "events": upcoming,
        "follow_ups": follow_ups["items"],
        "more_follow_ups": follow_ups["next_cursor"] is not None,
        "vehicles_waiting": queue.count(),
    }
