"""Device sessions, refresh-token rotation, and what must stop working on the very next
request: an ended session, a revoked grant, a ban, an erasure."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import jwt as pyjwt
import requests

from accounts.models import MAX_SESSIONS, RoleGrant, User
from app.clock import utcnow
from tests.accounts.calls import API, PASSWORD, bearer, log_in, me, refresh
from tests.support import make_person


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


def test_ten_concurrent_refreshes_with_one_token_all_get_the_same_new_tokens(client, live_server):
    # An app's parallel requests all met an expired access token and refresh at once.
    ann = make_person()
    first = log_in(client, ann.user.email, device="phone")
    start = threading.Barrier(10)

    def refresh_at_once(_: int) -> requests.Response:
        start.wait(10)
        return requests.post(
            f"{live_server}{API}/auth/refresh", headers=bearer(first["refresh_token"])
        )

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(refresh_at_once, range(10)))
    assert [answer.status_code for answer in answers] == [200] * 10, [a.json() for a in answers]
    pairs = {(a.json()["access_token"], a.json()["refresh_token"]) for a in answers}
    [(access, successor)] = pairs
    assert successor != first["refresh_token"]
    # The session lives on: the new tokens work, and the successor refreshes in its turn.
    assert me(client, access).status_code == 200
    assert me(client, first["access_token"]).status_code == 200
    assert refresh(client, successor).status_code == 200


def test_a_spent_refresh_token_after_its_grace_ends_the_session(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "REFRESH_REUSE_GRACE_SECONDS", 2)
    ann = make_person()
    first = log_in(client, ann.user.email, device="phone")
    second = refresh(client, first["refresh_token"]).json
    assert refresh(client, first["refresh_token"]).json == second  # within the grace
    session = next(s for s in User.objects.get(pk=ann.user.pk).sessions if s.device == "phone")
    User.objects(pk=ann.user.pk, sessions__sid=session.sid).update_one(
        set__sessions__S__rotated_at=session.rotated_at - timedelta(seconds=3)
    )
    stolen = refresh(client, first["refresh_token"])
    assert stolen.status_code == 401 and stolen.json["error"] == "refresh_token_reused"
    assert me(client, second["access_token"]).json["error"] == "session_ended"


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
