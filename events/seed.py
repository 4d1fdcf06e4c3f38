"""Demo data for events: a few upcoming, published events in each demo city, organised by
that city's demo circle leader."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from accounts.seed import DEMO_CITIES, demo_leader
from events import services
from events.models import Event

# (title, days from today, local start hour, hours long, capacity, verified owners only)
DEMO_EVENTS = (
    ("Owners' coffee salon", 3, 15, 2, 30, False),
    ("Night drive and photo walk", 10, 19, 3, 20, True),
)


def seed_events() -> list[str]:
    lines = []
    for code, name, _ in DEMO_CITIES:
        organizer = demo_leader(code)
        if organizer is None:
            continue
        zone = ZoneInfo(services.city_zone(code))
        today = datetime.now(zone).date()
        created = 0
        for title, days, hour, hours, capacity, verified_only in DEMO_EVENTS:
            full_title = f"{name} {title}"
            if Event.objects(city_code=code, title=full_title).first():
                continue
            starts_at = datetime.combine(today + timedelta(days=days), time(hour), zone)
            event = services.create_event(
                organizer,
                city_code=code,
                title=full_title,
                venue=f"{name} brand space",
                description=f"A demo event for {name} owners.",
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=hours),
                registration_closes_at=starts_at - timedelta(hours=2),
                capacity=capacity,
                points_reward=100,
                verified_owners_only=verified_only,
            )
            services.publish_event(organizer, str(event.pk))
            created += 1
        lines.append(f"events {code}: {created} new upcoming events")
    return lines
