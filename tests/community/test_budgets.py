"""Command budgets of the community's hot paths (STYLE.md habit 14): READ_BUDGET and
WRITE_BUDGET of tests/support.py, counted over the whole request, the caller's account
included."""

from __future__ import annotations

from tests.community.conftest import API, owner, post_in
from tests.support import READ_BUDGET, WRITE_BUDGET, within_budget


def _page(client, person, url: str) -> dict:
    with within_budget(READ_BUDGET):
        response = client.get(url, headers=person.headers)
    assert response.status_code == 200, response.json
    assert response.json["items"], url
    return response.json


def test_reads(client, make_club):
    author = owner()
    clubs = [make_club(name=f"Club {n}", members=(author,)) for n in range(5)]
    post = post_in(client, clubs[0], author)
    client.post(f"{API}/posts/{post['id']}/comments", json={"body": "hi"}, headers=author.headers)
    for url in (
        f"{API}/feed",
        f"{API}/clubs/{clubs[0].pk}/posts",
        f"{API}/posts/{post['id']}/comments",
    ):
        _page(client, author, url)
    with within_budget(READ_BUDGET):
        assert client.get(f"{API}/posts/{post['id']}", headers=author.headers).status_code == 200


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
    with within_budget(WRITE_BUDGET):
        joined = client.post(f"{API}/clubs/{club.pk}/members", headers=newcomer.headers)
    assert joined.status_code == 201
    with within_budget(WRITE_BUDGET):
        left = client.delete(f"{API}/clubs/{club.pk}/members/me", headers=newcomer.headers)
    assert left.status_code == 204
