"""2026-12-02: events keep the length of their waitlist.

Until this release every event page counted each event's waitlisted registrations. Events
now carry the count (`Event.waitlisted`), changed in the transaction that changes the
registrations it counts, so lists read it instead. This sets it on every event from its
registrations, in one pass over the waitlisted ones. Run it after stopping the previous
release's API (a registration it took meanwhile would not be counted) and before starting
this release's; running it again sets the same counts.

    python -m migrations.2026_12_02_event_waitlist_counts
"""

from __future__ import annotations

from pymongo import UpdateOne

from events.models import WAITLISTED, Event, Registration

BATCH = 1_000


def migrate() -> dict[str, int]:
    """Returns how many events were given a count."""
    waiting = {
        row["_id"]: row["count"]
        for row in Registration._get_collection().aggregate(
            [
                {"$match": {"status": WAITLISTED}},
                {"$group": {"_id": "$event_id", "count": {"$sum": 1}}},
            ]
        )
    }
    events = Event._get_collection()
    counted = 0
    batch: list[UpdateOne] = []
    for event in events.find({}, {"_id": 1}):
        batch.append(
            UpdateOne({"_id": event["_id"]}, {"$set": {"waitlisted": waiting.get(event["_id"], 0)}})
        )
        if len(batch) == BATCH:
            counted += events.bulk_write(batch, ordered=False).matched_count
            batch = []
    if batch:
        counted += events.bulk_write(batch, ordered=False).matched_count
    return {"events_counted": counted}


if __name__ == "__main__":
    from app import create_app

    create_app()
    print(migrate())
