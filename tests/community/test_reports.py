"""Reports: their weight, content hidden at the threshold, and the review queue."""

from __future__ import annotations

from community.models import Post, Report
from tests.community.conftest import API, owner, post_in, report
from tests.support import make_person


def test_reports_weigh_and_hide_content_at_the_threshold(client, make_club):
    author = owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)
    first = report(client, owner(), post["id"])
    assert first.status_code == 201 and first.json["weight"] == 1.0
    verified = owner(verified_owner=True)
    second = report(client, verified, post["id"])
    assert second.status_code == 201 and second.json["weight"] == 2.0
    repeat = report(client, verified, post["id"])
    assert repeat.status_code == 200 and repeat.json["id"] == second.json["id"]
    assert Report.objects.count() == 2
    # 1 + 2 reaches the default threshold of 3: hidden at once, gone from the lists.
    assert Post.objects.get(pk=post["id"]).status == "hidden"
    assert client.get(f"{API}/clubs/{club.pk}/posts", headers=author.headers).json["items"] == []
    assert report(client, owner(), "nope").status_code == 422


def test_the_queue_groups_targets_heaviest_first(client, make_club, ambassador):
    author = owner()
    club = make_club(members=(author,))
    light, heavy = post_in(client, club, author), post_in(client, club, author, "other")
    report(client, owner(), light["id"])
    report(client, owner(), heavy["id"])
    report(client, owner(), heavy["id"])
    queue = client.get(f"{API}/moderation/queue", headers=ambassador.headers).json["items"]
    assert [(item["target_id"], item["reports"]) for item in queue] == [
        (heavy["id"], 2),
        (light["id"], 1),
    ]
    other = make_person("CD", role="ambassador")
    assert client.get(f"{API}/moderation/queue", headers=other.headers).json["items"] == []
    elsewhere = client.get(f"{API}/moderation/queue?city=SZ", headers=other.headers)
    assert elsewhere.status_code == 403 and elsewhere.json["error"] == "forbidden"
    assert client.get(f"{API}/moderation/queue", headers=author.headers).status_code == 403
