"""Device sessions, refresh-token rotation, password change and reset, and what must stop
working on the very next request: an ended session, a revoked grant, a ban, an erasure."""

from __future__ import annotations

from datetime import timedelta

import jwt as pyjwt
import pytest

from accounts.models import MAX_SESSIONS, RoleGrant, User
from app.clock import utcnow
from notifications.models import Notification
from tests.support import make_city, make_person

API = "/api/v1"
PASSWORD = "password-123"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def log_in(client, email: str, password: str = PASSWORD, **extra) -> dict:
    response = client.post(
        f"{API}/auth/login", json={"email": email, "password": password, **extra}
    )
    assert response.status_code == 200, response.json
    return response.json


def refresh(client, refresh_token: str):
    return client.post(f"{API}/auth/refresh", headers=bearer(refresh_token))


def me(client, access_token: str):
    return client.get(f"{API}/me", headers=bearer(access_token))


def sessions(client, access_token: str) -> list[dict]:
    response = client.get(f"{API}/me/sessions", headers=bearer(access_token))
    assert response.status_code == 200, response.json
    return response.json["items"]


# --- sessions ------------------------------------------------------------------------------


def test_a_login_opens_a_session_named_by_the_device(client):
    ann = make_person()
    phone = log_in(client, ann.user.email, device="Ann's phone")
    claims = pyjwt.decode(phone["access_token"], options={"verify_signature": False})
    assert pyjwt.get_unverified_header(phone["access_token"])["kid"]
    browser = log_in(client, ann.user.email)  # no device name: the User-Agent stands in

    listed = sessions(client, phone["access_token"])
    assert len(listed) == 3  # make_person's, the phone's, the browser's
    current = [session for session in listed if session["current"]]
    assert [(s["id"], s["device"]) for s in current] == [(claims["sid"], "Ann's phone")]
    assert {"id", "device", "created_at", "last_used_at", "current"} <= set(current[0])
    assert any(s["device"].startswith("Werkzeug/") for s in listed)
    assert me(client, browser["access_token"]).status_code == 200


def test_the_export_shows_sessions_without_their_secrets(client):
    ann = make_person()
    log_in(client, ann.user.email, device="Ann's phone")
    export = client.get(f"{API}/me/export", headers=ann.headers)
    devices = [session["device"] for session in export.json["account"]["sessions"]]
    assert devices == ["tests", "Ann's phone"]
    assert "refresh_hash" not in export.get_data(as_text=True)


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(client):
    ann = make_person()
    first = log_in(client, ann.user.email, device="phone")
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200
    assert set(second.json) >= {"access_token", "refresh_token", "expires_in"}
    assert second.json["refresh_token"] != first["refresh_token"]
    third = refresh(client, second.json["refresh_token"])
    assert third.status_code == 200
    assert me(client, third.json["access_token"]).status_code == 200

    # Someone replays a spent refresh token: the whole session ends, for both holders.
    stolen = refresh(client, first["refresh_token"])
    assert stolen.status_code == 401 and stolen.json["error"] == "refresh_token_reused"
    ended = me(client, third.json["access_token"])
    assert ended.status_code == 401 and ended.json["error"] == "session_ended"
    assert refresh(client, third.json["refresh_token"]).json["error"] == "session_ended"
    # The person's other session lives on.
    assert client.get(f"{API}/me", headers=ann.headers).status_code == 200


def test_an_access_token_cannot_refresh(client):
    ann = make_person()
    tokens = log_in(client, ann.user.email)
    assert refresh(client, tokens["access_token"]).status_code == 401


def test_logout_ends_the_current_session_only(client):
    ann = make_person()
    tokens = log_in(client, ann.user.email)
    logout = client.post(f"{API}/auth/logout", headers=bearer(tokens["access_token"]))
    assert logout.status_code == 204
    after = me(client, tokens["access_token"])
    assert after.status_code == 401 and after.json["error"] == "session_ended"
    assert refresh(client, tokens["refresh_token"]).status_code == 401
    assert client.get(f"{API}/me", headers=ann.headers).status_code == 200


