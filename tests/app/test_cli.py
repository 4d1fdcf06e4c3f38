"""Operator commands, run through Flask's CLI runner against the real MongoDB."""

from __future__ import annotations

from app.outbox import OutboxEvent
from workers.models import DeadLetter, HandledEvent


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
