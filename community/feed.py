"""Lists of posts, newest first, whose cost follows the page and not the posts in the
system: the feed (the caller's clubs) and a club's posts.

SecantusDB uses an index for equality and `$in` on its leading fields, but scans the whole
collection as soon as `$in` meets a range (`club_id $in [...]` with `_id < cursor`), and
always sorts in memory: a plain `(club_id, _id)` query would fetch every post of the
caller's clubs for each page. So each visible post carries `feed_key`, its club and the
UTC day it was posted ("<club id>:<day>"; None while not visible), under a one-field
index, and a page asks for the keys of the caller's clubs over a window of recent days:
one day first, then a window twice as long each time the page is not full yet (64 days at
most). A page examines about as many posts as it shows, in one query on an active feed;
a quiet feed costs a few more (cheap, each an index lookup), back to the oldest club's
creation at most.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId, json_util
from flask import current_app
from itsdangerous import BadData, URLSafeSerializer

from app.errors import InvalidCursor
from community.models import VISIBLE, Post

SECONDS_A_DAY = 86_400
MAX_WINDOW_DAYS = 64


def day_of(oid: ObjectId) -> int:
    """The UTC day (since the epoch) an id was made: posts' and clubs' ids carry it."""
    return int(oid.generation_time.timestamp()) // SECONDS_A_DAY


def feed_key(club_id: ObjectId, post_id: ObjectId, status: str) -> str | None:
    return f"{club_id}:{day_of(post_id)}" if status == VISIBLE else None


def _cursors() -> URLSafeSerializer:
    return URLSafeSerializer(
        current_app.config["SECRET_KEY"], salt="cursor:posts:feed_key", serializer=json_util
    )


def newest_posts(club_ids: list[ObjectId], cursor: str | None, limit: int) -> dict[str, Any]:
    """Visible posts of `club_ids`, newest first, keyset-paginated (`{items, next_cursor}`)."""
    if not club_ids:
        return {"items": [], "next_cursor": None}
    before: ObjectId | None = None
    top_day = int(datetime.now(UTC).timestamp()) // SECONDS_A_DAY
    if cursor:
        try:
            top_day, before = _cursors().loads(cursor)
        except (BadData, ValueError, TypeError) as exc:
            raise InvalidCursor() from exc
    # No club holds a post from before it was created.
    oldest_day = min(day_of(club_id) for club_id in club_ids)
    posts = Post._get_collection()
    found: list[dict[str, Any]] = []
    window = 1
    while top_day >= oldest_day and len(found) <= limit:
        first_day = max(oldest_day, top_day - window + 1)
        keys = [f"{club}:{day}" for club in club_ids for day in range(first_day, top_day + 1)]
        rows = [
            row
            for row in posts.find({"feed_key": {"$in": keys}})
            if before is None or row["_id"] < before
        ]
        found += sorted(rows, key=lambda row: row["_id"], reverse=True)
        top_day, window = first_day - 1, min(window * 2, MAX_WINDOW_DAYS)
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        last = page[-1]["_id"]
        next_cursor = _cursors().dumps([day_of(last), last])
    return {"items": [Post._from_son(row) for row in page], "next_cursor": next_cursor}
