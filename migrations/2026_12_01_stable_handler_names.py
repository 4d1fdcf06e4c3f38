"""2026-12-01: domain event handlers got stable names.

Until this release a handler was known by its Python path ("loyalty.tasks.welcome_points"),
and that path is stored in the marker of every event it handled ("<event id>:<path>"), in
queued messages and in dead letters. Handlers now declare a name of their own
("loyalty.welcome_points"), so markers under the old paths would no longer be found: an
event delivered again (a redelivery, or the dispatcher's catch-up, which resends up to a
week back) would be handled a second time.

This copies every marker to its new key (the old one stays until the dispatcher sweeps
it) and renames the handler in the dead letters not yet replayed, so replaying them reaches
the renamed handler. Run it after stopping the previous release's workers and dispatcher
and before starting this release's; run it again once the queues have drained, to rename
the dead letters of messages that were still queued under the old names (this release
parks them at once), then replay those. Running it again changes nothing else.

    python -m migrations.2026_12_01_stable_handler_names
"""

from __future__ import annotations

from pymongo import UpdateOne

from app.handlers import HandledEvent
from workers.models import DeadLetter

# Frozen here: the old paths are history, and the new names must not follow later moves.
RENAMED = {
    "loyalty.tasks.welcome_points": "loyalty.welcome_points",
    "loyalty.tasks.referral_points": "loyalty.referral_points",
    "loyalty.tasks.attendance_points": "loyalty.attendance_points",
    "loyalty.tasks.post_points": "loyalty.post_points",
    "loyalty.tasks.comment_points": "loyalty.comment_points",
    "loyalty.tasks.start_reconciliation": "loyalty.start_reconciliation",
    "notifications.tasks.notify_vehicle_verified": "notifications.vehicle_verified",
    "notifications.tasks.erase_notifications": "notifications.erase_user_data",
    "notifications.tasks.push_notification": "notifications.push",
    "events.tasks.notify_event_cancelled": "events.notify_cancelled",
    "events.tasks.notify_promoted": "events.notify_promoted",
}
BATCH = 1_000


def migrate() -> dict[str, int]:
    """Returns how many markers were copied and dead letters renamed."""
    markers = HandledEvent._get_collection()
    copied = 0
    batch: list[UpdateOne] = []
    # One pass over the collection: markers carry no secondary index (see HandledEvent).
    for marker in markers.find({"handler": {"$in": list(RENAMED)}}):
        new = RENAMED[marker["handler"]]
        renamed = {**marker, "_id": HandledEvent.key(marker["event_id"], new), "handler": new}
        batch.append(UpdateOne({"_id": renamed["_id"]}, {"$setOnInsert": renamed}, upsert=True))
        if len(batch) == BATCH:
            copied += markers.bulk_write(batch, ordered=False).upserted_count
            batch = []
    if batch:
        copied += markers.bulk_write(batch, ordered=False).upserted_count
    letters = DeadLetter._get_collection()
    renamed_letters = sum(
        letters.update_many(
            {"actor_name": "outbox.handle", "replayed_at": None, "args.0": old},
            {"$set": {"args.0": new}},
        ).modified_count
        for old, new in RENAMED.items()
    )
    return {"markers_copied": copied, "dead_letters_renamed": renamed_letters}


if __name__ == "__main__":
    from app import create_app

    create_app()
    print(migrate())
