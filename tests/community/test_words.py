from __future__ import annotations

import time

import pytest

from community import words
from community.models import Post
from tests.community.conftest import API, owner, post_in


@pytest.fixture
def listed(client, admin):
    def add(word: str) -> dict:
        response = client.post(
            f"{API}/admin/sensitive-words", json={"word": word}, headers=admin.headers
        )
        assert response.status_code == 201, response.json
        return response.json

    return add


@pytest.mark.parametrize(
    "text",
    [
        "buy SPAMWARE now",  # case
        "buy ｓｐａｍｗａｒｅ now",  # full-width letters
        "s p a m-w.a*r_e!",  # spaces, punctuation, symbols between letters
        "這是違禁詞啊",  # Traditional for the Simplified word listed
        "这 是·违 禁-词",
    ],
)
def test_evasions_are_seen_through(client, make_club, listed, text):
    listed("spamware")
    listed("违禁词")
    author, reader = owner(), owner()
    club = make_club(members=(author, reader))
    post = post_in(client, club, author, text)
    assert post["status"] == "held"
    assert client.get(f"{API}/posts/{post['id']}", headers=author.headers).status_code == 200
    assert client.get(f"{API}/posts/{post['id']}", headers=reader.headers).status_code == 404
    assert client.get(f"{API}/clubs/{club.pk}/posts", headers=reader.headers).json["items"] == []


def test_held_content_waits_in_the_queue_and_is_released(client, make_club, listed, ambassador):
    listed("spamware")
    author = owner()
    club = make_club(members=(author,))
    clean = post_in(client, club, author, "a clean post")
    held = post_in(client, club, author, "SpamWare deals")
    assert clean["status"] == "visible"
    queue = client.get(f"{API}/moderation/queue", headers=ambassador.headers).json["items"]
    assert [(item["target_id"], item["status"]) for item in queue] == [(held["id"], "held")]
    released = client.post(
        f"{API}/moderation/actions",
        json={"target_type": "post", "target_id": held["id"], "action": "restore", "reason": "ok"},
        headers=ambassador.headers,
    )
    assert released.status_code == 201
    assert Post.objects.get(pk=held["id"]).status == "visible"


def test_removing_a_word_releases_new_posts(client, make_club, listed, admin):
    word = listed("spamware")
    author = owner()
    club = make_club(members=(author,))
    assert post_in(client, club, author, "spamware")["status"] == "held"
    assert (
        client.delete(
            f"{API}/admin/sensitive-words/{word['id']}", headers=admin.headers
        ).status_code
        == 204
    )
    assert post_in(client, club, author, "spamware")["status"] == "visible"
    dup = client.post(
        f"{API}/admin/sensitive-words", json={"word": "S P A M"}, headers=admin.headers
    )
    assert dup.status_code == 201
    again = client.post(
        f"{API}/admin/sensitive-words", json={"word": "spam"}, headers=admin.headers
    )
    assert again.status_code == 422 and again.json["error"] == "word_listed"


@pytest.mark.slow
def test_ten_thousand_words_match_in_one_pass(app):
    assert words.add_words([f"word{n:05d}x" for n in range(10_000)] + ["违禁词"]) == 10_001
    text = "lorem ipsum dolor sit amet " * 200
    assert words.contains_listed_word(text) is False  # builds the automaton once
    started = time.perf_counter()
    for _ in range(100):
        assert words.contains_listed_word(text + " WORD09999X ") is True
        assert words.contains_listed_word(text + "這是違禁詞") is True
    per_check = (time.perf_counter() - started) / 200
    assert per_check < 0.01, per_check
