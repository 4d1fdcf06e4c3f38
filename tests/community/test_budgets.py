"""Command budgets of the community's hot paths (STYLE.md habit 14): READ_BUDGET and
WRITE_BUDGET of tests/support.py, counted over the whole request, the caller's account
included."""

from __future__ import annotations

import importlib

from tests.community.conftest import API, established, old_club, old_post, owner, post_in, report
from tests.support import READ_BUDGET, WRITE_BUDGET, within_budget

migration = importlib.import_module("migrations.2026_12_03_club_post_days")


def _page(client, person, url: str) -> dict:
    with within_budget(READ_BUDGET):
        response = client.get(url, headers=person.headers)
    assert response.status_code == 200, response.json
    assert response.json["items"], url
    return response.json


def test_reads(client, make_club):
    author = owner()
    clubs = [make_club(name=f"Club {n}", members=(author,)) for n in range(5)]
    post = [post_in(client, clubs[n % 5], author, f"post {n}") for n in range(12)][-1]
    client.post(f"{API}/posts/{post['id']}/comments", json={"body": "hi"}, headers=author.headers)
    for url in (f"{API}/feed?limit=5", f"{API}/clubs/{clubs[0].pk}/posts?limit=1"):
        first = _page(client, author, url)
        _page(client, author, f"{url}&cursor={first['next_cursor']}")
    _page(client, author, f"{API}/posts/{post['id']}/comments")
    with within_budget(READ_BUDGET):
        assert client.get(f"{API}/posts/{post['id']}", headers=author.headers).status_code == 200


def test_a_quiet_feed_of_posts_weeks_old(client, app):
    reader = owner()
    clubs = [old_club(100) for _ in range(20)]
    for club in clubs:
        client.post(f"{API}/clubs/{club.pk}/members", headers=reader.headers)
    expected = [old_post(club, 20 + 3 * n) for n, club in enumerate(clubs)]
    migration.migrate()
    first = _page(client, reader, f"{API}/feed?limit=10")
    second = _page(client, reader, f"{API}/feed?limit=10&cursor={first['next_cursor']}")
    assert [post["id"] for post in first["items"] + second["items"]] == expected


def test_writes(client, make_club):
    author, newcomer = owner(), owner()
    club = make_club(members=(author,))
    post_in(client, club, author)  # the sensitive-word list is read once per refresh
    with within_budget(WRITE_BUDGET):
        post = post_in(client, club, author)
    like = f"{API}/posts/{post['id']}/reactions/like"
    for method in (client.put, client.delete):
        with within_budget(WRITE_BUDGET):
            assert method(like, headers=author.headers).status_code == 200
    with within_budget(WRITE_BUDGET):
        response = client.post(
            f"{API}/posts/{post['id']}/comments", json={"body": "hi"}, headers=author.headers
        )
    assert response.status_code == 201
    # With an Idempotency-Key the key's claim is the one more command, and its record
    # rides in the post's or comment's own write.
    keyed = {**author.headers, "Idempotency-Key": "budget-1"}
    with within_budget(WRITE_BUDGET) as commands:
        answer = client.post(f"{API}/clubs/{club.pk}/posts", json={"body": "k"}, headers=keyed)
    assert answer.status_code == 201 and commands.names.count("insert idempotency_keys") == 1
    with within_budget(WRITE_BUDGET):
        response = client.post(
            f"{API}/posts/{post['id']}/comments", json={"body": "k"}, headers=keyed
        )
    assert response.status_code == 201
    with within_budget(WRITE_BUDGET):
        joined = client.post(f"{API}/clubs/{club.pk}/members", headers=newcomer.headers)
    assert joined.status_code == 201
    with within_budget(WRITE_BUDGET):
        left = client.delete(f"{API}/clubs/{club.pk}/members/me", headers=newcomer.headers)
    assert left.status_code == 204


def test_a_report(client, make_club):
    """A report reads what its reporter's standing needs beyond the caller, who comes with
    the request: the target, the open report it may repeat, the reporter's membership of
    the content's club and their record of decided reports; it writes the report, then
    reads the target's open reports to decide whether to hide (issue 20: standing costs
    the membership read). 7 commands; past the threshold, hiding adds its transaction."""
    author = owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)
    reporter = established(club)
    report(client, reporter, post_in(client, club, author, "warm-up")["id"])
    with within_budget(7):
        assert report(client, reporter, post["id"]).status_code == 201
