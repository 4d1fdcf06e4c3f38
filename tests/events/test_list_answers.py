"""`GET /events` answers exactly what it answered when it read `Event` documents: fixed
events (split seats, a tie on the start, documents of an earlier release missing defaulted
fields, the caller's registrations in each state) listed page by page with filters, each
answer compared with the one recorded in data/event_list_answers.json before the list read
stored documents as `ListedEvent`s (issue 24). Only what a run makes afresh is put in its
place: the caller's id, and each cursor by what it holds (the key that signs it is the
run's)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId, json_util
from itsdangerous import URLSafeSerializer

from events.models import Event, EventSeats, Registration
from tests.support import make_city, make_person, pages_as_text

API = "/api/v1"
ANSWERS = Path(__file__).parent / "data" / "event_list_answers.json"
START = datetime(2031, 3, 1, 2, 30, tzinfo=UTC)
CREATED = datetime(2026, 11, 20, 8, 0, 0, 123000, tzinfo=UTC)
# What each request asks for (the list's query string).
REQUESTS = (
    "city=FX&limit=3",
    "city=FX&limit=100",
    "city=FY&limit=2",
    "limit=4&from=2031-03-01T00:00:00Z",
    "city=FX&from=2031-03-02T00:00:00%2B08:00&to=2031-03-06T00:00:00Z&limit=2",
)


def _event(number: int, city: str, starts_at: datetime, **fields: Any) -> dict[str, Any]:
    values = {
        "seats_left": 10 - number % 4,
        "status": "published",
        **fields,
    }
    document = Event(
        id=ObjectId(f"6b00000000000000000000{number:02x}"),
        city_code=city,
        organizer_id=ObjectId("6b0000000000000000000aaa"),
        title=f"Event {number}",
        description=f"About event {number}",
        venue="Brand space",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        registration_closes_at=starts_at - timedelta(hours=1),
        capacity=10,
        waitlisted=number % 3,
        points_reward=50 + number,
        created_at=CREATED,
        published_at=CREATED + timedelta(minutes=number),
        **values,
    ).to_mongo()
    return dict(document)


def _world(caller_id: ObjectId) -> None:
    make_city("FX", timezone="Asia/Shanghai")
    make_city("FY", timezone="Europe/Berlin")
    day = timedelta(days=1)
    events = [
        _event(1, "FX", START),
        _event(2, "FX", START + day, club_id=ObjectId("6b0000000000000000000c01")),
        # Two at the same time: the page between them breaks the tie by id.
        _event(3, "FX", START + 2 * day, verified_owners_only=True),
        _event(4, "FX", START + 2 * day, city_partner_id=ObjectId("6b0000000000000000000b01")),
        _event(5, "FX", START + 3 * day, seats_left=0, seat_buckets=3),
        _event(6, "FX", START + 4 * day, drop_id=ObjectId("6b0000000000000000000d01")),
        _event(7, "FY", START + 1.5 * day),
        _event(8, "FY", START + 5 * day),
        _event(9, "FY", START + 6 * day, status="draft"),
        _event(10, "FX", START - 30 * day),  # before `from`
    ]
    # Stored by an earlier release: without the fields that have defaults since.
    for name in ("description", "waitlisted", "points_reward", "verified_owners_only"):
        events[7].pop(name, None)
    Event._get_collection().insert_many(events)
    split = events[4]["_id"]
    EventSeats._get_collection().insert_many(
        {"_id": f"{split}:{bucket}", "event_id": split, "bucket": bucket, "seats_left": bucket + 1}
        for bucket in range(3)
    )
    states = {
        1: {"status": "confirmed", "confirmed_at": CREATED},
        2: {"status": "waitlisted", "waitlist_position": 2},
        4: {"status": "cancelled", "cancelled_at": CREATED, "cancelled_by": "owner"},
        5: {"status": "attended", "confirmed_at": CREATED, "attended_at": CREATED},
        7: {"status": "confirmed", "promoted_at": CREATED, "confirmed_at": CREATED},
    }
    Registration._get_collection().insert_many(
        {
            "_id": ObjectId(f"6b00000000000000000001{number:02x}"),
            "event_id": events[number - 1]["_id"],
            "user_id": caller_id,
            "city_code": events[number - 1]["city_code"],
            "created_at": CREATED,
            **state,
        }
        for number, state in states.items()
    )


def test_the_event_list_answers_as_it_did_from_documents(app, client):
    caller = make_person("FX")
    _world(caller.user.pk)
    cursors = URLSafeSerializer(
        app.config["SECRET_KEY"], salt="cursor:events:starts_at,id", serializer=json_util
    )
    answers = {
        query: pages_as_text(client, f"{API}/events?{query}", caller, cursors) for query in REQUESTS
    }
    assert answers == json.loads(ANSWERS.read_text())
