"""Builders for city partner tests: an admin, partners contracted through the services, and
events run (published, attended, completed) at chosen local times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from app.clock import utcnow
from events import registration, services, tickets
from events.models import Event, Registration
from partners import services as partners
from partners.models import CityPartner
from tests.events.conftest import as_caller
from tests.support import Person, make_city, make_person

# Contracts that cover every month the tests use: the past one they build and today.
LONG_AGO = date(2026, 1, 1)
FAR_AHEAD = date(2030, 12, 31)


@pytest.fixture
def admin(app) -> Person:
    return make_person("SZ", role="admin")


@pytest.fixture
def leader(app) -> Person:
    return make_person("SZ", role="circle_leader")


@pytest.fixture
def make_partner(admin: Person) -> Callable[..., CityPartner]:
    def build(city_code: str = "SZ", **fields: Any) -> CityPartner:
        make_city(city_code)
        values = {
            "name": f"{city_code} Motors",
            "contact": "ops@example.com",
            "city_code": city_code,
            "contract_start": LONG_AGO,
            "contract_end": FAR_AHEAD,
            **fields,
        }
        return partners.create_partner(as_caller(admin), **values)

    return build


def draft(organizer: Person, capacity: int = 3, points_reward: int = 100, **fields: Any) -> Event:
    starts_at = fields.pop("starts_at", utcnow() + timedelta(hours=1))
    return services.create_event(
        as_caller(organizer),
        city_code="SZ",
        title="Coffee salon",
        venue="Brand space",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        capacity=capacity,
        points_reward=points_reward,
        **fields,
    )


def run_event(
    organizer: Person,
    attendees: list[Person],
    no_shows: list[Person] = (),  # type: ignore[assignment]
    **fields: Any,
) -> Event:
    """An event starting within the hour, published, with `attendees` checked in and
    `no_shows` registered, then ended (not yet completed: feedback opens at its end)."""
    event = draft(organizer, **fields)
    leader = as_caller(organizer)
    services.publish_event(leader, str(event.pk))
    for person in [*attendees, *no_shows]:
        registration.register(as_caller(person), str(event.pk))
    for person in attendees:
        tickets.check_in(leader, str(event.pk), user_id=person.id)
    now = utcnow()
    Event.objects(pk=event.pk).update_one(
        set__starts_at=now - timedelta(hours=2), set__ends_at=now - timedelta(minutes=1)
    )
    return event.reload()


def move_event(event: Event, starts_at: datetime, attended_at: datetime | None = None) -> None:
    """Set an event (and its check-ins) at a past time the services would not accept."""
    Event.objects(pk=event.pk).update_one(
        set__starts_at=starts_at,
        set__ends_at=starts_at + timedelta(hours=1),
        set__registration_closes_at=starts_at,
    )
    if attended_at is not None:
        Registration.objects(event_id=event.pk, attended_at__ne=None).update(
            set__attended_at=attended_at
        )
