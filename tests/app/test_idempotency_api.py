"""Every POST that creates something honours `Idempotency-Key` the same way, through HTTP:
the same key and body sent again answer the first response and create nothing more, also
when sent at once; the served document says so on each such operation."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from accounts.models import User, Vehicle
from app.web import IDEMPOTENT_NOTE
from community.models import Club, Comment, Post, Report, SensitiveWord
from events.models import Event
from loyalty.models import Reward
from partners.models import CityPartner
from tests.community.conftest import owner
from tests.events.conftest import event_body
from tests.support import make_city, make_person

API = "/api/v1"
# Created with keys of their own instead: a partner's transaction ids, a statement's date.
KEYED_OTHERWISE = {
    ("post", "/api/v1/partner/points/credits"),
    ("post", "/api/v1/partner/points/debits"),
    ("post", "/api/v1/partner/points/reversals"),
    ("post", "/api/v1/partner/statements"),
}


def sent_twice(client, url: str, body: dict[str, Any] | None, headers: dict[str, str]):
    """POST twice with one key: the second answer is the first, replayed."""
    keyed = {**headers, "Idempotency-Key": f"retry:{url}"}
    first = client.post(url, json=body, headers=keyed)
    again = client.post(url, json=body, headers=keyed)
    assert first.status_code in (200, 201, 202), first.json
    assert (again.status_code, again.get_data()) == (first.status_code, first.get_data())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    return first.json


def test_every_creating_post_documents_the_key_and_the_replayed_header(client):
    spec = client.get(f"{API}/openapi.json").json
    creating = [
        (path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method == "post"
        and (path, method) not in {(p, m) for m, p in KEYED_OTHERWISE}
        and ({"201", "202"} & set(operation["responses"]))
        and "replay" not in path
        and "password-reset" not in path
    ]
    assert len(creating) >= 20
    for path, operation in creating:
        parameters = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        assert "Idempotency-Key" in parameters, path
        assert IDEMPOTENT_NOTE in operation["description"], path
        for status, answer in operation["responses"].items():
            if status.startswith("2"):
                assert "Idempotent-Replayed" in answer["headers"], (path, status)
        assert "idempotency_key_reused" in str(operation["responses"]["422"]), path


def test_sign_up_vehicles_cities_and_grants(client):
    make_city("SZ")
    signed_up = sent_twice(
        client,
        f"{API}/auth/register",
        {
            "email": "li@example.com",
            "password": "a-long-password",
            "display_name": "Li",
            "city_code": "SZ",
        },  # noqa: E501
        {},
    )
    assert User.objects(email="li@example.com").count() == 1
    owner_headers = {"Authorization": f"Bearer {signed_up['access_token']}"}
    sent_twice(
        client, f"{API}/me/vehicles", {"vin": "LSVAB2BM1CN000123", "model": "#1"}, owner_headers
    )
    assert Vehicle.objects.count() == 1
    admin = make_person("SZ", role="admin")
    sent_twice(
        client,
        f"{API}/cities",
        {"code": "CD", "name": "Chengdu", "province": "Sichuan"},
        admin.headers,
    )
    grant = {"user_id": signed_up["user"]["id"], "role": "ambassador", "city_codes": ["SZ"]}
    sent_twice(client, f"{API}/admin/role-grants", grant, admin.headers)
    assert len(User.objects.get(email="li@example.com").grants) == 1
    # Before sign-up a key is the body's: another person's key never answers for them.
    other = client.post(
        f"{API}/auth/register",
        json={
            "email": "wu@example.com",
            "password": "a-long-password",
            "display_name": "Wu",
            "city_code": "SZ",
        },  # noqa: E501
        headers={"Idempotency-Key": f"retry:{API}/auth/register"},
    )
    assert other.status_code == 201 and other.json["user"]["display_name"] == "Wu"


def test_clubs_members_posts_comments_reports_and_moderation(client):
    leader = make_person("SZ", role="circle_leader")
    ambassador = make_person("SZ", role="ambassador")
    admin = make_person("SZ", role="admin")
    member, reporter = owner(), owner()
    club = sent_twice(
        client,
        f"{API}/clubs",
        {"name": "Drives", "kind": "city", "city_code": "SZ"},
        leader.headers,
    )
    assert Club.objects.count() == 1
    for person in (member, reporter):
        sent_twice(client, f"{API}/clubs/{club['id']}/members", None, person.headers)
    post = sent_twice(client, f"{API}/clubs/{club['id']}/posts", {"body": "Hello"}, member.headers)
    assert Post.objects.count() == 1
    sent_twice(client, f"{API}/posts/{post['id']}/comments", {"body": "Hi"}, reporter.headers)
    assert Comment.objects.count() == 1
    report = {"target_type": "post", "target_id": post["id"], "reason": "spam"}
    sent_twice(client, f"{API}/reports", report, reporter.headers)
    assert Report.objects.count() == 1
    action = {"target_type": "post", "target_id": post["id"], "action": "hide", "reason": "spam"}
    sent_twice(client, f"{API}/moderation/actions", action, ambassador.headers)
    sent_twice(client, f"{API}/admin/sensitive-words", {"word": "badword"}, admin.headers)
    assert SensitiveWord.objects.count() == 1


def test_events_rewards_and_partners(client):
    leader = make_person("SZ", role="circle_leader")
    admin = make_person("SZ", role="admin")
    sent_twice(client, f"{API}/events", event_body(), leader.headers)
    assert Event.objects.count() == 1
    reward = {"title": "Mug", "cost": 100, "stock": 5, "fulfillment": "pickup"}
    sent_twice(client, f"{API}/rewards", reward, admin.headers)
    assert Reward.objects.count() == 1
    partner = {
        "name": "SZ Motors",
        "contact": "ops@example.com",
        "city_code": "SZ",
        "contract_start": "2026-01-01",
        "contract_end": "2030-12-31",
    }
    sent_twice(client, f"{API}/admin/city-partners", partner, admin.headers)
    assert CityPartner.objects.count() == 1
    system = sent_twice(
        client,
        f"{API}/admin/partners",
        {"name": "ChargeCo", "max_points_per_txn": 500},
        admin.headers,
    )
    assert system["secret"]
    sent_twice(client, f"{API}/admin/reconciliation/runs", None, admin.headers)


def test_a_post_sent_five_times_at_once_with_one_key_is_made_once(client, live_server):
    leader = make_person("SZ", role="circle_leader")
    member = owner()
    club = client.post(
        f"{API}/clubs",
        json={"name": "Drives", "kind": "city", "city_code": "SZ"},
        headers=leader.headers,
    ).json
    client.post(f"{API}/clubs/{club['id']}/members", headers=member.headers)
    start = threading.Barrier(5)

    def send(_: int) -> requests.Response:
        start.wait(10)
        return requests.post(
            f"{live_server}{API}/clubs/{club['id']}/posts",
            json={"body": "Hello"},
            headers={**member.headers, "Idempotency-Key": "tap-tap-tap"},
            timeout=30,
        )

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(send, range(5)))
    assert [answer.status_code for answer in answers] == [201] * 5, [a.text for a in answers]
    assert len({answer.content for answer in answers}) == 1
    assert sum(answer.headers.get("Idempotent-Replayed") == "true" for answer in answers) == 4
    assert Post.objects(club_id=club["id"]).count() == 1
