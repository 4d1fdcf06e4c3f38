"""Builders for community tests: seasoned owners (older than the new-account sandbox),
clubs made through the services, posts and reports through the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from accounts.models import User
from app.auth import load_caller
from app.clock import utcnow
from community import clubs
from community.models import Club
from tests.support import Person, make_person

API = "/api/v1"


def seasoned(person: Person) -> Person:
    """The account two days old: past the new-owner sandbox."""
    User.objects(pk=person.user.pk).update_one(set__created_at=utcnow() - timedelta(days=2))
    person.user.reload()
    return person


def owner(city: str = "SZ", **fields: Any) -> Person:
    return seasoned(make_person(city, **fields))


@pytest.fixture
def leader(app) -> Person:
    return make_person("SZ", role="circle_leader")


@pytest.fixture
def ambassador(app) -> Person:
    return make_person("SZ", role="ambassador")


@pytest.fixture
def admin(app) -> Person:
    return make_person("SZ", role="admin")


@pytest.fixture
def make_club(leader: Person) -> Callable[..., Club]:
    def build(members: tuple[Person, ...] = (), **fields: Any) -> Club:
        values = {"name": "Shenzhen owners", "kind": "city", "city_code": "SZ", **fields}
        club = clubs.create_club(load_caller(leader.id), **values)
        for member in members:
            clubs.join(load_caller(member.id), str(club.pk))
        return club

    return build


def post_in(client, club: Club, author: Person, body: str = "Hello club") -> dict:
    response = client.post(
        f"{API}/clubs/{club.pk}/posts", json={"body": body}, headers=author.headers
    )
    assert response.status_code == 201, response.json
    return response.json


def report(client, person: Person, target_id: str, target_type: str = "post"):
    return client.post(
        f"{API}/reports",
        json={"target_type": target_type, "target_id": target_id, "reason": "spam"},
        headers=person.headers,
    )
