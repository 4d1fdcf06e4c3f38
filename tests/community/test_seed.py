from __future__ import annotations

from accounts.seed import DEMO_CITIES, DEMO_PASSWORD
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


def test_a_demo_owner_is_an_established_account(app, client):
    # The new-account limit (3 posts a day) is not what a demo should show first.
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    login = {"email": "owner1.sz@demo.example", "password": DEMO_PASSWORD}
    token = client.post("/api/v1/auth/login", json=login).json["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    [club] = client.get("/api/v1/me/clubs", headers=headers).json["items"]
    posted = [
        client.post(
            f"/api/v1/clubs/{club['id']}/posts", json={"body": f"Drive {n}"}, headers=headers
        ).status_code
        for n in range(4)
    ]
    assert posted == [201] * 4


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
