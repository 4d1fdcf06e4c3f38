"""Benchmark: GET /feed for owners in 20 of 200 clubs while the posts of the other clubs
grow from 10k to 100k, through the API next to raw pymongo sending the same queries to the
same server.

Three feeds are read at each size:
- active: an owner in 20 clubs with 2,000 posts over the last year (about 5 a day), first
  page;
- active, page 2: the same owner's second page, through its cursor;
- quiet: an owner in 20 other clubs whose 100 posts are 3 to 10 weeks old.
The 160 clubs left get the growing posts, spread over the last year.

http: `GET /feed?limit=20` on gunicorn (2 workers x 8 threads, as `make run`) on loopback,
      CLIENTS at a time, READS in all.
raw:  the same reads from CLIENTS pymongo threads: the account, the memberships with their
      clubs' day counts, and the posts of the days the page needs (`community.feed`).

Prints, for each size and feed, reads/s and p50/p99 for both, http/raw and the http ratio
to the 10k figure, then the MongoDB commands one read sends (command monitoring) and the
posts it examines (each lookup is an index equality: the posts it returns). The day counts
of posts stored directly are made by the release's migration. Starts an embedded SecantusDB
and Redis when MONGODB_URI / REDIS_URL are unset.
`python bench/community.py [reads]`
"""

from __future__ import annotations

import importlib
import random
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import Burst, api_server, burst, load, owners, servers  # noqa: E402

CLIENTS = 8
CLUBS = 200
MY_CLUBS = 20
MY_POSTS = 2_000
QUIET_POSTS = 100
SIZES = (10_000, 100_000)
LIMIT = 20


def _made_at(moment) -> Any:
    from bson import ObjectId

    return ObjectId(ObjectId.from_datetime(moment).binary[:4] + ObjectId().binary[4:])


def _clubs() -> list[Any]:
    """200 clubs made 400 days ago."""
    from app.clock import utcnow
    from community.models import Club

    created = utcnow() - timedelta(days=400)
    clubs = [_made_at(created) for _ in range(CLUBS)]
    Club._get_collection().insert_many(
        [
            Club(id=club, name=f"Club {n}", kind="interest", city_code="SZ").to_mongo()
            for n, club in enumerate(clubs)
        ]
    )
    return clubs


def _join(user_id: str, clubs: list[Any]) -> None:
    from bson import ObjectId

    from community.models import ACTIVE, Membership

    Membership._get_collection().insert_many(
        [
            Membership(
                club_id=club, user_id=ObjectId(user_id), status=ACTIVE, city_code="SZ"
            ).to_mongo()
            for club in clubs
        ]
    )


def _add_posts(clubs: list[Any], count: int, days: tuple[float, float], seed: int) -> None:
    """`count` visible posts in `clubs`, made between `days` ago, as stored before the
    release that counts them (the migration counts them after)."""
    from app.clock import utcnow
    from community.feed import feed_key
    from community.models import VISIBLE, Post

    now, rng = utcnow(), random.Random(seed)
    newest, oldest = days
    posts = Post._get_collection()
    for start in range(0, count, 1000):
        batch = []
        for _ in range(min(1000, count - start)):
            club = rng.choice(clubs)
            post_id = _made_at(now - timedelta(days=newest + (oldest - newest) * rng.random()))
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


def _raw_feed(user_id: str, cursor: str | None = None) -> dict[str, Any]:
    """What GET /feed does, through the same functions without the HTTP and Flask layers:
    the account, the memberships with their clubs' day counts, the posts."""
    from bson import ObjectId

    from accounts.models import User
    from community import feed

    User._get_collection().find_one({"_id": ObjectId(user_id), "erased_at": None})
    return feed.newest_posts(feed.member_days(ObjectId(user_id)), cursor, LIMIT)


def _examined(user_id: str, cursor: str | None) -> int:
    """The posts one read examines: its lookups are index equalities, so those they return."""
    from community import feed

    examined = 0
    posts_under = feed._posts_under

    def counting(keys: list[str]) -> list[dict[str, Any]]:
        nonlocal examined
        rows = posts_under(keys)
        examined += len(rows)
        return rows

    feed._posts_under = counting
    try:
        _raw_feed(user_id, cursor)
    finally:
        feed._posts_under = posts_under
    return examined


