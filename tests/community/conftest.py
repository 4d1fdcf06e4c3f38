"""Builders for community tests: seasoned owners (older than the new-account sandbox),
clubs made through the services, posts and reports through the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from accounts.models import User
from app.auth import load_caller
from app.clock import utcnow
from community import clubs, feed
from community.models import VISIBLE, Club, Post
from tests.support import Person, make_person

API = "/api/v1"


def seasoned(person: Person) -> Person:
    """The account two days old: past the new-owner sandbox."""
    User.objects(pk=person.user.pk).update_one(set__created_at=utcnow() - timedelta(days=2))
    person.user.reload()
    return person


def owner(city: str = "SZ", **fields: Any) -> Person:
    return seasoned(make_person(city, **fields))


def established(club: Club | None = None, verified: bool = True, **fields: Any) -> Person:
    """An owner past the reporters' probation (a month old), a verified owner unless told
    otherwise, and an active member of `club`: a reporter whose reports weigh."""
    person = make_person("SZ", verified_owner=verified, **fields)
    User.objects(pk=person.user.pk).update_one(set__created_at=utcnow() - timedelta(days=30))
    person.user.reload()
    if club is not None:
        clubs.join(load_caller(person.id), str(club.pk))
    return person


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


# --- data as earlier releases stored it -----------------------------------------------


def made_at(moment) -> ObjectId:
    """A unique id whose time part is `moment` (the rest from a fresh id)."""
    return ObjectId(ObjectId.from_datetime(moment).binary[:4] + ObjectId().binary[4:])


def old_club(days_old: int) -> Club:
    club = Club(
        id=made_at(utcnow() - timedelta(days=days_old)),
        name=f"Old {days_old}",
        kind="interest",
        city_code="SZ",
    )
    club.save(force_insert=True)
    return club


def stored_post(club: Club | ObjectId, days_ago: float, status: str = VISIBLE) -> dict:
    """A post as an earlier release stored it: uncounted until the migration runs."""
    club_id = club.pk if isinstance(club, Club) else club
    post_id = made_at(utcnow() - timedelta(days=days_ago))
    return Post(
        id=post_id,
        club_id=club_id,
        city_code="SZ",
        author_name="x",
        body=f"{days_ago} days ago",
        status=status,
        feed_key=feed.feed_key(club_id, post_id, status),
    ).to_mongo()


def old_post(club: Club | ObjectId, days_ago: float, status: str = VISIBLE) -> str:
    return str(Post._get_collection().insert_one(stored_post(club, days_ago, status)).inserted_id)
