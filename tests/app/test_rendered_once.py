"""A keyed write's answer is rendered once, for the key's record and the response alike, even
below another flask-smorest decorator (which copies the view's notes, the declared schema
with them); and a view's argument schema is made once, not for every request. Counted
without patching anything (`calls_counted`)."""

from __future__ import annotations

import marshmallow as ma

from app.auth import load_caller
from app.idempotency import IdempotencyRecord
from app.web import as_documented, lean_dump
from events.listings import OwnRegistration
from events.models import CONFIRMED, WAITLISTED, Registration
from events.schemas import RegistrationSchema
from loyalty import rewards as redemptions
from loyalty.models import Redemption
from loyalty.schemas import RedemptionSchema
from tests.events.conftest import many_owners, new_event, register, register_all
from tests.loyalty.conftest import earn, keyed_redemptions, make_reward
from tests.support import calls_counted, make_person


def test_a_keyed_redemption_renders_its_answer_once_and_makes_no_schema(client):
    redeem = keyed_redemptions(client)
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


def test_a_redemption_s_lean_answer_is_what_its_schema_dumps(app):
    """`redeem` answers a view of what it wrote (`MadeRedemption`): dumped, the stored
    document itself, a pickup's city and the times never set (null) included."""
    owner = make_person("SZ")
    earn(owner.id, 1_000)
    schema = RedemptionSchema()
    for fulfillment in ("digital", "pickup"):
        reward = make_reward(cost=10, stock=10, fulfillment=fulfillment)
        redemption = redemptions.redeem(load_caller(owner.id).user, str(reward.pk))
        assert isinstance(redemption, redemptions.MadeRedemption)
        stored = Redemption.objects.get(pk=redemption.pk)
        assert lean_dump(schema)(redemption) == schema.dump(redemption) == schema.dump(stored)
        assert schema.dump(stored)["city_code"] == ("SZ" if fulfillment == "pickup" else None)


def test_a_registration_s_lean_answer_is_what_its_schema_dumps(client):
    """`register` answers a view of what it wrote (`OwnRegistration`), as `redeem` does:
    dumped, the stored document itself, confirmed and waitlisted (its position, the times
    never set) alike; over HTTP, the key's record holds the body answered, that dump."""
    leader = load_caller(make_person("SZ", role="circle_leader").id)
    seated, waiting = register_all(new_event(leader, capacity=1), many_owners(2))
    assert (seated.status, waiting.status) == (CONFIRMED, WAITLISTED)
    schema = RegistrationSchema()
    for made in (seated, waiting):
        assert isinstance(made, OwnRegistration)
        stored = Registration.objects.get(pk=made.pk)
        assert lean_dump(schema)(made) == schema.dump(made) == schema.dump(stored)
    assert schema.dump(waiting)["waitlist_position"] == 1
    assert schema.dump(waiting)["confirmed_at"] is None
    owner = many_owners(1)[0]
    answer = register(client, new_event(leader).pk, owner, **{"Idempotency-Key": "seat-me"})
    assert answer.status_code == 201, answer.json
    stored = Registration.objects.get(user_id=owner.user.pk)
    assert answer.json == schema.dump(stored)
    assert IdempotencyRecord.objects.get(key="seat-me").body == answer.get_data(as_text=True)
