from __future__ import annotations

from accounts.seed import DEMO_CITIES
from community.models import Club, Post


def test_seed_demo_creates_a_club_with_members_and_posts_per_city(app):
    for _ in range(2):  # a second run adds nothing
        result = app.test_cli_runner().invoke(args=["seed-demo"])
        assert result.exit_code == 0, result.output
    assert Club.objects.count() == len(DEMO_CITIES)
    for club in Club.objects:
        assert club.member_count == 2
        assert Post.objects(club_id=club.pk, status="visible").count() == 2
