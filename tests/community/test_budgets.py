"""Command budgets of the community's hot paths (STYLE.md habit 14)."""

from __future__ import annotations

from tests.community.conftest import API, owner, post_in
from tests.support import count_commands


def test_reads_cost_at_most_three_commands(client, make_club):
    author = owner()
    clubs = [make_club(name=f"Club {n}", members=(author,)) for n in range(5)]
    post = post_in(client, clubs[0], author)
    client.post(f"{API}/posts/{post['id']}/comments", json={"body": "hi"}, headers=author.headers)
    for url in (
        f"{API}/feed",
        f"{API}/clubs/{clubs[0].pk}/posts",
        f"{API}/posts/{post['id']}",
        f"{API}/posts/{post['id']}/comments",
    ):
        with count_commands() as commands:
            response = client.get(url, headers=author.headers)
        assert response.status_code == 200
        assert response.json.get("items", [response.json])
        assert len(commands) <= 3, (url, commands.names)


def test_writes_cost_at_most_five_commands_a_comment_seven(client, make_club):
    author = owner()
    club = make_club(members=(author,))
    post_in(client, club, author)  # the sensitive-word list is read once per refresh
    with count_commands() as commands:
        post = post_in(client, club, author)
    assert len(commands) <= 5, commands.names
    like = f"{API}/posts/{post['id']}/reactions/like"
    for method in (client.put, client.delete):
        with count_commands() as commands:
            assert method(like, headers=author.headers).status_code == 200
        assert len(commands) <= 5, commands.names
    with count_commands() as commands:
        response = client.post(
            f"{API}/posts/{post['id']}/comments", json={"body": "hi"}, headers=author.headers
        )
    assert response.status_code == 201
    # The post and the membership both decide; the post's counter is written with it.
    assert len(commands) <= 7, commands.names
