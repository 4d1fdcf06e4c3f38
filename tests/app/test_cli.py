"""Operator commands, run through Flask's CLI runner against the real MongoDB."""

from __future__ import annotations

import re

from app.handlers import HandledEvent
from app.outbox import OutboxEvent
from workers.models import DeadLetter


def test_init_db_drops_only_indexes_no_model_declares_when_asked(app):
    outbox = OutboxEvent._get_collection()
    markers = HandledEvent._get_collection()
    # What the release before the change-stream dispatcher left behind.
    outbox.create_index([("status", 1), ("occurred_at", 1)])
    markers.create_index("handled_at", expireAfterSeconds=30 * 24 * 3600)
    runner = app.test_cli_runner()
    try:
        kept = runner.invoke(args=["init-db"])
        assert kept.exit_code == 0 and "dropped" not in kept.output
        assert "status_1_occurred_at_1" in outbox.index_information()

        pruned = runner.invoke(args=["init-db", "--drop-undeclared"])
        assert pruned.exit_code == 0, pruned.output
        dropped = [line for line in pruned.output.splitlines() if line.startswith("dropped")]
        # Those two only: every model's declared indexes stay.
        assert sorted(dropped) == [
            "dropped handled_events.handled_at_1",
            "dropped outbox.status_1_occurred_at_1",
        ]
        assert list(outbox.index_information()) == ["_id_"]
        assert list(markers.index_information()) == ["_id_"]
        assert "message_id_1" in DeadLetter._get_collection().index_information()
    finally:
        for collection, name in ((outbox, "status_1_occurred_at_1"), (markers, "handled_at_1")):
            if name in collection.index_information():
                collection.drop_index(name)


def test_seed_demo_names_every_demo_account_and_its_password(app, client):
    from accounts.seed import DEMO_CITIES

    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    password = re.search(r"password '([^']+)'", result.output).group(1)
    accounts = re.findall(r"^\s+(\S+@\S+)\s+(\w+) in (\w+)$", result.output, re.MULTILINE)
    # A circle leader, an ambassador and two owners per city.
    assert len(accounts) == 4 * len(DEMO_CITIES)
    for email, role, city in accounts:
        login = client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, email
        me = client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {login.json['access_token']}"}
        )
        assert role in me.json["roles"] and me.json["city_code"] == city