def _commands(app, token: str, cursor: str | None) -> list[str]:
    """The MongoDB commands one GET /feed sends, by command monitoring."""
    from tests.support import count_commands

    with count_commands() as commands:
        response = app.test_client().get(
            f"/api/v1/feed?limit={LIMIT}" + (f"&cursor={cursor}" if cursor else ""),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200 and len(response.json["items"]) == LIMIT
    return commands.names


def main() -> int:
    reads = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    # Before any client exists, so that command monitoring sees the app's client.
    from pymongo import monitoring

    from tests.support import COMMAND_LOG

    monitoring.register(COMMAND_LOG)
    results: list[tuple[int, str, Burst, Burst, list[str], int]] = []
    with servers("bench-community-"), api_server(workers=2, threads=8) as base_url:
        import requests

        from app import create_app

        migration = importlib.import_module("migrations.2026_12_03_club_post_days")
        app = create_app({"LOG_LEVEL": "WARNING", "RATELIMIT_ENABLED": False})
        with app.app_context():
            (active, active_token), (quiet, quiet_token) = owners(2)
            clubs = _clubs()
            mine, quiet_clubs, others = clubs[:20], clubs[20:40], clubs[40:]
            _join(active, mine)
            _join(quiet, quiet_clubs)
            _add_posts(mine, MY_POSTS, (0, 365), seed=1)
            _add_posts(quiet_clubs, QUIET_POSTS, (21, 70), seed=2)
            local = threading.local()

            def http_read(token: str, cursor: str | None) -> None:
                session = getattr(local, "session", None) or requests.Session()
                local.session = session
                response = session.get(
                    f"{base_url}/api/v1/feed?limit={LIMIT}"
                    + (f"&cursor={cursor}" if cursor else ""),
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                )
                if response.status_code != 200 or len(response.json()["items"]) != LIMIT:
                    raise SystemExit(f"bench: feed answered {response.status_code}")

            def raw_read(user_id: str, cursor: str | None) -> None:
                with app.app_context():  # each thread its own: the cursors' key
                    _raw_feed(user_id, cursor)

            have = 0
            for size in SIZES:
                _add_posts(others, size - have, (0, 365), seed=size)
                have = size
                migration.migrate()
                second_cursor = _raw_feed(active)["next_cursor"]
                feeds = (
                    ("active", active, active_token, None),
                    ("active, page 2", active, active_token, second_cursor),
                    ("quiet", quiet, quiet_token, None),
                )
                burst(50, CLIENTS, lambda _: http_read(active_token, None))  # warm-up
                for name, user_id, token, cursor in feeds:
                    raw = burst(reads, CLIENTS, lambda _, u=user_id, c=cursor: raw_read(u, c))
                    http = burst(reads, CLIENTS, lambda _, t=token, c=cursor: http_read(t, c))
                    examined = _examined(user_id, cursor)
                    results.append((size, name, raw, http, _commands(app, token, cursor), examined))
    print(
        f"feed benchmark: GET /feed?limit={LIMIT} for owners in {MY_CLUBS} of {CLUBS} clubs "
        f"(active: {MY_POSTS} posts over a year; quiet: {QUIET_POSTS} posts 3-10 weeks old), "
        f"the other clubs' posts growing, {CLIENTS} concurrent clients, {reads} reads, "
        f"loopback; {load()}"
    )
    baseline = {name: http for size, name, _, http, _, _ in results if size == SIZES[0]}
    for size, name, raw, http, names, examined in results:
        growth = http.rate / baseline[name].rate
        print(
            f"  {size:>7} other posts, {name:<15} raw {raw.rate:6.0f}/s p50"
            f" {raw.percentile(0.5) * 1000:6.1f} ms   http {http.rate:6.0f}/s p50"
            f" {http.percentile(0.5) * 1000:6.1f} ms p99 {http.percentile(0.99) * 1000:6.1f} ms"
            f"   http/raw {http.rate / raw.rate:.2f}   http vs 10k {growth:.2f}"
        )
        print(f"           {len(names)} commands ({', '.join(names)}), {examined} posts examined")
    return 0


if __name__ == "__main__":
    sys.exit(main())
