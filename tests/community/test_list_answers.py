"""`GET /feed` and a club's posts answer exactly what they answered when they decoded each
post into a mongoengine `Post`: fixed posts over several days and clubs (hidden ones, an
erased author, a featured post with images, documents of an earlier release missing
defaulted fields) listed page by page, each answer compared with the one recorded in
data/post_list_answers.json before the lists read stored documents as `ListedPost`s
(issue 24). Only what a run makes afresh is put in its place: the caller's id, and each
cursor by what it holds (the key that signs it is the run's)."""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId, json_util
from itsdangerous import URLSafeSerializer

from community.feed import feed_key
from community.models import ACTIVE, VISIBLE, Club, Membership, Post
from tests.support import make_city, make_person, pages_as_text

API = "/api/v1"
ANSWERS = Path(__file__).parent / "data" / "post_list_answers.json"
FIRST_DAY = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
CREATED = datetime(2026, 11, 20, 8, 0, 0, 123000, tzinfo=UTC)
CLUBS = [ObjectId(f"6b000000000000000000c0{number:02x}") for number in range(4)]


def _post_id(number: int) -> ObjectId:
    """An id made on day `number // 3` after FIRST_DAY: the lists page by the ids' days."""
    made = FIRST_DAY + timedelta(days=number // 3, minutes=number)
    return ObjectId(f"{int(made.timestamp()):08x}{number:016x}")


def _world(caller_id: ObjectId) -> None:
    make_city("FX")
    Club._get_collection().insert_many(
        {"_id": club, "name": f"Club {n}", "kind": "city", "city_code": "FX", "member_count": 1}
        for n, club in enumerate(CLUBS)
    )
    Membership._get_collection().insert_many(
        {
            "club_id": club,
            "user_id": caller_id,
            "status": ACTIVE if n < 3 else "left",
            "role": "member",
            "created_at": CREATED,
        }
        for n, club in enumerate(CLUBS)
    )
    posts = []
    for number in range(40):
        post_id, club = _post_id(number), CLUBS[number % 4]
        status = "hidden" if number % 7 == 3 else VISIBLE
        post = Post(
            id=post_id,
            club_id=club,
            city_code="FX",
            author_id=None if number % 11 == 5 else ObjectId("6b0000000000000000000aaa"),
            author_name=f"Author {number % 5}",
            body=f"Post number {number}: a day out with the club.",
            image_urls=[f"https://img.example/{number}.jpg"] if number % 6 == 0 else [],
            status=status,
            like_count=number % 9,
            comment_count=number % 4,
            featured=number % 10 == 1,
            featured_at=CREATED if number % 10 == 1 else None,
            feed_key=feed_key(club, post_id, status),
            published_at=CREATED,
            created_at=CREATED + timedelta(seconds=number),
        )
        document = dict(post.to_mongo())
        if number % 8 == 2:  # stored by an earlier release, without the defaulted fields
            for name in ("image_urls", "like_count", "comment_count", "featured"):
                document.pop(name, None)
        posts.append(document)
    Post._get_collection().insert_many(posts)
    importlib.import_module("migrations.2026_12_03_club_post_days").migrate()


def test_the_post_lists_answer_as_they_did_from_documents(app, client):
    caller = make_person("FX")
    _world(caller.user.pk)
    cursors = URLSafeSerializer(
        app.config["SECRET_KEY"], salt="cursor:posts:feed_key", serializer=json_util
    )
    answers: dict[str, Any] = {
        path: pages_as_text(client, f"{API}{path}", caller, cursors)
        for path in (
            "/feed?limit=4",
            "/feed?limit=100",
            f"/clubs/{CLUBS[1]}/posts?limit=3",
            f"/clubs/{CLUBS[3]}/posts?limit=100",
        )
    }
    assert answers == json.loads(ANSWERS.read_text())
