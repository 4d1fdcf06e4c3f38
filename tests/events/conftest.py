"""Builders for events tests: events created through the services, and many owners at once
(the burst tests need hundreds; argon2 hashing each one would take most of a minute); the
body of a new event and a registration, for the tests over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from accounts.models import User
from accounts.sessions import start_session
from app import handlers as registry
from app.auth import Caller, load_caller
from app.clock import utcnow
from app.outbox import DomainEvent, OutboxEvent
from events import registration, services
from events.listings import OwnRegistration
from events.models import Event, Registration
from tests.support import Person, make_city, make_person

API = "/api/v1"


@pytest.fixture
def leader(app) -> Person:
    return make_person("SZ", role="circle_leader")


@pytest.fixture
def make_event(leader: Person) -> Callable[..., Event]:
    """An event in SZ, published unless `publish=False`, starting in two days."""

    def build(
        publish: bool = True,
        starts_in: timedelta = timedelta(days=2),
        organizer: Person | None = None,
        **fields: Any,
    ) -> Event:
        return new_event(
            load_caller((organizer or leader).id), starts_in, publish=publish, **fields
        )

    return build


def new_event(
    caller: Caller,
    starts_in: timedelta = timedelta(days=2),
    *,
    publish: bool = True,
    lasting: timedelta = timedelta(hours=2),
    **fields: Any,
) -> Event:
    """An event made through the services by `caller`: "Coffee salon" at the brand space in
    SZ, 10 seats, published unless `publish=False`; `fields` say otherwise."""
    starts_at = utcnow() + starts_in
    values = {
        "city_code": "SZ",
        "title": "Coffee salon",
        "venue": "Brand space",
        "starts_at": starts_at,
        "ends_at": starts_at + lasting,
        "capacity": 10,
        **fields,
    }
    event = services.create_event(caller, **values)
    return services.publish_event(caller, str(event.pk)) if publish else event


def many_owners(count: int, city: str = "SZ", verified_owner: bool = False) -> list[Person]:
    make_city(city)
    users = [
        User(
            id=ObjectId(),
            email=f"owner{ObjectId()}@example.com",
            password_hash="x",
            display_name=f"Owner {number}",
            city_code=city,
            verified_owner=verified_owner,
            referral_code=f"R{ObjectId()}",
        )
        for number in range(count)
    ]
    User._get_collection().insert_many([user.to_mongo() for user in users])
    return [Person(user, start_session(user.pk, "tests")["access_token"]) for user in users]


def as_caller(person: Person):
    return load_caller(person.id)


def deliver(event_type: str) -> None:
    """Run every handler of every recorded `event_type` event, as the workers would."""
    registry.load_handler_modules()
    for document in OutboxEvent._get_collection().find({"type": event_type}):
        event = DomainEvent.from_document(document)
        for handler in registry.handlers_for(event_type):
            registry.run_handler(handler, event)


def register_all(event: Event, people: list[Person]) -> list[OwnRegistration]:
    return [registration.register(as_caller(person), str(event.pk)) for person in people]


def statuses(event: Event) -> dict[str, tuple[str, int | None]]:
    return {
        str(r.user_id): (r.status, r.waitlist_position)
        for r in Registration.objects(event_id=event.pk)
    }


def event_body(**overrides):
    starts_at = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    return {
        "city_code": "SZ",
        "title": "Night drive",
        "venue": "Brand space",
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + timedelta(hours=3)).isoformat(),
        "registration_closes_at": (starts_at - timedelta(hours=2)).isoformat(),
        "capacity": 2,
        "points_reward": 120,
        **overrides,
    }


def register(client, event_id, person, **headers):
    return client.post(
        f"{API}/events/{event_id}/registrations", headers={**person.headers, **headers}
    )
