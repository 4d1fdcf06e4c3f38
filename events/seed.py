"""Demo data for events: a few upcoming, published events in each demo city, organised by
that city's demo circle leader, and one held two days ago that the city's demo owners
attended and rated (one of them poorly, so a follow-up waits for the leader)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from accounts.seed import DEMO_CITIES, demo_leader, demo_owner
from app.auth import Caller
from app.clock import utcnow
from events import feedback, listings, registration, services, tickets
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
        zone = ZoneInfo(listings.city_zone(code))
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
        lines += _seed_past_event(code, name, organizer)
    return lines


def _seed_past_event(code: str, name: str, organizer: Caller) -> list[str]:
    """An event held two days ago, attended and rated by the city's demo owners. The
    services only schedule events ahead, so it is run within the hour and its times are
    then written back two days: history, as a demo needs it."""
    title = f"{name} owners' picnic"
    owners = [owner for owner in (demo_owner(code, 1), demo_owner(code, 2)) if owner]
    if Event.objects(city_code=code, title=title).first() or len(owners) < 2:
        return []
    starts_at = utcnow() + timedelta(minutes=30)
    event = services.create_event(
        organizer,
        city_code=code,
        title=title,
        venue=f"{name} riverside park",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=3),
        capacity=10,
        points_reward=50,
    )
    services.publish_event(organizer, str(event.pk))
    for owner in owners:
        registration.register(owner, str(event.pk))
        tickets.check_in(organizer, str(event.pk), user_id=owner.id)
    held_at = utcnow() - timedelta(days=2)
    Event.objects(pk=event.pk).update_one(
        set__starts_at=held_at,
        set__ends_at=held_at + timedelta(hours=3),
        set__registration_closes_at=held_at,
    )
    services.complete_event(organizer, str(event.pk))
    for owner, (score, recommend, comment) in zip(
        owners, ((5, 10, "Lovely afternoon."), (2, 4, "Too crowded at the grill.")), strict=False
    ):
        feedback.give_feedback(owner, str(event.pk), score, recommend, comment)
    return [f"events {code}: a past event, attended and rated (one follow-up open)"]
