from __future__ import annotations

from app.outbox import OutboxEvent
from community.models import Post
from notifications.models import Notification
from tests.community.conftest import API, owner, post_in
from tests.events.conftest import deliver
from tests.support import make_person


def test_members_post_and_comment_others_cannot(client, make_club):
    author, reader = owner(), owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author, "First drive\nto the coast")
    assert post["status"] == "visible" and post["body"] == "First drive\nto the coast"
    refused = client.post(
        f"{API}/clubs/{club.pk}/posts", json={"body": "hi"}, headers=reader.headers
    )
    assert refused.status_code == 403 and refused.json["error"] == "not_member"
    refused = client.post(
        f"{API}/posts/{post['id']}/comments", json={"body": "hi"}, headers=reader.headers
    )
    assert refused.status_code == 403 and refused.json["error"] == "not_member"
    assert Post.objects.count() == 1
    [published] = OutboxEvent.objects(type="post.published")
    assert published.payload["author_id"] == author.id and published.subject_id == post["id"]


def test_bad_posts_are_refused(client, make_club):
    author = owner()
    club = make_club(members=(author,))
    url = f"{API}/clubs/{club.pk}/posts"
    for body in (
        {"body": ""},
        {"body": "x" * 5001},
        {"body": "ok", "image_urls": ["http://example.com/a.jpg"]},
        {"body": "ok", "image_urls": [f"https://example.com/{n}.jpg" for n in range(10)]},
        {"body": "bad\x00"},
    ):
        response = client.post(url, json=body, headers=author.headers)
        assert response.status_code == 422, body
    assert (
        client.post(
            f"{API}/clubs/nope/posts", json={"body": "x"}, headers=author.headers
        ).status_code
        == 403
    )
    assert Post.objects.count() == 0


def test_likes_are_idempotent_and_counted(client, make_club):
    author, fan = owner(), owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)
    url = f"{API}/posts/{post['id']}/reactions/like"
    assert client.put(url, headers=fan.headers).json["like_count"] == 1
    assert client.put(url, headers=fan.headers).json["like_count"] == 1
    assert client.put(url, headers=author.headers).json["like_count"] == 2
    assert client.delete(url, headers=fan.headers).json["like_count"] == 1
    assert client.delete(url, headers=fan.headers).json["like_count"] == 1
    assert client.put(f"{API}/posts/nope/reactions/like", headers=fan.headers).status_code == 404


def test_feed_and_club_posts_newest_first_and_deleted_posts_go(client, make_club):
    author = owner()
    first = make_club(members=(author,))
    second = make_club(name="Second", members=(author,))
    elsewhere = make_club(name="Elsewhere")
    ids = [
        post_in(client, club, author, f"post {n}")["id"]
        for n, club in enumerate((first, second, first))
    ]
    Post(club_id=elsewhere.pk, author_name="x", body="not mine", city_code="SZ").save()
    page = client.get(f"{API}/feed?limit=2", headers=author.headers).json
    assert [p["id"] for p in page["items"]] == ids[::-1][:2]
    rest = client.get(
        f"{API}/feed?limit=2&cursor={page['next_cursor']}", headers=author.headers
    ).json
    assert [p["id"] for p in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    club_page = client.get(f"{API}/clubs/{first.pk}/posts", headers=author.headers).json
    assert [p["id"] for p in club_page["items"]] == [ids[2], ids[0]]
    other = owner()
    assert client.delete(f"{API}/posts/{ids[0]}", headers=other.headers).status_code == 403
    assert client.delete(f"{API}/posts/{ids[0]}", headers=author.headers).status_code == 204
    assert client.get(f"{API}/posts/{ids[0]}", headers=author.headers).status_code == 404
    club_page = client.get(f"{API}/clubs/{first.pk}/posts", headers=author.headers).json
    assert [p["id"] for p in club_page["items"]] == [ids[2]]


def test_comments_oldest_first_counted_and_the_author_is_told(client, make_club):
    author, commenter = owner(), owner()
    club = make_club(members=(author, commenter))
    post = post_in(client, club, author)
    url = f"{API}/posts/{post['id']}/comments"
    first = client.post(url, json={"body": "Nice!"}, headers=commenter.headers)
    assert first.status_code == 201
    client.post(url, json={"body": "Thanks"}, headers=author.headers)
    listed = client.get(url, headers=commenter.headers).json["items"]
    assert [c["body"] for c in listed] == ["Nice!", "Thanks"]
    assert (
        client.get(f"{API}/posts/{post['id']}", headers=author.headers).json["comment_count"] == 2
    )
    deliver("comment.created")
    told = Notification.objects(user_id=author.user.pk, template="post_commented")
    assert told.count() == 1
    assert Notification.objects(user_id=commenter.user.pk, template="post_commented").count() == 0
    assert (
        client.delete(f"{API}/comments/{first.json['id']}", headers=author.headers).status_code
        == 403
    )
    assert (
        client.delete(f"{API}/comments/{first.json['id']}", headers=commenter.headers).status_code
        == 204
    )
    assert (
        client.get(f"{API}/posts/{post['id']}", headers=author.headers).json["comment_count"] == 1
    )


def test_new_accounts_post_three_times_a_day(client, make_club):
    newcomer = make_person()
    club = make_club(members=(newcomer,))
    for _ in range(3):
        post_in(client, club, newcomer)
    refused = client.post(
        f"{API}/clubs/{club.pk}/posts", json={"body": "4th"}, headers=newcomer.headers
    )
    assert refused.status_code == 429 and refused.json["error"] == "new_account_limit"
    assert int(refused.headers["Retry-After"]) > 0
    assert Post.objects.count() == 3


def test_per_minute_limits_on_likes(app, client, make_club):
    author, fan = owner(), owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)
    app.config["RATELIMIT_LIKES_PER_USER"] = "2 per minute"
    try:
        url = f"{API}/posts/{post['id']}/reactions/like"
        assert client.put(url, headers=fan.headers).status_code == 200
        assert client.delete(url, headers=fan.headers).status_code == 200
        limited = client.put(url, headers=fan.headers)
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        assert client.put(url, headers=author.headers).status_code == 200
    finally:
        app.config["RATELIMIT_LIKES_PER_USER"] = "1000 per minute"
