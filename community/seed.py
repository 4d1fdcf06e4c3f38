"""Demo data for the community: a club per demo city, run by its demo circle leader, with
the city's demo owners as members and a first post each."""

from __future__ import annotations

from accounts.seed import DEMO_CITIES, demo_leader, demo_owner
from community import clubs, posts
from community.models import Club

DEMO_POSTS = (
    "Picked up my car today. Any tips for the first long drive?",
    "Coffee and a charge at the brand space this weekend: who is in?",
)


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
        lines.append(f"community {code}: club {club_name!r} with members and posts")
    return lines
