"""A keyed write's answer is rendered once, for the key's record and the response alike, even
below another flask-smorest decorator (which copies the view's notes, the declared schema
with them); and a view's argument schema is made once, not for every request. Counted
without patching anything (`calls_counted`)."""

from __future__ import annotations

import marshmallow as ma

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
    with calls_counted(ma.Schema.dump) as dumps, calls_counted(ma.Schema.__init__) as made:
        answer = redeem("second")
    assert answer.status_code == 201, answer.json
    assert dumps == [1]
    assert made == [0]
    replay = redeem("second")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_data() == answer.get_data()
