"""Benchmark: a burst of registrations against one event, through the API, next to raw
pymongo doing the same conditional updates on the same server.

http: `POST /events/{id}/registrations` on gunicorn (2 workers x 8 threads, as `make run`)
      on loopback, each request a different owner, CLIENTS at a time.
raw:  the same conditional updates (`seats_left > 0` → `$inc -1`, else `$inc waitlist_seq`)
      and the registration insert, from CLIENTS pymongo threads, on another event.

Both events have capacity BURST / 4, so three quarters of each burst are waitlisted.
Prints registrations/s and p50/p99 latency for both and http/raw. Starts an embedded
SecantusDB and Redis when MONGODB_URI / REDIS_URL are unset.
`python bench/registration.py [burst]`
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import api_server, owners, servers  # noqa: E402

CLIENTS = 16


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _burst(count: int, attempt: Callable[[int], None]) -> tuple[float, list[float]]:
    """Run `attempt(i)` for i < count from CLIENTS threads; rate and per-call latencies."""
    latencies: list[float] = []
    lock = threading.Lock()

    def timed(index: int) -> None:
        started = time.perf_counter()
        attempt(index)
        with lock:
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(timed, range(count)))
    return count / (time.perf_counter() - started), latencies


def _event(capacity: int):
    from bson import ObjectId

    from accounts.models import City
    from accounts.services import create_city
    from app.clock import utcnow
    from events.models import PUBLISHED, Event

    if not City.objects(code="SZ").first():
        create_city("SZ", "Shenzhen", "Guangdong", "Asia/Shanghai")
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


def measure_http(base_url: str, event_id: str, owners: list[tuple[str, str]]):
    import requests

    local = threading.local()
    failures = []

    def attempt(index: int) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        response = session.post(
            f"{base_url}/api/v1/events/{event_id}/registrations",
            headers={"Authorization": f"Bearer {owners[index][1]}"},
            timeout=60,
        )
        if response.status_code != 201:
            failures.append(response.status_code)

    rate, latencies = _burst(len(owners), attempt)
    if failures:
        raise SystemExit(f"bench: {len(failures)} registrations failed: {failures[:5]}")
    return rate, latencies


def measure_raw(event_id, owners: list[tuple[str, str]]):
    from bson import ObjectId
    from pymongo import ReturnDocument

    from app.clock import utcnow
    from events.models import CONFIRMED, PUBLISHED, WAITLISTED, Event, Registration

    events, registrations = Event._get_collection(), Registration._get_collection()

    def attempt(index: int) -> None:
        status, position = CONFIRMED, None
        if (
            events.update_one(
                {"_id": event_id, "status": PUBLISHED, "seats_left": {"$gt": 0}},
                {"$inc": {"seats_left": -1}},
            ).modified_count
            == 0
        ):
            status = WAITLISTED
            position = events.find_one_and_update(
                {"_id": event_id, "status": PUBLISHED, "seats_left": {"$lte": 0}},
                {"$inc": {"waitlist_seq": 1}},
                projection={"waitlist_seq": 1},
                return_document=ReturnDocument.AFTER,
            )["waitlist_seq"]
        registrations.insert_one(
            {
                "event_id": event_id,
                "user_id": ObjectId(owners[index][0]),
                "city_code": "SZ",
                "status": status,
                "waitlist_position": position,
                "created_at": utcnow(),
            }
        )

    return _burst(len(owners), attempt)


def _line(name: str, rate: float, latencies: list[float], baseline: float) -> str:
    return (
        f"  {name:<28} {rate:8.0f} reg/s   p50 {_percentile(latencies, 0.5) * 1000:6.1f} ms"
        f"   p99 {_percentile(latencies, 0.99) * 1000:6.1f} ms   {rate / baseline:.2f}x"
    )


def main() -> int:
    burst = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with servers("bench-registration-"), api_server(workers=2, threads=8) as base_url:
        from app import create_app

        app = create_app({"LOG_LEVEL": "WARNING"})
        with app.app_context():
            # Warm-up: both gunicorn workers connected, code paths loaded.
            measure_http(base_url, str(_event(50).pk), owners(200))
            measure_raw(_event(50).pk, owners(200))
            http_event, raw_event = _event(burst // 4), _event(burst // 4)
            raw_rate, raw_latencies = measure_raw(raw_event.pk, owners(burst))
            http_rate, http_latencies = measure_http(base_url, str(http_event.pk), owners(burst))
            for event in (http_event, raw_event):
                event.reload()
                assert event.seats_left == 0 and event.waitlist_seq == burst - burst // 4
    print(
        f"registration benchmark: a burst of {burst} registrations against one event of "
        f"capacity {burst // 4}, {CLIENTS} concurrent clients, loopback"
    )
    print(_line("raw pymongo (claim+insert)", raw_rate, raw_latencies, raw_rate))
    print(_line("http (gunicorn 2x8)", http_rate, http_latencies, raw_rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
