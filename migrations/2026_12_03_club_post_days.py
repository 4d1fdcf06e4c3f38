"""2026-12-03: clubs count their posts by day, and the feed reads the counts first.

Until this release a page of the feed (and of a club's posts) looked its posts up over a
window of recent days that doubled until the page was full, up to six commands on a quiet
feed. Each club now has a `PostDays` document (collection `club_post_days`) counting its
posts by UTC day, written with each post, and a page reads the counts of its clubs with
the clubs, then the posts of just the days it needs: three commands whatever the feed. A
club without the document shows no posts from before this release, so this counts every
club's posts (of any status, as new posts are counted) in one pass over them. Run it after
stopping the previous release's API (a post it took meanwhile would not be counted) and
before starting this release's; running it again sets the same counts.

    python -m migrations.2026_12_03_club_post_days
"""

from __future__ import annotations

from collections import Counter, defaultdict

from pymongo import UpdateOne

from community.feed import day_of
from community.models import Post, PostDays

BATCH = 1_000


def migrate() -> dict[str, int]:
    """Returns how many clubs were given their counts."""
    by_club: defaultdict[object, Counter[int]] = defaultdict(Counter)
    for post in Post._get_collection().find({}, {"club_id": 1}):
        by_club[post["club_id"]][day_of(post["_id"])] += 1
    counted = 0
    batch: list[UpdateOne] = []
    for club_id, days in by_club.items():
        *earlier, last_day = sorted(days)
        document = {
            "days": "".join(f"{day}:{days[day]}," for day in earlier),
            "last_day": last_day,
            "last_count": days[last_day],
        }
        batch.append(UpdateOne({"_id": club_id}, {"$set": document}, upsert=True))
        if len(batch) == BATCH:
            counted += _write(batch)
            batch = []
    if batch:
        counted += _write(batch)
    return {"clubs_counted": counted}


def _write(batch: list[UpdateOne]) -> int:
    result = PostDays._get_collection().bulk_write(batch, ordered=False)
    return result.matched_count + result.upserted_count


if __name__ == "__main__":
    from app import create_app

    create_app()
    print(migrate())
