"""The feed and a club's posts: every post once, newest first, through pages of any size,
over busy and quiet clubs and posts months old, each page within the read budget."""

from __future__ import annotations

import importlib
import random
from datetime import timedelta

from bson import ObjectId

from app.auth import load_caller
from app.clock import utcnow
from app.db import batch, transaction
from community import clubs, feed
from community.models import ACTIVE, HIDDEN, Membership, Post, PostDays
from tests.community.conftest import (
    API,
    made_at,
    old_club,
    old_post,
    owner,
    post_in,
    stored_post,
)
from tests.support import READ_BUDGET, within_budget

migration = importlib.import_module("migrations.2026_12_03_club_post_days")


def _pages(client, reader, url: str, limit: int) -> list[list[str]]:
    """Every page of a list, each within the read budget."""
    pages, cursor = [], None
    while True:
        with within_budget(READ_BUDGET):
            answer = client.get(
                f"{url}?limit={limit}" + (f"&cursor={cursor}" if cursor else ""),
                headers=reader.headers,
            )
        assert answer.status_code == 200, answer.json
        pages.append([post["id"] for post in answer.json["items"]])
        cursor = answer.json["next_cursor"]
        if cursor is None:
            return pages


def _all(pages: list[list[str]]) -> list[str]:
    return [post for page in pages for post in page]


def test_the_feed_pages_through_posts_weeks_and_months_old(client, app):
    reader = owner()
    mine, other, quiet = old_club(200), old_club(201), old_club(300)
    for club in (mine, quiet):
        clubs.join(load_caller(reader.id), str(club.pk))
    expected = [old_post(mine, days) for days in (0, 0.5, 1, 3, 9, 40, 90, 150)]
    old_post(other, 0.1)
    old_post(mine, 2, status=HIDDEN)
    assert migration.migrate() == {"clubs_counted": 2}
    assert migration.migrate() == {"clubs_counted": 2}
    for limit in (1, 3, 100):
        pages = _pages(client, reader, f"{API}/feed", limit)
        assert _all(pages) == expected
        assert all(len(page) == limit for page in pages[:-1])
    club_pages = _pages(client, reader, f"{API}/clubs/{mine.pk}/posts", 3)
    assert _all(club_pages) == expected
    assert client.get(f"{API}/clubs/{quiet.pk}/posts", headers=reader.headers).json == {
        "items": [],
        "next_cursor": None,
    }
    assert client.get(f"{API}/clubs/{ObjectId()}/posts", headers=reader.headers).status_code == 404
    bad = client.get(f"{API}/feed?cursor=forged", headers=reader.headers)
    assert bad.status_code == 400 and bad.json["error"] == "invalid_cursor"


def test_busy_and_quiet_clubs_one_of_twenty_in_two_hundred(client, app):
    """An owner in 20 of 200 clubs: one club busy today, others quiet for weeks. Every
    page reads about the posts it shows, not the posts of its clubs or of the others."""
    reader = owner()
    all_clubs = [old_club(400) for _ in range(200)]
    mine = all_clubs[:20]
    Membership._get_collection().insert_many(
        [
            Membership(club_id=club.pk, user_id=reader.user.pk, status=ACTIVE).to_mongo()
            for club in mine
        ]
    )
    rng = random.Random(5)
    quiet = [stored_post(club, 30 + 300 * rng.random()) for club in all_clubs for _ in range(10)]
    Post._get_collection().insert_many(quiet)  # quiet: weeks and months ago
    busy = [old_post(mine[0], rng.random() / 2) for _ in range(30)]  # today
    migration.migrate()
    # And posts made through the API, counted as they are made.
    busy += [post_in(client, mine[0], reader, "now")["id"] for _ in range(3)]
    clubs.join(load_caller(reader.id), str(all_clubs[20].pk))
    busy.append(post_in(client, all_clubs[20], reader, "in the club joined last")["id"])
    truth = [
        str(post["_id"])
        for post in Post._get_collection()
        .find({"club_id": {"$in": [club.pk for club in all_clubs[:21]]}})
        .sort("_id", -1)
    ]
    assert len(truth) == 21 * 10 + len(busy) and set(busy) <= set(truth[: len(busy)])
    examined: list[int] = []
    posts_under = feed._posts_under

    def counting(keys: list[str]) -> list[dict]:
        rows = posts_under(keys)
        examined.append(len(rows))
        return rows

    feed._posts_under = counting
    try:
        pages = _pages(client, reader, f"{API}/feed", 20)
    finally:
        feed._posts_under = posts_under
    assert _all(pages) == truth
    # Each page examines its own posts and the rest of its oldest day (a few at most here,
    # the busy day on the second page): never the 2,000 posts of the other clubs.
    assert max(examined) <= 20 + 1 + len(busy)
    assert sum(examined) <= len(truth) + 20 * len(pages)


def test_a_page_over_hidden_posts_comes_out_short_and_skips_nothing(client, app):
    reader = owner()
    club = old_club(30)
    clubs.join(load_caller(reader.id), str(club.pk))
    ids = [old_post(club, days) for days in range(5)]
    migration.migrate()
    for hidden in ids[1:3]:
        Post.objects(pk=hidden).update_one(set__status=HIDDEN, set__feed_key=None)
    # The first page's three days (two posts and the one more) held one visible post.
    pages = _pages(client, reader, f"{API}/feed", 2)
    assert pages == [[ids[0]], [ids[3], ids[4]]]


def test_a_cursor_of_the_previous_release_still_pages(client, make_club):
    reader = owner()
    club = make_club(members=(reader,))
    ids = [post_in(client, club, reader, f"post {n}")["id"] for n in range(3)]
    before = ObjectId(ids[1])
    old = feed._cursors().dumps([feed.day_of(before), before])
    page = client.get(f"{API}/feed?cursor={old}", headers=reader.headers).json
    assert [post["id"] for post in page["items"]] == [ids[0]] and page["next_cursor"] is None


def test_posts_are_counted_by_day_as_the_migration_counts_them(app):
    club = ObjectId()
    today = feed.day_of(ObjectId())
    # Days in the order posts arrive: the fifth from a clock a little behind, around
    # midnight.
    arrivals = [today - 3, today - 3, today - 2, today, today - 1, today]
    post_ids = [made_at(utcnow() - timedelta(days=today - day)) for day in arrivals]
    for post_id in post_ids:
        transaction(lambda session, post_id=post_id: feed.count_post(batch(session), club, post_id))
    newest_first = [(today, 2), (today - 1, 1), (today - 2, 1), (today - 3, 2)]
    counted = PostDays._get_collection().find_one({"_id": club})
    assert counted["last_day"] == today and counted["last_count"] == 2
    assert [(day, posts) for day, posts, _ in feed._newest_days(counted, club)] == newest_first
    Post._get_collection().insert_many([{"_id": post_id, "club_id": club} for post_id in post_ids])
    PostDays._get_collection().delete_many({})
    migration.migrate()
    migrated = PostDays._get_collection().find_one({"_id": club})
    assert [(day, posts) for day, posts, _ in feed._newest_days(migrated, club)] == newest_first
