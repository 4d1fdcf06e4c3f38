"""Benchmark: GET /feed for an owner in 20 of 200 clubs, with 10k and then 100k posts in the
system, through the API next to raw pymongo sending the same queries to the same server.

http: `GET /feed?limit=20` on gunicorn (2 workers x 8 threads, as `make run`) on loopback,
      CLIENTS at a time, READS in all.
raw:  the same reads from CLIENTS pymongo threads: the account, the memberships and the
      window lookups of `community.feed` (usually one).

Posts are spread over the 200 clubs and over the last year. Prints, for each size, reads/s
and p50/p99 for both, http/raw, the ratio to the 10k figure, the MongoDB commands one feed
read sends (command monitoring) and the posts its lookups examine (explain). Starts an
embedded SecantusDB and Redis when MONGODB_URI / REDIS_URL are unset.
`python bench/community.py [reads]`
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import api_server, servers  # noqa: E402

CLIENTS = 8
CLUBS = 200
MY_CLUBS = 20
SIZES = (10_000, 100_000)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _burst(count: int, attempt: Callable[[], None]) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()

    def timed(_: int) -> None:
        started = time.perf_counter()
        attempt()
        with lock:
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(timed, range(count)))
    return count / (time.perf_counter() - started), latencies


def _made_at(moment) -> Any:
    from bson import ObjectId

    return ObjectId(ObjectId.from_datetime(moment).binary[:4] + ObjectId().binary[4:])


def _world() -> tuple[Any, str, list[Any]]:
    """200 clubs made 400 days ago and an owner in 20 of them: (owner id, token, clubs)."""
    from bson import ObjectId

    from accounts.models import City, User
    from accounts.services import create_city
    from accounts.sessions import start_session
    from app.clock import utcnow
    from community.models import ACTIVE, Club, Membership

    if not City.objects(code="SZ").first():
        create_city("SZ", "Shenzhen", "Guangdong", "Asia/Shanghai")
    created = utcnow() - timedelta(days=400)
    clubs = [_made_at(created) for _ in range(CLUBS)]
    Club._get_collection().insert_many(
        [
            Club(id=club, name=f"Club {n}", kind="interest", city_code="SZ").to_mongo()
            for n, club in enumerate(clubs)
        ]
    )
    user = User(
        id=ObjectId(),
        email=f"bench{ObjectId()}@example.com",
        password_hash="x",
        display_name="Bench owner",
        city_code="SZ",
        referral_code=f"B{ObjectId()}",
    )
    User._get_collection().insert_one(user.to_mongo())
    Membership._get_collection().insert_many(
        [
            Membership(club_id=club, user_id=user.pk, status=ACTIVE, city_code="SZ").to_mongo()
            for club in clubs[:MY_CLUBS]
        ]
    )
    return user.pk, start_session(user.pk, "bench")["access_token"], clubs


def _add_posts(clubs: list[Any], count: int) -> None:
    from app.clock import utcnow
    from community.feed import feed_key
    from community.models import VISIBLE, Post

    now, rng = utcnow(), random.Random(count)
    posts = Post._get_collection()
    for start in range(0, count, 1000):
        batch = []
        for _ in range(min(1000, count - start)):
            club, post_id = rng.choice(clubs), _made_at(now - timedelta(days=365 * rng.random()))
            batch.append(
                Post(
                    id=post_id,
                    club_id=club,
                    city_code="SZ",
                    author_name="Bench",
                    body="A day out with the club. " * 8,
                    status=VISIBLE,
                    published_at=now,
                    feed_key=feed_key(club, post_id, VISIBLE),
                ).to_mongo()
            )
        posts.insert_many(batch)


def _feed_queries(user_id: Any, found: list[dict[str, Any]] | None = None):
    """The window lookups of `community.feed.newest_posts`, as raw filters: each is sent
    (and its rows added to `found`) before the next is made."""
    from datetime import UTC, datetime

    from community.feed import MAX_WINDOW_DAYS, SECONDS_A_DAY, day_of
    from community.models import ACTIVE, Membership, Post

    found = [] if found is None else found
    clubs = [
        row["club_id"]
        for row in Membership._get_collection().find(
            {"user_id": user_id, "status": ACTIVE}, {"club_id": 1, "_id": 0}
        )
    ]
    top_day = int(datetime.now(UTC).timestamp()) // SECONDS_A_DAY
    oldest_day, window = min(day_of(club) for club in clubs), 1
    while top_day >= oldest_day and len(found) <= 20:
        first_day = max(oldest_day, top_day - window + 1)
        keys = [f"{club}:{day}" for club in clubs for day in range(first_day, top_day + 1)]
        query = {"feed_key": {"$in": keys}}
        yield query
        found += sorted(
            Post._get_collection().find(query), key=lambda row: row["_id"], reverse=True
        )
        top_day, window = first_day - 1, min(window * 2, MAX_WINDOW_DAYS)


def _raw_feed(user_id: Any) -> list[dict[str, Any]]:
    """What GET /feed does, in raw pymongo: the account, the memberships, the windows."""
    from accounts.models import User

    User._get_collection().find_one({"_id": user_id, "erased_at": None})
    found: list[dict[str, Any]] = []
    for _ in _feed_queries(user_id, found):
        pass
    return found[:20]


def _feed_commands(app, token: str) -> list[str]:
    """The MongoDB commands one GET /feed sends, by command monitoring."""
    from tests.support import count_commands

    with count_commands() as commands:
        response = app.test_client().get(
            "/api/v1/feed?limit=20", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200 and len(response.json["items"]) == 20
    return commands.names


def _examined(user_id: Any) -> int:
    """Posts the feed's lookups examine (explain), against the page of 20 they serve."""
    from community.models import Post

    posts = Post._get_collection()
    total = 0
    for query in _feed_queries(user_id):
        total += posts.find(query).explain().get("executionStats", {}).get("totalDocsExamined", 0)
    return total


