"""Counters stay exact under truly concurrent requests on the real server."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from community.models import VISIBLE, Club, Comment, Like, Membership, Post
from tests.community.conftest import API, post_in, seasoned
from tests.events.conftest import many_owners


@pytest.mark.alone
def test_fifty_owners_joining_and_leaving_keep_member_count_exact(live_server, make_club):
    club = make_club()
    owners = many_owners(50)
    rng = random.Random(7)

    def churn(person) -> None:
        with requests.Session() as http:
            for _ in range(4):
                method = http.post if rng.random() < 0.6 else http.delete
                path = "members" if method == http.post else "members/me"
                response = method(
                    f"{live_server}{API}/clubs/{club.pk}/{path}", headers=person.headers
                )
                assert response.status_code in (201, 204, 404, 409), response.text

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(churn, owners))
    truth = Membership.objects(club_id=club.pk, status="active").count()
    assert 0 < truth < 50
    assert Club.objects.get(pk=club.pk).member_count == truth


@pytest.mark.alone
def test_fifty_likes_and_unlikes_keep_like_count_exact(live_server, client, make_club):
    owners = many_owners(50)
    club = make_club(members=(owners[0],))

    post = post_in(client, club, seasoned(owners[0]))
    url = f"{live_server}{API}/posts/{post['id']}/reactions/like"
    rng = random.Random(11)

    def react(person) -> None:
        with requests.Session() as http:
            for _ in range(3):
                method = http.put if rng.random() < 0.6 else http.delete
                assert method(url, headers=person.headers).status_code == 200

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(react, owners))
    truth = Like.objects(post_id=post["id"]).count()
    assert 0 < truth <= 50
    assert Post.objects.get(pk=post["id"]).like_count == truth


@pytest.mark.alone
def test_thirty_owners_commenting_and_deleting_keep_comment_count_exact(
    live_server, client, make_club
):
    owners = [seasoned(person) for person in many_owners(30)]
    club = make_club(members=tuple(owners))
    post = post_in(client, club, owners[0])
    url = f"{live_server}{API}/posts/{post['id']}/comments"

    def discuss(person) -> None:
        with requests.Session() as http:
            said = []
            for n in range(3):
                response = http.post(url, json={"body": f"take {n}"}, headers=person.headers)
                assert response.status_code == 201, response.text
                said.append(response.json()["id"])
            gone = http.delete(f"{live_server}{API}/comments/{said[1]}", headers=person.headers)
            assert gone.status_code == 204, gone.text

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(discuss, owners))
    truth = Comment.objects(post_id=post["id"], status=VISIBLE).count()
    assert truth == 60
    assert Post.objects.get(pk=post["id"]).comment_count == truth
