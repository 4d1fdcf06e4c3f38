"""Changing a password, and resetting a forgotten one with a code pushed to the owner."""

from __future__ import annotations

import importlib.util
import re
from datetime import timedelta

import argon2
import pytest
from argon2.profiles import RFC_9106_LOW_MEMORY

from accounts import credentials
from accounts.models import User
from app.clock import utcnow
from notifications.models import Notification
from tests.accounts.calls import API, PASSWORD, log_in, me
from tests.support import make_city, make_person

# --- password change -----------------------------------------------------------------------


def test_changing_the_password_ends_every_other_session(client):
    ann = make_person()
    phone = log_in(client, ann.user.email, device="phone")
    wrong = client.post(
        f"{API}/me/password",
        headers=ann.headers,
        json={"current_password": "not-it", "new_password": "a-new-password"},
    )
    assert wrong.status_code == 403 and wrong.json["error"] == "wrong_password"
    assert me(client, phone["access_token"]).status_code == 200

    short = client.post(
        f"{API}/me/password",
        headers=ann.headers,
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    assert short.status_code == 422

    changed = client.post(
        f"{API}/me/password",
        headers=ann.headers,
        json={"current_password": PASSWORD, "new_password": "a-new-password"},
    )
    assert changed.status_code == 204
    assert client.get(f"{API}/me", headers=ann.headers).status_code == 200
    assert me(client, phone["access_token"]).json["error"] == "session_ended"
    old = client.post(f"{API}/auth/login", json={"email": ann.user.email, "password": PASSWORD})
    assert old.status_code == 401
    log_in(client, ann.user.email, "a-new-password")


# --- password reset ------------------------------------------------------------------------


@pytest.fixture
def push_gateway(app, push_receiver, monkeypatch):
    """The webhook push provider, posting to a real receiver the test reads."""
    monkeypatch.setitem(app.config, "PUSH_PROVIDER", "webhook")
    monkeypatch.setitem(app.config, "PUSH_WEBHOOK_URL", push_receiver.url)
    monkeypatch.setitem(app.config, "PUSH_WEBHOOK_SECRET", "s3cret")
    return push_receiver


def ask_for_code(client, push_gateway, **identity) -> str:
    sent = len(push_gateway.requests)
    response = client.post(f"{API}/auth/password-reset", json=identity)
    assert response.status_code == 202
    assert len(push_gateway.requests) == sent + 1
    return push_gateway.bodies()[-1]["data"]["code"]


def confirm(client, code: str, new_password: str = "reset-password-1", **identity):
    return client.post(
        f"{API}/auth/password-reset/confirm",
        json={**identity, "code": code, "new_password": new_password},
    )


def test_a_reset_code_comes_by_push_and_sets_a_new_password(client, push_gateway):
    ann = make_person(phone="13800138000", email=None, locale="en")
    code = ask_for_code(client, push_gateway, phone="+86 138 0013 8000")
    [push] = push_gateway.bodies()
    assert push["user_id"] == ann.id and push["kind"] == "security"
    assert code in push["body"] and len(code) == 6 and code.isdigit()
    assert Notification.objects.count() == 0  # never in the inbox
    stored = User._get_collection().find_one({"_id": ann.user.pk})["password_reset"]
    assert stored["tries_left"] == 5 and len(stored["code_hash"]) == 64

    done = confirm(client, code, phone="13800138000")
    assert done.status_code == 204
    ended = client.get(f"{API}/me", headers=ann.headers)
    assert ended.status_code == 401 and ended.json["error"] == "session_ended"
    login = client.post(
        f"{API}/auth/login", json={"phone": "13800138000", "password": "reset-password-1"}
    )
    assert login.status_code == 200
    again = confirm(client, code, phone="13800138000")
    assert again.status_code == 422 and again.json["error"] == "invalid_code"


def test_an_unknown_account_gets_the_same_answer_and_nothing_is_sent(client, push_gateway):
    ann = make_person()
    unknown = client.post(f"{API}/auth/password-reset", json={"email": "nobody@example.com"})
    assert push_gateway.requests == []
    known = client.post(f"{API}/auth/password-reset", json={"email": ann.user.email})
    assert len(push_gateway.requests) == 1
    assert (
        (unknown.status_code, unknown.data) == (known.status_code, known.data) == (202, b"null\n")
    )
    refused = confirm(client, "123456", email="nobody@example.com")
    assert refused.status_code == 422 and refused.json["error"] == "invalid_code"


def test_a_code_dies_after_five_wrong_tries(client, push_gateway):
    ann = make_person()
    code = ask_for_code(client, push_gateway, email=ann.user.email)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        refused = confirm(client, wrong, email=ann.user.email)
        assert refused.status_code == 422 and refused.json["error"] == "invalid_code"
    assert confirm(client, code, email=ann.user.email).status_code == 422
    assert client.get(f"{API}/me", headers=ann.headers).status_code == 200
    # A new code replaces the dead one.
    fresh = ask_for_code(client, push_gateway, email=ann.user.email)
    assert confirm(client, fresh, email=ann.user.email).status_code == 204


def test_a_code_expires_after_ten_minutes(client, push_gateway):
    ann = make_person()
    code = ask_for_code(client, push_gateway, email=ann.user.email)
    User._get_collection().update_one(
        {"_id": ann.user.pk},
        {"$set": {"password_reset.expires_at": utcnow() - timedelta(seconds=1)}},
    )
    assert confirm(client, code, email=ann.user.email).json["error"] == "invalid_code"
    log_in(client, ann.user.email)


def test_a_failing_push_gateway_still_answers_202(client, push_gateway):
    ann = make_person()
    push_gateway.answers = [503]
    response = client.post(f"{API}/auth/password-reset", json={"email": ann.user.email})
    assert response.status_code == 202
    assert len(push_gateway.requests) == 1


def test_password_reset_is_rate_limited_per_account(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_PASSWORD_RESET_PER_ACCOUNT", "2 per minute")
    ann = make_person()
    asked = client.post(f"{API}/auth/password-reset", json={"email": ann.user.email})
    assert asked.status_code == 202
    # Confirmations share the account's allowance: guesses cost as much as new codes.
    assert confirm(client, "123456", email=ann.user.email).status_code == 422
    limited = client.post(f"{API}/auth/password-reset", json={"email": ann.user.email.upper()})
    assert limited.status_code == 429 and limited.headers["Retry-After"]
    other = client.post(f"{API}/auth/password-reset", json={"email": "other@example.com"})
    assert other.status_code == 202


def test_password_reset_is_rate_limited_per_ip(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_PASSWORD_RESET_PER_IP", "3 per minute")
    make_city()
    answers = [
        client.post(f"{API}/auth/password-reset", json={"email": f"x{n}@example.com"}).status_code
        for n in range(4)
    ]
    assert answers == [202, 202, 202, 429]


def test_bad_reset_input_is_refused(client):
    make_city()
    both = client.post(
        f"{API}/auth/password-reset", json={"email": "a@example.com", "phone": "13800138000"}
    )
    assert both.status_code == 422
    letters = confirm(client, "abcdef", email="a@example.com")
    assert letters.status_code == 422 and "code" in letters.json["errors"]


def test_the_service_hashes_passwords_at_argon2s_recommended_cost():
    # Tests hash at argon2's lowest cost (tests/conftest.py replaces the module's hasher);
    # the service must not. A copy of the module, loaded as a process loads it, hashes.
    spec = importlib.util.spec_from_file_location("credentials_as_loaded", credentials.__file__)
    assert spec and spec.loader
    as_loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(as_loaded)
    assert argon2.extract_parameters(as_loaded.hash_password("x")) == RFC_9106_LOW_MEMORY
    assert argon2.extract_parameters(as_loaded._dummy_hash()) == RFC_9106_LOW_MEMORY


@pytest.mark.parametrize("environment", ["development", "production"])
def test_the_log_provider_shows_the_reset_code_in_development_only(
    app, client, caplog, monkeypatch, environment
):
    # `make run` has no push gateway: in development the log line carries the message, so a
    # reset can be finished from the terminal; elsewhere a code never reaches a log.
    monkeypatch.setitem(app.config, "ENVIRONMENT", environment)
    monkeypatch.setitem(app.config, "PUSH_PROVIDER", "log")
    ann = make_person(locale="en")
    caplog.clear()
    asked = client.post(f"{API}/auth/password-reset", json={"email": ann.user.email})
    assert asked.status_code == 202
    [line] = [r.getMessage() for r in caplog.records if "push_sent" in r.getMessage()]
    shown = re.search(r"Your code is (\d{6})", line)
    if environment == "production":
        assert shown is None and not re.search(r"\b\d{6}\b", line)
        return
    assert shown is not None, line
    confirmed = client.post(
        f"{API}/auth/password-reset/confirm",
        json={"email": ann.user.email, "code": shown.group(1), "new_password": "a-new-password"},
    )
    assert confirmed.status_code == 204
    log_in(client, ann.user.email, password="a-new-password")