def main() -> int:
    reads = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    # Before any client exists, so that command monitoring sees the app's client.
    from pymongo import monitoring

    from tests.support import COMMAND_LOG

    monitoring.register(COMMAND_LOG)
    results = []
    with servers("bench-community-"), api_server(workers=2, threads=8) as base_url:
        import requests

        from app import create_app

        app = create_app({"LOG_LEVEL": "WARNING", "RATELIMIT_ENABLED": False})
        with app.app_context():
            user_id, token, clubs = _world()
            local = threading.local()

            def http_read() -> None:
                session = getattr(local, "session", None) or requests.Session()
                local.session = session
                response = session.get(
                    f"{base_url}/api/v1/feed?limit=20",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                )
                if response.status_code != 200 or len(response.json()["items"]) != 20:
                    raise SystemExit(f"bench: feed answered {response.status_code}")

            have = 0
            for size in SIZES:
                _add_posts(clubs, size - have)
                have = size
                _burst(50, http_read)  # warm-up: both workers connected
                _burst(50, lambda: _raw_feed(user_id))
                raw_rate, raw_latencies = _burst(reads, lambda: _raw_feed(user_id))
                http_rate, http_latencies = _burst(reads, http_read)
                results.append(
                    (
                        size,
                        raw_rate,
                        raw_latencies,
                        http_rate,
                        http_latencies,
                        _feed_commands(app, token),
                        _examined(user_id),
                    )
                )
    print(
        f"feed benchmark: GET /feed?limit=20 for an owner in {MY_CLUBS} of {CLUBS} clubs, "
        f"posts over the last year, {CLIENTS} concurrent clients, {reads} reads, loopback"
    )
    base_http = results[0][3]
    for size, raw_rate, raw_lat, http_rate, http_lat, names, examined in results:
        print(
            f"  {size:>7} posts  raw {raw_rate:7.0f}/s p50 {_percentile(raw_lat, 0.5) * 1000:6.1f}"
            f" ms   http {http_rate:7.0f}/s p50 {_percentile(http_lat, 0.5) * 1000:6.1f} ms"
            f" p99 {_percentile(http_lat, 0.99) * 1000:6.1f} ms   http/raw "
            f"{http_rate / raw_rate:.2f}   http vs 10k {http_rate / base_http:.2f}"
        )
        print(f"           commands per feed read: {len(names)} ({', '.join(names)})")
        print(f"           posts examined by its lookups: {examined}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
