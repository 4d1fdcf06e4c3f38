"""Demo data for the community: a club per demo city, run by its demo circle leader, with
the city's demo owners as members and a first post each; and something for the city's
ambassador to review: a post held for a listed word, and a post and an account reported."""

from __future__ import annotations

from accounts.seed import DEMO_CITIES, demo_leader, demo_owner
from community import clubs, posts, reports, words
from community.models import Club

DEMO_POSTS = (
    "Picked up my car today. Any tips for the first long drive?",
    "Coffee and a charge at the brand space this weekend: who is in?",
)
# A word communities commonly list (grey-market resale), so a demo post is held.
DEMO_WORDS = ("代购",)
DEMO_HELD = "代购原厂充电桩，便宜出，私聊"
DEMO_REPORTED = "Selling my spare charging cable, cheaper than the brand store, DM me"


def seed_clubs() -> list[str]:
    lines = []
    for code, name, _ in DEMO_CITIES:
        leader = demo_leader(code)
        if leader is None:
            continue
        club_name = f"{name} owners club"
        if Club.objects(city_code=code, name=club_name).first():
            continue
        club = clubs.create_club(
            leader,
            name=club_name,
            kind="city",
            city_code=code,
            description=f"Owners of {name}: drives, meet-ups, questions.",
        )
        for number, body in enumerate(DEMO_POSTS, start=1):
            owner = demo_owner(code, number)
            if owner is not None:
                clubs.join(owner, str(club.pk))
                posts.publish_post(owner, str(club.pk), body, [])
        _to_review(str(club.pk), code)
        lines.append(f"community {code}: club {club_name!r} with members and posts")
    return lines


def _to_review(club_id: str, code: str) -> None:
    """A held post, and a post and its author reported, for the review desk."""
    first, second = demo_owner(code, 1), demo_owner(code, 2)
    if first is None or second is None:
        return
    words.add_words(list(DEMO_WORDS))
    posts.publish_post(second, club_id, DEMO_HELD, [])
    reported = posts.publish_post(second, club_id, DEMO_REPORTED, [])
    reports.file_report(first, "post", str(reported.pk), "Advertising in the club")
    reports.file_report(first, "user", second.id, "Sells things in every club")
