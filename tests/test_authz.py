"""The authorization table (tests/authz_table.py) against the served OpenAPI document and
the running API: every operation has a row, and for every row each kind of caller is
served or refused as the row says."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from accounts.models import AMBASSADOR, CIRCLE_LEADER, RoleGrant, User
from accounts.ownership import add_vehicle
from app.auth import load_caller
from app.clock import utcnow
from community import clubs, moderation, posts, words
from community.models import APPROVAL, CITY_CLUB
from drops.entries import enter
from drops.launch import create_drop
from events import registration
from events.models import ATTENDED, COMPLETED, Event, FollowUp, Registration
from loyalty import partner_systems, statements
from loyalty.adjustments import adjust
from loyalty.models import ReconciliationRun, Reward
from loyalty.rewards import redeem
from notifications.models import Notification
from partners.services import contract_partner
from tests.authz_table import (
    ACCESS,
    ADMIN,
    ANONYMOUS,
    CALLERS,
    LEADER,
    MODERATOR,
    OTHER_LEADER,
    OTHER_OWNER,
    OWNER,
    SCOPED_LISTS,
)
from tests.authz_table import (
    AMBASSADOR as AMBASSADOR_CALLER,
)
from tests.conftest import Worlds, empty_database
from tests.events.conftest import new_event
from tests.support import Person, make_city, make_person
from workers.models import DeadLetter

_numbers = itertools.count(1)
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def served_operations(app) -> dict[str, dict[str, Any]]:
    """The served document's operations by "METHOD path", read once per module."""
    spec = app.test_client().get("/api/v1/openapi.json").json
    return {
        f"{method.upper()} {path}": operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_every_served_operation_has_a_row_and_every_row_an_operation(served_operations):
    served = set(served_operations)
    assert sorted(served - set(ACCESS)) == [], "operations without a row in tests/authz_table.py"
    assert sorted(set(ACCESS) - served) == [], "rows for operations the API does not serve"


# Where two paths give one parameter name different meanings.
PATH_IDS: dict[str, dict[str, str]] = {
    "/api/v1/admin/earning-rules/{code}": {"code": "event.attended"},
}


# Required query arguments, read (like bodies) before the service checks roles.
QUERIES = {
    "GET /api/v1/admin/scorecards": {"month": utcnow().strftime("%Y-%m")},
    "GET /api/v1/admin/scorecards.csv": {"month": utcnow().strftime("%Y-%m")},
    "GET /api/v1/admin/partners/{ecosystem_partner_id}/settlement": {
        "month": utcnow().strftime("%Y-%m")
    },
    "GET /api/v1/admin/partners/{ecosystem_partner_id}/settlement.csv": {
        "month": utcnow().strftime("%Y-%m")
    },
}


@dataclass
class World:
    """Who calls, and the things the paths name, all in SZ and all the owner's."""

    people: dict[str, Person]
    ids: dict[str, str]

    def path(self, template: str) -> str:
        ids = {**self.ids, **PATH_IDS.get(template, {})}
        return re.sub(r"\{(\w+)\}", lambda match: ids[match.group(1)], template)

    def headers(self, caller: str) -> dict[str, str]:
        return {} if caller == ANONYMOUS else self.people[caller].headers


def build_world() -> World:
    make_city("SZ")
    make_city("CD", timezone="Asia/Shanghai")
    people = {
        OWNER: make_person("SZ", verified_owner=True),
        OTHER_OWNER: make_person("SZ", verified_owner=True),
        LEADER: make_person("SZ", role=CIRCLE_LEADER),
        OTHER_LEADER: make_person("CD", role=CIRCLE_LEADER),
        AMBASSADOR_CALLER: make_person("SZ", role=AMBASSADOR),
        MODERATOR: make_person("SZ", verified_owner=True),
        ADMIN: make_person("SZ", role="admin"),
    }
    owner = people[OWNER]
    admin = load_caller(people[ADMIN].user.pk)
    leader = load_caller(people[LEADER].user.pk)
    vehicle = add_vehicle(owner.user, f"LSJW74U93MZ{next(_numbers):06d}", "smart #1")
    event = new_event(leader, timedelta(hours=1))
    registration.register(load_caller(owner.user.pk), str(event.pk))
    credit = adjust(admin, owner.id, 500, "welcome")
    reward = Reward(title="Mug", cost=100, stock=10, fulfillment="pickup").save()
    redemption = redeem(User.objects.get(pk=owner.user.pk), str(reward.pk))
    notification = Notification(
        user_id=owner.user.pk,
        kind="events",
        template="test",
        title="Hello",
        body="Hello",
        dedupe_key=f"authz:{next(_numbers)}",
    ).save()
    letter = DeadLetter(
        message_id=f"authz{next(_numbers)}",
        queue_name="backbone",
        actor_name="dead_letters.record",
        args=[{}, {}],
        error="boom",
    ).save()
    ids = {
        "session_id": User.objects.get(pk=owner.user.pk).sessions[0].sid,
        "grant_id": str(RoleGrant.objects(user_id=people[OTHER_LEADER].user.pk).first().pk),
        "vehicle_id": str(vehicle.pk),
        "event_id": str(event.pk),
        "entry_id": str(credit["id"] if "id" in credit else credit["_id"]),
        "reward_id": str(reward.pk),
        "redemption_id": str(redemption.pk),
        "notification_id": str(notification.pk),
        "dead_letter_id": str(letter.pk),
        "run_id": str(ReconciliationRun().save().pk),
        "code": "SZ",
        **_community(people),
        **_partners(people),
        **_ecosystem_partner(people, admin),
        **_drops(people),
    }
    world = World(people, ids)
    # The moderator paths name an active member; the membership paths, the applicant.
    PATH_IDS["/api/v1/clubs/{club_id}/moderators/{user_id}"] = {"user_id": people[OWNER].id}
    # Feedback is about an event that is over, which the owner attended.
    PATH_IDS["/api/v1/events/{event_id}/feedback"] = {"event_id": ids["past_event_id"]}
    return world


def _partners(people: dict[str, Person]) -> dict[str, str]:
    """SZ's city partner (its leader works for it), an event of SZ that ended yesterday,
    which the owner attended, and an open follow-up of a low score there."""
    today = utcnow().date()
    partner = contract_partner(
        name="SZ Motors",
        contact="ops@szmotors.example.com",
        city_code="SZ",
        contract_start=today - timedelta(days=30),
        contract_end=today + timedelta(days=365),
    )
    ended = utcnow() - timedelta(days=1)
    past = Event(
        city_code="SZ",
        organizer_id=people[LEADER].user.pk,
        title="Photo walk",
        venue="Harbour",
        starts_at=ended - timedelta(hours=2),
        ends_at=ended,
        registration_closes_at=ended - timedelta(hours=2),
        capacity=10,
        seats_left=9,
        status=COMPLETED,
    ).save()
    Registration(
        event_id=past.pk,
        user_id=people[OWNER].user.pk,
        city_code="SZ",
        status=ATTENDED,
        attended_at=ended - timedelta(hours=1),
    ).save()
    follow_up = FollowUp(
        feedback_id=ObjectId(),
        event_id=past.pk,
        user_id=people[OTHER_OWNER].user.pk,
        city_code="SZ",
        city_partner_id=partner.pk,
        score=1,
    ).save()
    return {
        "partner_id": str(partner.pk),
        "past_event_id": str(past.pk),
        "follow_up_id": str(follow_up.pk),
    }


def _ecosystem_partner(people: dict[str, Person], admin: Any) -> dict[str, str]:
    """An ecosystem partner, and its statement of a day two days ago naming a credit to the
    owner that we lack: one open exception."""
    partner, _ = partner_systems.create_partner(admin, "ChargeCo", 500)
    day = (utcnow() - timedelta(days=2)).date()
    received = statements.receive_statement(
        partner,
        day=day,
        count=1,
        total_credit=10,
        total_debit=0,
        lines=[
            {
                "partner_txn_id": "t1",
                "member_id": people[OWNER].id,
                "kind": "credit",
                "points": 10,
                "occurred_at": utcnow() - timedelta(days=2),
            }
        ],
        body=b"{}",
    )
    statements.match_statement(received["_id"], str(received["upload_id"]))
    [exception] = statements.exceptions_of(received)
    return {
        "ecosystem_partner_id": str(partner.pk),
        "day": day.isoformat(),
        "exception_id": exception.pk,
    }


def _drops(people: dict[str, Person]) -> dict[str, str]:
    """An open drop of an SZ event's seats, which the owner entered."""
    leader = load_caller(people[LEADER].user.pk)
    # SZ's partner has no budget in this world: no points for attending.
    event = new_event(leader, title="Launch night", points_reward=0)
    drop = create_drop(
        leader,
        target_type="event",
        target_id=str(event.pk),
        opens_at=utcnow(),
        closes_at=utcnow() + timedelta(hours=1),
        quantity=5,
        mode="draw",
    )
    enter(load_caller(people[OWNER].user.pk), str(drop.pk))
    return {"drop_id": str(drop.pk)}


def _community(people: dict[str, Person]) -> dict[str, str]:
    """A city club of SZ that approves its members: the owner and the moderator active,
    an applicant pending; the owner's post and comment; a listed word."""

    def acting(person: Person):
        return load_caller(person.user.pk)

    leader = acting(people[LEADER])
    club = clubs.create_club(
        leader, name="SZ owners", kind=CITY_CLUB, city_code="SZ", join_policy=APPROVAL
    )
    club_id = str(club.pk)
    applicant = make_person("SZ", verified_owner=True)
    for person in (people[OWNER], people[MODERATOR], applicant):
        clubs.join(acting(person), club_id)
    for person in (people[OWNER], people[MODERATOR]):
        clubs.approve(leader, club_id, person.id)
    clubs.set_moderator(leader, club_id, people[MODERATOR].id, True)
    post = posts.publish_post(acting(people[OWNER]), club_id, "Hello from the coast road", [])
    comment = posts.add_comment(acting(people[OWNER]), str(post.pk), "Nice")
    # Letters only, and a world of its own each time (a DELETE may need a second).
    suffix = "".join(chr(ord("a") + int(digit)) for digit in str(next(_numbers)))
    word = words.add_word(acting(people[ADMIN]), f"forbidden{suffix}")
    # A decision of the ambassador's, for the path that undoes it.
    kept = moderation.take_action(
        acting(people[AMBASSADOR_CALLER]), "comment", str(comment.pk), "keep", "Fine"
    )
    return {
        "club_id": club_id,
        "user_id": applicant.id,
        "post_id": str(post.pk),
        "comment_id": str(comment.pk),
        "word_id": str(word.pk),
        "target_type": "post",
        "target_id": str(post.pk),
        "action_id": str(kept.pk),
    }


def body_for(operation: str, world: World) -> dict[str, Any] | None:
    """A valid body where a refused caller must be refused for who they are, not for a
    body that would not validate (arguments are read before the service checks roles)."""
    owner = world.people[OWNER]
    soon = utcnow() + timedelta(days=3)
    bodies: dict[str, Any] = {
        "POST /api/v1/auth/register": {
            "email": f"new{next(_numbers)}@example.com",
            "password": "password-123",
            "display_name": "New owner",
            "city_code": "SZ",
        },
        "POST /api/v1/auth/login": {"email": owner.user.email, "password": "password-123"},
        "POST /api/v1/auth/password-reset": {"email": owner.user.email},
        "POST /api/v1/admin/role-grants": {
            "user_id": world.people[OTHER_OWNER].id,
            "role": AMBASSADOR,
            "city_codes": ["SZ"],
        },
        "POST /api/v1/cities": {"code": "GZ", "name": "Guangzhou", "province": "Guangdong"},
        "POST /api/v1/admin/cities": {"code": "GZ", "name": "Guangzhou", "province": "Guangdong"},
        "POST /api/v1/vehicles/{vehicle_id}/reject": {"reason": "The photo is blurred."},
        "POST /api/v1/admin/points/adjustments": {
            "user_id": owner.id,
            "amount": 10,
            "reason": "Goodwill",
        },
        "POST /api/v1/admin/points/entries/{entry_id}/reversal": {"reason": "A mistake"},
        "PUT /api/v1/admin/earning-rules/{code}": {"points": 120},
        "POST /api/v1/rewards": {"title": "Cap", "cost": 50, "stock": 5, "fulfillment": "digital"},
        "PATCH /api/v1/rewards/{reward_id}": {"stock": 20},
        "POST /api/v1/admin/rewards": {
            "title": "Cap",
            "cost": 50,
            "stock": 5,
            "fulfillment": "digital",
        },
        "PATCH /api/v1/admin/rewards/{reward_id}": {"stock": 20},
        "POST /api/v1/redemptions": {"reward_id": world.ids["reward_id"], "quantity": 1},
        "POST /api/v1/admin/partners": {"name": "Charger", "max_points_per_txn": 100},
        "POST /api/v1/partner/points/credits": {
            "member_id": owner.id,
            "points": 10,
            "partner_txn_id": "t1",
        },
        "POST /api/v1/events": {
            "city_code": "SZ",
            "title": "Drive",
            "venue": "Coast road",
            "starts_at": soon.isoformat(),
            "ends_at": (soon + timedelta(hours=2)).isoformat(),
            "capacity": 10,
        },
        "PATCH /api/v1/events/{event_id}": {"title": "Coffee salon, again"},
        "POST /api/v1/events/{event_id}/cancel": {"reason": "Rain"},
        "POST /api/v1/events/{event_id}/check-ins": {"user_id": owner.id},
        "POST /api/v1/clubs": {"name": "Campers", "kind": "interest", "city_code": "SZ"},
        "PATCH /api/v1/clubs/{club_id}": {"description": "Owners of Shenzhen"},
        "POST /api/v1/clubs/{club_id}/posts": {"body": "A drive on Sunday"},
        "POST /api/v1/posts/{post_id}/comments": {"body": "Count me in"},
        "POST /api/v1/reports": {
            "target_type": "post",
            "target_id": world.ids["post_id"],
            "reason": "Spam",
        },
        "POST /api/v1/moderation/actions": {
            "target_type": "post",
            "target_id": world.ids["post_id"],
            "action": "hide",
            "reason": "Off topic",
        },
        "POST /api/v1/admin/sensitive-words": {"word": "anotherword"},
        "POST /api/v1/admin/sensitive-words/test": {"text": "Is this fine?"},
        "POST /api/v1/moderation/actions/{action_id}/undo": {},
        "POST /api/v1/moderation/bulk-actions": {
            "target_type": "post",
            "action": "keep",
            "reason": "Fine",
            "items": [{"target_id": world.ids["post_id"]}],
        },
        "POST /api/v1/admin/city-partners": {
            "name": "CD Motors",
            "contact": "ops@cdmotors.example.com",
            "city_code": "CD",
            "contract_start": utcnow().date().isoformat(),
            "contract_end": (utcnow() + timedelta(days=365)).date().isoformat(),
        },
        "PATCH /api/v1/admin/city-partners/{partner_id}": {"contact": "hq@szmotors.example.com"},
        "POST /api/v1/admin/city-partners/{partner_id}/budget-allocations": {
            "month": utcnow().strftime("%Y-%m"),
            "points": 1000,
        },
        "POST /api/v1/events/{event_id}/feedback": {"score": 2, "recommend": 3},
        "POST /api/v1/follow-ups/{follow_up_id}/close": {"note": "Called the owner back."},
        "POST /api/v1/me/pay-codes": {"max_points": 10},
        "PATCH /api/v1/admin/partners/{ecosystem_partner_id}": {"daily_credit_cap": 1000},
        "POST /api/v1/admin/statement-exceptions/{exception_id}/resolution": {
            "action": "keep_ours",
            "reason": "Not ours to pay",
        },
        "POST /api/v1/admin/partners/{ecosystem_partner_id}/settlement/close": {
            "month": (utcnow().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        },
        "POST /api/v1/admin/drops": {
            "target_type": "event",
            "target_id": world.ids["event_id"],
            "opens_at": utcnow().isoformat(),
            "closes_at": (utcnow() + timedelta(minutes=30)).isoformat(),
            "quantity": 2,
            "mode": "first_come",
        },
    }
    return bodies.get(operation)


@pytest.fixture
def world(worlds: Worlds) -> World:
    return worlds.restored(build_world)


@pytest.mark.parametrize("operation", sorted(ACCESS))
def test_each_caller_is_served_or_refused_as_the_table_says(
    client, operation, world, worlds, served_operations
):
    method, template = operation.split(" ", 1)
    documented = served_operations[operation]["responses"]
    allowed = ACCESS[operation]
    # The refused first: a refusal changes nothing, while a served call may (a logout, a
    # cancelled event) and must not decide the others' answers.
    order = [c for c in CALLERS if c not in allowed] + [c for c in CALLERS if c in allowed]
    answers = {}
    for caller in order:
        if caller in allowed and method == "DELETE" and answers:
            # A served DELETE took the thing away: the next caller gets a world of its own.
            empty_database()
            worlds.restored(build_world)
        body = body_for(operation, world)
        response = client.open(
            world.path(template),
            method=method,
            json=body,
            query_string=QUERIES.get(operation),
            headers=world.headers(caller),
        )
        answers[caller] = response.status_code
        if caller in allowed:
            assert response.status_code not in (401, 403, 404), (caller, response.json)
            assert response.status_code < 500, (caller, response.json)
        elif caller == ANONYMOUS or not allowed:
            assert response.status_code == 401, (caller, response.json)
        else:
            assert response.status_code in (403, 404), (caller, response.status_code)
            assert str(response.status_code) in documented, (caller, response.status_code)


@pytest.mark.parametrize("operation", sorted(SCOPED_LISTS))
def test_a_list_asked_for_a_city_outside_the_callers_scope_is_forbidden(
    client, operation, served_operations
):
    make_city("SZ")
    make_city("CD")
    elsewhere = make_person("CD", role=SCOPED_LISTS[operation])
    path = operation.split(" ", 1)[1]
    refused = client.get(path, query_string={"city": "SZ"}, headers=elsewhere.headers)
    assert refused.status_code == 403 and refused.json["error"] == "forbidden", refused.json
    assert "403" in served_operations[operation]["responses"]
    own = client.get(path, query_string={"city": "CD"}, headers=elsewhere.headers)
    assert own.status_code == 200, own.json
