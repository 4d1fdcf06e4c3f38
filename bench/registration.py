"""Benchmark: a burst of registrations against one event, through the API, next to the lean
baseline: raw pymongo doing only what a registration logically needs, in one transaction,
on the same server, in the same run.

http: `POST /events/{id}/registrations` with an Idempotency-Key, on gunicorn as the README
      runs it (4 workers x 4 threads), on loopback; each request a different owner, CLIENTS
      at a time; a 503 (past the request's database budget) is sent again with its key
      after Retry-After, and counted.
lean: one transaction each: the conditional seat claim (`seats_left > 0` → `$inc -1`, else
      the next waitlist position), the registration insert and its outbox event, from
      CLIENTS pymongo threads, on another event.

Both events have capacity BURST / 4, so three quarters of each burst are waitlisted; both
end checked: every seat taken once, waitlist positions 1..n each once. Prints
registrations/s, p50 and p99 for both, http/lean (target 0.7x), and the machine's load.
Starts an embedded SecantusDB and Redis when MONGODB_URI / REDIS_URL are unset.
`python bench/registration.py [burst]`
"""

from __future__ import annotations

import sys
import threading
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import (  # noqa: E402
    Burst,
    api_server,
    burst,
    lean_outbox_event,
    load,
    owners,
    post_retrying,
    raw_transaction,
    servers,
)

CLIENTS = 16
RETRIES = 3  # sends of one registration after a 503, as a client would


def _event(capacity: int):
    from bson import ObjectId

    from app.clock import utcnow
    from events.models import PUBLISHED, Event

    starts_at = utcnow() + timedelta(days=7)
    return Event(
        city_code="SZ",
        organizer_id=ObjectId(),
        title="Bench",
        venue="Loopback",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        registration_closes_at=starts_at,
        capacity=capacity,
        seats_left=capacity,
        status=PUBLISHED,
    ).save()


def measure_http(base_url: str, event_id: str, people: list[tuple[str, str]]) -> tuple[Burst, int]:
    """The burst through the API, and how many requests were sent again after a 503.

    A request whose database work outlasts REQUEST_DB_BUDGET_MS answers 503 with
    Retry-After; the client sends it again with the same Idempotency-Key, as the API guide
    tells clients to, and its latency includes the wait."""
    import requests

    local = threading.local()
    failures, retried = [], []

    def attempt(index: int) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        response, again = post_retrying(
            session,
            f"{base_url}/api/v1/events/{event_id}/registrations",
            {"Authorization": f"Bearer {people[index][1]}", "Idempotency-Key": f"bench-{index}"},
            RETRIES,
        )
        retried.extend([index] * again)
        if response.status_code != 201:
            failures.append(response.status_code)

    measured = burst(len(people), CLIENTS, attempt)
    if failures:
        raise SystemExit(f"bench: {len(failures)} registrations failed: {failures[:5]}")
    return measured, len(retried)


def lean_registration(event_id, user_id) -> None:
    """What a registration logically needs, in one transaction, as pymongo alone runs it:
    the conditional seat claim (else the next waitlist place), the registration, its
    outbox event. Also the same-work floor of bench/request_cpu.py."""
    from bson import ObjectId
    from pymongo import ReturnDocument

    from app.clock import utcnow
    from app.db import database
    from events.models import CONFIRMED, PUBLISHED, WAITLISTED

    db = database()

    def unit(session) -> None:
        status, position = CONFIRMED, None
        seated = db.events.update_one(
            {"_id": event_id, "status": PUBLISHED, "seats_left": {"$gt": 0}},
            {"$inc": {"seats_left": -1}},
            session=session,
        )
        if seated.modified_count == 0:
            status = WAITLISTED
            position = db.events.find_one_and_update(
                {"_id": event_id, "status": PUBLISHED, "seats_left": {"$lte": 0}},
                {"$inc": {"waitlist_seq": 1, "waitlisted": 1}},
                projection={"waitlist_seq": 1},
                return_document=ReturnDocument.AFTER,
                session=session,
            )["waitlist_seq"]
        registration_id = ObjectId()
        db.registrations.insert_one(
            {
                "_id": registration_id,
                "event_id": event_id,
                "user_id": user_id,
                "city_code": "SZ",
                "status": status,
                "waitlist_position": position,
                "created_at": utcnow(),
            },
            session=session,
        )
        lean_outbox_event(
            session,
            "registration",
            registration_id,
            {"status": status, "waitlist_position": position},
        )

    raw_transaction(unit)


def measure_lean(event_id, people: list[tuple[str, str]]) -> Burst:
    from bson import ObjectId

    return burst(
        len(people), CLIENTS, lambda index: lean_registration(event_id, ObjectId(people[index][0]))
    )


def check(event, burst_size: int) -> None:
    """Invariant 3 and first come, first served: seats taken once each, positions 1..n."""
    from events.models import CONFIRMED, WAITLISTED, Registration

    event.reload()
    stored = list(Registration.objects(event_id=event.pk))
    confirmed = [r for r in stored if r.status == CONFIRMED]
    positions = sorted(r.waitlist_position for r in stored if r.status == WAITLISTED)
    assert event.seats_left == 0 and len(confirmed) == event.capacity, event.seats_left
    assert positions == list(range(1, burst_size - event.capacity + 1))


def main() -> int:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    before = load()
    with servers("bench-registration-"), api_server() as base_url:
        from app import create_app

        app = create_app({"LOG_LEVEL": "WARNING"})
        with app.app_context():
            # Warm-up: every gunicorn worker connected, code paths loaded.
            measure_http(base_url, str(_event(50).pk), owners(200))
            measure_lean(_event(50).pk, owners(200))
            http_event, lean_event = _event(size // 4), _event(size // 4)
            lean = measure_lean(lean_event.pk, owners(size))
            http, retried = measure_http(base_url, str(http_event.pk), owners(size))
            check(http_event, size)
            check(lean_event, size)
    print(
        f"registration benchmark: a burst of {size} registrations against one event of "
        f"capacity {size // 4}, {CLIENTS} concurrent clients, loopback; {before} before, "
        f"{load()} after"
    )
    print(lean.line("lean pymongo (claim+insert+outbox)", lean, "reg"))
    print(http.line("http (gunicorn 4x4, with a key)", lean, "reg"))
    print(f"  sent again after a 503 (past the request's database budget): {retried}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
