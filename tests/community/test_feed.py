from __future__ import annotations

from datetime import timedelta

from bson import ObjectId

from app.auth import load_caller
from app.clock import utcnow
from community import clubs
from community.feed import feed_key
from community.models import VISIBLE, Club, Post
from tests.community.conftest import API, owner


def _made_at(moment) -> ObjectId:
    """A unique id whose time part is `moment` (the rest from a fresh id)."""
    return ObjectId(ObjectId.from_datetime(moment).binary[:4] + ObjectId().binary[4:])


def _club(days_old: int) -> Club:
    club = Club(
        id=_made_at(utcnow() - timedelta(days=days_old)),
        name=f"Old {days_old}",
        kind="interest",
        city_code="SZ",
    )
    club.save(force_insert=True)
    return club


def _post(club: Club, days_ago: float, status: str = VISIBLE) -> str:
    post_id = _made_at(utcnow() - timedelta(days=days_ago))
    Post(
        id=post_id,
        club_id=club.pk,
        city_code="SZ",
        author_name="x",
        body=f"{days_ago} days ago",
        status=status,
        feed_key=feed_key(club.pk, post_id, status),
    ).save(force_insert=True)
    return str(post_id)


def test_the_feed_pages_through_every_window_newest_first(client, app):
    reader = owner()
    mine, other, quiet = _club(200), _club(201), _club(300)
    for club in (mine, quiet):
        clubs.join(load_caller(reader.id), str(club.pk))
    expected = [_post(mine, days) for days in (0, 0.5, 1, 3, 9, 40, 90, 150)]
    _post(other, 0.1)
    _post(mine, 2, status="hidden")
    seen, cursor = [], None
    while True:
        url = f"{API}/feed?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=reader.headers).json
        seen += [post["id"] for post in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    club_page = client.get(f"{API}/clubs/{mine.pk}/posts?limit=100", headers=reader.headers).json
    assert [post["id"] for post in club_page["items"]] == expected
    bad = client.get(f"{API}/feed?cursor=forged", headers=reader.headers)
    assert bad.status_code == 400 and bad.json["error"] == "invalid_cursor"
