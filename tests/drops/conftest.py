"""Builders for drops tests: drops made through the service, owners with points, the drop
closed by moving its times back (the job serves every entry once the close has settled),
and the job's passes run here as a worker runs them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from accounts.models import User
from app.auth import load_caller
from app.clock import utcnow
from drops import allocation, launch
from drops.models import Drop, Entry
from loyalty.models import Reward
from tests.events.conftest import as_caller, deliver, many_owners
from tests.events.conftest import leader as leader  # noqa: F401 - fixtures for event drops
from tests.events.conftest import make_event as make_event  # noqa: F401
from tests.loyalty.conftest import earn
from tests.support import Person, make_person

API = "/api/v1"


def drop_fields(target_type: str, target_id: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """A drop of 5, first come, open from now for an hour, but for `fields`."""
    now = utcnow()
    return {
        "target_type": target_type,
        "target_id": str(target_id),
        "opens_at": now,
        "closes_at": now + timedelta(hours=1),
        "quantity": 5,
        "mode": "first_come",
        **fields,
    }


def drop_body(target_type: str, target_id: Any, **fields: Any) -> dict[str, Any]:
    """`drop_fields` as a JSON body for POST /admin/drops."""
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in drop_fields(target_type, target_id, fields).items()
    }


@pytest.fixture
def admin(app) -> Person:
    return make_person("SZ", role="admin")


@pytest.fixture
def reward_drop(admin: Person) -> Callable[..., Drop]:
    """A drop of a new reward (cost 100, stock 20 unless given), open now for an hour."""

    def build(stock: int = 20, cost: int = 100, reward: dict | None = None, **fields: Any) -> Drop:
        made = Reward(
            title="Launch edition cap",
            cost=cost,
            stock=stock,
            fulfillment="shipping",
            **(reward or {}),
        ).save()
        return launch.create_drop(load_caller(admin.id), **drop_fields("reward", made.pk, fields))

    return build


@pytest.fixture
def event_drop(make_event, leader) -> Callable[..., Drop]:
    """A drop of a new event's seats in SZ, open now for an hour."""

    def build(capacity: int = 20, event: dict | None = None, **fields: Any) -> Drop:
        made = make_event(capacity=capacity, **(event or {}))
        return launch.create_drop(load_caller(leader.id), **drop_fields("event", made.pk, fields))

    return build


def entrants(count: int, points: int = 0, **fields: Any) -> list[Person]:
    """Verified owners of SZ settled there a year, each with `points`."""
    people = many_owners(count, verified_owner=True)
    User.objects(pk__in=[person.user.pk for person in people]).update(
        set__city_since=utcnow() - timedelta(days=365), **fields
    )
    for person in people:
        person.user.reload()
        if points:
            earn(person.id, points)
    return people


def enter_all(drop: Drop, people: list[Person]) -> None:
    from drops.entries import enter

    for person in people:
        enter(as_caller(person), str(drop.pk))


def close(drop: Drop) -> None:
    """Move the drop's close back beyond the settle time: every entry is then in, and the
    job serves them all. Processes keep a drop's rules, so this one forgets them."""
    closed = utcnow() - allocation.settle_time() - timedelta(seconds=1)
    Drop.objects(pk=drop.pk).update_one(
        set__closes_at=closed, set__opens_at=min(drop.opens_at, closed - timedelta(seconds=1))
    )
    launch._rules.pop(drop.pk, None)
    drop.reload()


def run_job(drop: Drop, passes: int = 50) -> None:
    """The drop's job, pass after pass as the worker would, until it stops; then the
    handler that tells entrants. One chain: every call takes up the drop's lease."""
    token = f"tests:{drop.pk}"
    for _ in range(passes):
        if allocation.run(drop.pk, token) is None:
            break
    deliver("drop.entries_decided")
    drop.reload()


def outcomes(drop: Drop) -> dict[ObjectId, str]:
    return {entry.user_id: entry.status for entry in Entry.objects(drop_id=drop.pk)}