def test_ending_a_session_by_id_and_never_another_persons(client):
    ann, bob = make_person(), make_person()
    laptop = log_in(client, ann.user.email, device="laptop")
    [laptop_id] = [s["id"] for s in sessions(client, ann.token) if s["device"] == "laptop"]
    [bobs_id] = [s["id"] for s in sessions(client, bob.token)]

    not_hers = client.delete(f"{API}/me/sessions/{bobs_id}", headers=ann.headers)
    assert not_hers.status_code == 404
    assert client.get(f"{API}/me", headers=bob.headers).status_code == 200
    assert client.delete(f"{API}/me/sessions/nonsense", headers=ann.headers).status_code == 404

    ended = client.delete(f"{API}/me/sessions/{laptop_id}", headers=ann.headers)
    assert ended.status_code == 204
    assert me(client, laptop["access_token"]).status_code == 401
    assert [s["device"] for s in sessions(client, ann.token)] == ["tests"]


def test_the_oldest_session_ends_beyond_the_limit(client):
    ann = make_person()
    logins = [log_in(client, ann.user.email, device=f"device {n}") for n in range(MAX_SESSIONS)]
    assert me(client, ann.token).json["error"] == "session_ended"
    listed = sessions(client, logins[-1]["access_token"])
    assert len(listed) == MAX_SESSIONS
    assert me(client, logins[0]["access_token"]).status_code == 200


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


# --- what stops working on the very next request -------------------------------------------


def test_a_revoked_grant_stops_working_on_the_next_request(client):
    admin = make_person(role="admin")
    leader = make_person()
    granted = client.post(
        f"{API}/admin/role-grants",
        headers=admin.headers,
        json={"user_id": leader.id, "role": "circle_leader", "city_codes": ["SZ"]},
    )
    assert granted.status_code == 201
    assert RoleGrant.objects.get(pk=granted.json["id"]).role == "circle_leader"
    [copy] = User.objects.get(pk=leader.user.pk).grants
    assert (str(copy.grant_id), copy.city_codes) == (granted.json["id"], ["SZ"])
    assert client.get(f"{API}/vehicles", headers=leader.headers).status_code == 200

    revoked = client.delete(f"{API}/admin/role-grants/{granted.json['id']}", headers=admin.headers)
    assert revoked.status_code == 204
    assert client.get(f"{API}/vehicles", headers=leader.headers).status_code == 403
    assert User.objects.get(pk=leader.user.pk).grants == []


def test_a_ban_stops_tokens_login_and_refresh(client):
    ann = make_person()
    tokens = log_in(client, ann.user.email)
    User.objects(pk=ann.user.pk).update_one(set__banned_until=utcnow() + timedelta(days=1))
    banned = client.get(f"{API}/me", headers=ann.headers)
    assert banned.status_code == 403 and banned.json["error"] == "account_banned"
    assert refresh(client, tokens["refresh_token"]).json["error"] == "account_banned"
    login = client.post(f"{API}/auth/login", json={"email": ann.user.email, "password": PASSWORD})
    assert login.status_code == 403 and login.json["error"] == "account_banned"

    User.objects(pk=ann.user.pk).update_one(set__banned_until=utcnow() - timedelta(seconds=1))
    assert client.get(f"{API}/me", headers=ann.headers).status_code == 200


def test_an_erased_account_is_refused_on_the_next_request(client):
    ann = make_person(role="ambassador")
    tokens = log_in(client, ann.user.email)
    assert client.delete(f"{API}/me", headers=ann.headers).status_code == 204
    assert client.get(f"{API}/me/sessions", headers=ann.headers).status_code == 401
    assert refresh(client, tokens["refresh_token"]).status_code == 401
    erased = User._get_collection().find_one({"_id": ann.user.pk})
    assert (erased["sessions"], erased["grants"]) == ([], [])


# --- the backfill of grants onto users -----------------------------------------------------


def test_init_db_copies_grants_recorded_before_the_copy_existed(app, client):
    leader = make_person()
    admin = make_person()
    # As the release before stored them: a RoleGrant, nothing on the user.
    RoleGrant(user_id=leader.user.pk, role="circle_leader", city_codes=["SZ"]).save()
    RoleGrant(user_id=admin.user.pk, role="admin").save()
    assert client.get(f"{API}/vehicles", headers=leader.headers).status_code == 403

    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "role grants copied onto 2 users" in result.output
    assert client.get(f"{API}/vehicles", headers=leader.headers).status_code == 200
    assert client.get(f"{API}/me", headers=admin.headers).json["roles"] == ["admin", "owner"]
    again = app.test_cli_runner().invoke(args=["init-db"])
    assert again.exit_code == 0
    assert [g.role for g in User.objects.get(pk=leader.user.pk).grants] == ["circle_leader"]
