"""Lists of posts, newest first, whose cost follows the page and not the posts in the
system: the feed (the caller's clubs) and a club's posts.

SecantusDB answers a query with every document its index bounds take in, then filters,
sorts and limits them in memory; it scans the whole collection for `$in` combined with a
range, for `$or` and for `$unionWith`, and matches `$in` against each document one value
at a time. A plain `(club_id $in [...], _id < cursor)` query would read every post of the
caller's clubs for each page. So:

- each visible post carries `feed_key`, its club and the UTC day of its id
  ("<club id>:<day>"; None while not visible), under a one-field index;
- each club has a `PostDays` document counting its posts by day, written with each post;
- a page reads the day counts of its clubs in the command that finds the clubs (the
  caller's memberships, or the one club), walks the days newest first until they hold a
  page and one more, and reads the posts of just those clubs and days in one command, a
  few index lookups of them at a time.

A page therefore costs two commands after the caller's, however busy or quiet its clubs
and however deep the cursor, and examines the posts it shows plus the rest of its oldest
day. The counts include posts that are no longer visible (never fewer than are shown): a
page over days whose posts were hidden or deleted can come out short, and its cursor then
goes on below those days.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId, json_util
from flask import current_app
from itsdangerous import BadData, URLSafeSerializer

from app.clock import utcnow
from app.db import Writes, object_id
from app.errors import InvalidCursor
from community.errors import ClubNotFound
from community.models import ACTIVE, VISIBLE, Club, Membership, Post, PostDays

SECONDS_A_DAY = 86_400

# A club's day counts, as its `PostDays` document stores them.
Days = Mapping[str, Any]


def day_of(oid: ObjectId) -> int:
    """The UTC day (since the epoch) an id was made: posts' and clubs' ids carry it."""
    return int(oid.generation_time.timestamp()) // SECONDS_A_DAY


def feed_key(club_id: ObjectId, post_id: ObjectId, status: str) -> str | None:
    return f"{club_id}:{day_of(post_id)}" if status == VISIBLE else None


# --- counting posts by day -------------------------------------------------------------


def count_post(writes: Writes, club_id: ObjectId, post_id: ObjectId) -> None:
    """Count a new post, whatever its status, on its club's day, with its other writes."""
    writes.update(
        PostDays._get_collection(), {"_id": club_id}, _counted(day_of(post_id)), upsert=True
    )


def _counted(day: int) -> list[dict[str, Any]]:
    """The update (a pipeline, so that it needs no read first) that counts one more post
    on `day`: the club's last day gains one; a later day closes the last into `days` and
    starts at one; an earlier day, from an id made on a clock a little behind another
    around midnight, goes into `days` on its own."""
    known = {"$ne": [{"$ifNull": ["$last_day", None]}, None]}
    same = {"$eq": ["$last_day", day]}
    earlier = {"$and": [known, {"$lt": [day, "$last_day"]}]}
    closed = {"$concat": [{"$toString": "$last_day"}, ":", {"$toString": "$last_count"}, ","]}
    added = {
        "$switch": {
            "branches": [
                {"case": earlier, "then": f"{day}:1,"},
                {"case": {"$and": [known, {"$not": [same]}]}, "then": closed},
            ],
            "default": "",
        }
    }
    return [
        {
            "$set": {
                "days": {"$concat": [{"$ifNull": ["$days", ""]}, added]},
                "last_count": {
                    "$switch": {
                        "branches": [
                            {"case": same, "then": {"$add": ["$last_count", 1]}},
                            {"case": earlier, "then": "$last_count"},
                        ],
                        "default": 1,
                    }
                },
                "last_day": {"$cond": [earlier, "$last_day", day]},
            }
        }
    ]


def _newest_days(days: Days, club: ObjectId) -> Iterator[tuple[int, int, ObjectId]]:
    """A club's (day, posts, club), newest first, read from the end of `days` only as far
    as the caller goes (a club posting daily adds a record a day)."""
    if days.get("last_day") is not None:
        yield days["last_day"], days["last_count"], club
    text: str = days.get("days") or ""
    end = len(text) - 1  # the record's closing comma
    while end > 0:
        start = text.rfind(",", 0, end) + 1
        day, _, posts = text[start:end].partition(":")
        yield int(day), int(posts), club
        end = start - 1


# --- reading the day counts with the clubs ---------------------------------------------


def _with_days(local_field: str) -> dict[str, Any]:
    return {
        "$lookup": {
            "from": PostDays._get_collection_name(),
            "localField": local_field,
            "foreignField": "_id",
            "as": "days",
        }
    }


def member_days(user_id: ObjectId) -> dict[ObjectId, Days]:
    """The day counts of the clubs `user_id` is an active member of, in one command."""
    rows = Membership._get_collection().aggregate(
        [
            {"$match": {"user_id": user_id, "status": ACTIVE}},
            {"$project": {"_id": 0, "club_id": 1}},
            _with_days("club_id"),
        ]
    )
    return {row["club_id"]: next(iter(row["days"]), {}) for row in rows}


def club_days(club_id: Any) -> dict[ObjectId, Days]:
    """The day counts of one club, in the command that finds it."""
    oid = object_id(club_id)
    if oid is None:
        raise ClubNotFound()
    rows = Club._get_collection().aggregate(
        [{"$match": {"_id": oid}}, {"$project": {"_id": 1}}, _with_days("_id")]
    )
    found = next(iter(rows), None)
    if found is None:
        raise ClubNotFound()
    return {oid: next(iter(found["days"]), {})}


