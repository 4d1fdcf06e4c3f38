"""A keyed write's answer is rendered once, for the key's record and the response alike, even
below another flask-smorest decorator (which copies the view's notes, the declared schema
with them); and a view's argument schema is made once, not for every request. Counted
without patching anything (`calls_counted`)."""

from __future__ import annotations

from datetime import timedelta

import marshmallow as ma

from app.auth import load_caller
from app.clock import utcnow
from app.web import as_documented, lean_dump
from events import registration, services
from events.schemas import RegistrationSchema
from loyalty import rewards as redemptions
from loyalty.schemas import RedemptionSchema
from tests.loyalty.conftest import earn, make_reward
from tests.support import calls_counted, make_person

API = "/api/v1"


def test_a_keyed_redemption_renders_its_answer_once_and_makes_no_schema(client):
    owner = make_person("SZ")
    earn(owner.id, 1_000)
    reward = make_reward(cost=10, stock=10)

    def redeem(key: str):
        return client.post(
            f"{API}/redemptions",
            json={"reward_id": str(reward.pk)},
            headers={**owner.headers, "Idempotency-Key": key},
        )

    assert redeem("first").status_code == 201  # a process's first request may make some
    with (
        calls_counted(as_documented) as rendered,
        calls_counted(ma.Schema.dump) as dumps,
        calls_counted(ma.Schema.__init__) as made,
    ):
        answer = redeem("second")
    assert answer.status_code == 201, answer.json
    # Dumped once, leanly (`lean_dump`, which checks the document's promise as it ends).
    assert (rendered, dumps) == ([1], [0])
    assert made == [0]
    replay = redeem("second")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_data() == answer.get_data()


def test_the_hot_writes_lean_answers_are_what_their_schemas_dump(app):
    """A registration (confirmed, then waitlisted) and a redemption as their services
    return them: `lean_dump` of each is `Schema.dump`'s answer."""
    leader = load_caller(make_person("SZ", role="circle_leader").id)
    starts_at = utcnow() + timedelta(days=2)
    event = services.create_event(
        leader,
        city_code="SZ",
        title="Coffee salon",
        venue="Brand space",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        capacity=1,
    )
    services.publish_event(leader, str(event.pk))
    seated, waiting = (
        registration.register(load_caller(make_person("SZ").id), str(event.pk)) for _ in range(2)
    )
    assert (seated.status, waiting.status) == ("confirmed", "waitlisted")
    owner = make_person("SZ")
    earn(owner.id, 1_000)
    redemption = redemptions.redeem(
        load_caller(owner.id).user, str(make_reward(cost=10, stock=10).pk)
    )
    for schema, result in [
        (RegistrationSchema(), seated),
        (RegistrationSchema(), waiting),
        (RedemptionSchema(), redemption),
    ]:
        assert lean_dump(schema)(result) == schema.dump(result)
