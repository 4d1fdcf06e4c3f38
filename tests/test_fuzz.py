"""Bounded API fuzzing with schemathesis: requests generated from the served OpenAPI document
for every operation, valid ones and invalid ones, as an owner, a circle leader, an
ambassador and an admin, against a small world of real data (path ids point at it half of
the time). No answer may be a 5xx, carry a status the document does not list for the
operation, or a body outside the documented schema.

`make test` runs few examples with a fixed seed; `make fuzz` runs many more, with fresh
random data each time (FUZZ_EXAMPLES, FUZZ_SEED_RANDOMLY).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts import ownership
from app.auth import load_caller
from app.clock import utcnow
from app.db import transaction
from community import clubs, moderation, posts, words
from drops.launch import create_drop
from events import registration
from events import services as events
from loyalty import partner_systems, reconciliation, rewards, rules
from loyalty.models import Reward
from notifications.models import Notification
from notifications.services import notify
from tests.support import Person, make_city, make_person

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
DERANDOMIZE = not os.environ.get("FUZZ_SEED_RANDOMLY")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Ending the caller's own session or account would leave the rest of a run unauthenticated;
# both are tested on their own (tests/accounts).
NOT_FUZZED = {"postLogout", "deleteMe"}


@dataclass
class World:
    people: dict[str, Person]
    ids: dict[str, str]


@pytest.fixture
def world(app) -> World:
    """One of each role in SZ, and one of each thing a path names."""
    make_city("SZ")
    make_city("CD")
    people = {
        "owner": make_person("SZ", verified_owner=True),
        "leader": make_person("SZ", role="circle_leader"),
        "ambassador": make_person("SZ", role="ambassador"),
        "admin": make_person("SZ", role="admin"),
    }
    owner, leader, admin = (load_caller(people[r].id) for r in ("owner", "leader", "admin"))
    assert owner and leader and admin
    starts_at = utcnow() + timedelta(days=3)
    event = events.create_event(
        leader,
        city_code="SZ",
        title="Coffee salon",
        venue="Brand space",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        capacity=5,
    )
    events.publish_event(leader, str(event.pk))
    registration.register(owner, str(event.pk))
    vehicle = ownership.add_vehicle(owner.user, vin="LSVAB2BM1CN000001", model="ID.7")
    earned = transaction(
        lambda session: rules.award(
            session, owner.id, "vehicle.verified", key="fuzz", source={}, points=5000
        )
    )
    assert earned is not None
    reward = rewards.create_reward(
        admin, {"title": "Mug", "cost": 100, "stock": 50, "fulfillment": "pickup"}
    )
    redemption = rewards.redeem(owner.user, str(reward.pk))
    notify(
        None,
        owner.id,
        "events",
        "event_cancelled",
        {"title": "Salon", "starts_at": "soon", "reason": "rain"},
        "fuzz",
    )
    partner, _ = partner_systems.create_partner(admin, name="Charging", max_points_per_txn=500)
    run = reconciliation.request_reconciliation(admin)
    grant = people["leader"].user.grants[0]
    club = clubs.create_club(leader, name="Shenzhen drivers", kind="city", city_code="SZ")
    clubs.join(owner, str(club.pk))
    post = posts.publish_post(owner, str(club.pk), "Sunrise run to Dameisha", [])
    comment = posts.add_comment(owner, str(post.pk), "Count me in")
    word = words.add_word(admin, "scam")
    kept = moderation.take_action(
        load_caller(people["ambassador"].id), "comment", str(comment.pk), "keep", "Fine"
    )
    drop = create_drop(
        admin,
        target_type="reward",
        target_id=str(Reward(title="Cap", cost=100, stock=50, fulfillment="digital").save().pk),
        opens_at=utcnow(),
        closes_at=utcnow() + timedelta(hours=1),
        quantity=5,
        mode="draw",
    )
    return World(
        people,
        {
            "event_id": str(event.pk),
            "vehicle_id": str(vehicle.pk),
            "reward_id": str(reward.pk),
            "redemption_id": str(redemption.pk),
            "code": "SZ",
            "run_id": str(run.pk),
            "grant_id": str(grant.grant_id),
            "partner_id": str(partner.pk),
            "ecosystem_partner_id": str(partner.pk),
            "user_id": people["owner"].id,
            "club_id": str(club.pk),
            "post_id": str(post.pk),
            "comment_id": str(comment.pk),
            "word_id": str(word.pk),
            "target_type": "post",
            "target_id": str(post.pk),
            "action_id": str(kept.pk),
            "entry_id": str(earned["_id"]),
            "notification_id": str(Notification.objects(user_id=owner.user.pk).first().pk),
            "drop_id": str(drop.pk),
        },
    )


def operations(schema: Any) -> Iterator[Any]:
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.definition.raw.get("operationId") not in NOT_FUZZED:
            yield operation


@pytest.mark.slow
@pytest.mark.parametrize("role", ["owner", "leader", "ambassador", "admin"])
def test_every_operation_keeps_its_documented_contract(app, world: World, role: str):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = world.people[role].headers

    @settings(
        max_examples=EXAMPLES,
        derandomize=DERANDOMIZE,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fuzz(operation: Any, data: st.DataObject) -> None:
        names = {p.name for p in operation.path_parameters}
        known = {name: world.ids[name] for name in names if name in world.ids}
        strategies = [operation.as_strategy(mode) for mode in GenerationMode]
        if known:
            strategies.append(operation.as_strategy(path_parameters=known))
        case = data.draw(st.one_of(strategies))
        case.call_and_validate(headers=headers, checks=CHECKS)

    for operation in operations(schema):
        fuzz(operation)
