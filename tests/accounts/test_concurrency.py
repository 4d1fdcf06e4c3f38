"""Real concurrent requests against a real HTTP server, and rate limits on real Redis."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from accounts.models import User
from tests.support import make_city, make_person


@pytest.mark.alone
def test_twenty_concurrent_signups_with_one_phone_give_one_account(live_server):
    make_city("SZ")

    def sign_up(number: int) -> int:
        # The same number written three ways: all normalise to +8613800138000.
        phone = ("13800138000", "+86 138 0013 8000", "138-0013-8000")[number % 3]
        return requests.post(
            f"{live_server}/api/v1/auth/register",
            timeout=30,
            json={
                "phone": phone,
                "password": "password-123",
                "display_name": f"Racer {number}",
                "city_code": "SZ",
            },
        ).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = Counter(pool.map(sign_up, range(20)))
    assert statuses == {201: 1, 409: 19}
    assert User.objects(phone="+8613800138000").count() == 1


def test_login_is_rate_limited_per_account(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_LOGIN_PER_ACCOUNT", "3 per minute")
    make_person(email="ann@example.com")
    attempt = {"email": "ANN@example.com", "password": "wrong-password"}
    statuses = [client.post("/api/v1/auth/login", json=attempt).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    limited = client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": "password-123"}
    )
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.json["error"] == "rate_limited"
    other = client.post(
        "/api/v1/auth/login", json={"email": "bob@example.com", "password": "wrong-password"}
    )
    assert other.status_code == 401


def test_login_is_rate_limited_per_ip(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_LOGIN_PER_IP", "5 per minute")
    statuses = [
        client.post(
            "/api/v1/auth/login", json={"email": f"user{n}@example.com", "password": "x"}
        ).status_code
        for n in range(6)
    ]
    assert statuses == [401] * 5 + [429]
