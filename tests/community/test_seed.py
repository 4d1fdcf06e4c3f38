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
        # The two first posts, and one reported for the review desk (another is held).
        assert Post.objects(club_id=club.pk, status="visible").count() == 3
        assert Post.objects(club_id=club.pk, status="held").count() == 1


def test_seed_demo_gives_each_citys_ambassador_a_queue(app):
    from app.auth import load_caller
    from community import review_queue
    from tests.support import make_person

    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    for code, _, _ in DEMO_CITIES:
        ambassador = load_caller(make_person(code, role="ambassador").id)
        items = review_queue.queue(ambassador, code)["items"]
        reasons = sorted(reason for item in items for reason in item["queue_reasons"])
        assert reasons == ["held", "reported", "reported"], (code, items)