# --- a page ----------------------------------------------------------------------------


def _cursors() -> URLSafeSerializer:
    return URLSafeSerializer(
        current_app.config["SECRET_KEY"], salt="cursor:posts:feed_key", serializer=json_util
    )


def _read_cursor(cursor: str) -> tuple[int, ObjectId | None, int | None]:
    """(the newest day to list, the post the last page ended with, how many posts of that
    day it left), from a cursor; a cursor of the previous release has no count."""
    try:
        day, before, *left = _cursors().loads(cursor)
    except (BadData, ValueError, TypeError) as exc:
        raise InvalidCursor() from exc
    left_count = left[0] if left else None
    if (
        not isinstance(day, int)
        or not isinstance(before, ObjectId | None)
        or not isinstance(left_count, int | None)
        or len(left) > 1
    ):
        raise InvalidCursor()
    return day, before, left_count if before is not None else None


def _window(
    days_by_club: Mapping[ObjectId, Days], top: int | None, left: int | None, wanted: int
) -> tuple[list[str], int | None]:
    """The feed keys of the newest whole days, from `top` down, whose posts make `wanted`
    (`left` counts those of day `top` when the previous page ended in it), and the oldest
    day they take (None: they take every day there is)."""
    newest_first = heapq.merge(
        *(_newest_days(days, club) for club, days in days_by_club.items()),
        key=lambda record: -record[0],
    )
    keys: dict[str, None] = {}
    counted, current = 0, None
    for day, posts, club in newest_first:
        if top is not None and day > top:
            continue
        if day != current:
            if counted >= wanted:
                return list(keys), current
            current = day
            if day == top and left is not None:
                counted += left
        if day == top and left is not None:
            if left:
                keys[f"{club}:{day}"] = None
            continue
        counted += posts
        keys[f"{club}:{day}"] = None
    return list(keys), None


# SecantusDB matches an `$in` value by value against each document an index lookup brings,
# and a `$lookup` costs about as much as matching 250 values: one `$in` of every key costs
# keys x posts, one lookup per key a fixed price each. Lookups of a few keys each cost the
# least (measured: 3.4 ms for a page of 20, 10 ms for a page of 100, against 3.0 and 16 ms
# for one `$in` and 8 and 27 ms for a lookup per key).
KEYS_A_LOOKUP = 8


def _posts_under(keys: list[str]) -> list[dict[str, Any]]:
    """The visible posts of the given feed keys, in one command."""
    if not keys:
        return []
    rows = Post._get_db().aggregate(
        [
            {
                "$documents": [
                    {"keys": keys[start : start + KEYS_A_LOOKUP]}
                    for start in range(0, len(keys), KEYS_A_LOOKUP)
                ]
            },
            {
                "$lookup": {
                    "from": Post._get_collection_name(),
                    "localField": "keys",
                    "foreignField": "feed_key",
                    "as": "posts",
                }
            },
        ]
    )
    return [post for row in rows for post in row["posts"]]


def newest_posts(
    days_by_club: Mapping[ObjectId, Days], cursor: str | None, limit: int
) -> dict[str, Any]:
    """Visible posts of the clubs whose day counts are given, newest first,
    keyset-paginated (`{items, next_cursor}`)."""
    top, before, left = _read_cursor(cursor) if cursor else (None, None, None)
    keys, oldest_day = _window(days_by_club, top, left, limit + 1)
    found = sorted(
        (row for row in _posts_under(keys) if before is None or row["_id"] < before),
        key=lambda row: row["_id"],
        reverse=True,
    )
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        last = page[-1]["_id"]
        day = day_of(last)
        rest = sum(1 for row in found[limit:] if day_of(row["_id"]) == day)
        next_cursor = _cursors().dumps([day, last, rest])
    elif oldest_day is not None:
        # Short: some counted posts are gone. The next page starts below these days.
        next_cursor = _cursors().dumps([oldest_day - 1, None, None])
    return {"items": [ListedPost.stored(row) for row in page], "next_cursor": next_cursor}


@dataclass(frozen=True, slots=True)
class ListedPost:
    """A post of a list (`PostSchema`'s fields), taken from its stored document directly,
    not decoded into a mongoengine `Post`: every owner opening the app reads the feed, and
    a page's decode cost as much as its reads."""

    id: ObjectId
    club_id: ObjectId
    city_code: str | None
    author_id: ObjectId | None
    author_name: str
    body: str
    image_urls: list[str]
    status: str
    like_count: int
    comment_count: int
    featured: bool
    featured_at: datetime | None
    created_at: datetime

    @classmethod
    def stored(cls, found: dict[str, Any]) -> ListedPost:
        """From the stored document, with the model's defaults for what it lacks."""
        return cls(
            id=found["_id"],
            club_id=found["club_id"],
            city_code=found.get("city_code"),
            author_id=found.get("author_id"),
            author_name=found["author_name"],
            body=found["body"],
            image_urls=found.get("image_urls") or [],
            status=found.get("status", VISIBLE),
            like_count=found.get("like_count", 0),
            comment_count=found.get("comment_count", 0),
            featured=found.get("featured", False),
            featured_at=found.get("featured_at"),
            created_at=found.get("created_at") or utcnow(),
        )
