from __future__ import annotations

from community.models import ERASED_BODY, Club, Comment, Post
from tests.community.conftest import API, owner, post_in
from tests.events.conftest import deliver


def test_the_export_holds_clubs_posts_comments_and_reports(client, make_club):
    author, other = owner(), owner()
    club = make_club(members=(author, other))
    post = post_in(client, club, author, "my words")
    client.post(f"{API}/posts/{post['id']}/comments", json={"body": "mine"}, headers=author.headers)
    theirs = post_in(client, club, other)
    client.post(
        f"{API}/reports",
        json={"target_type": "post", "target_id": theirs["id"], "reason": "rude"},
        headers=author.headers,
    )
    export = client.get(f"{API}/me/export", headers=author.headers).json
    assert [c["club_id"] for c in export["clubs"]] == [str(club.pk)]
    assert [p["body"] for p in export["posts"]] == ["my words"]
    assert [c["body"] for c in export["comments"]] == ["mine"]
    assert [(r["target_id"], r["reason"]) for r in export["reports"]] == [(theirs["id"], "rude")]


def test_erasure_detaches_the_author_and_keeps_counts_right(client, make_club):
    author, reader = owner(), owner()
    club = make_club(members=(author, reader))
    post = post_in(client, club, author, "my words")
    client.post(f"{API}/posts/{post['id']}/comments", json={"body": "mine"}, headers=author.headers)
    client.post(
        f"{API}/posts/{post['id']}/comments", json={"body": "yours"}, headers=reader.headers
    )
    assert client.delete(f"{API}/me", headers=author.headers).status_code == 204
    deliver("user.erased")
    erased = Post.objects.get(pk=post["id"])
    assert (erased.body, erased.image_urls, erased.author_id) == (ERASED_BODY, [], None)
    assert erased.comment_count == 2
    assert [c.body for c in Comment.objects.order_by("id")] == [ERASED_BODY, "yours"]
    assert Comment.objects(author_id=author.user.pk).count() == 0
    assert Club.objects.get(pk=club.pk).member_count == 1
    shown = client.get(f"{API}/posts/{post['id']}", headers=reader.headers).json
    assert shown["author_id"] is None and shown["body"] == ERASED_BODY
