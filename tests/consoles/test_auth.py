"""Signing in to the consoles: the form (staff only, the API's refusals and rate limits),
the cookie (HttpOnly, SameSite, Secure outside development) that is one of the account's
sessions, and what ends it on the next page: ending it in /me/sessions, a password change,
a ban, a lost role, its age. Forms need their CSRF token; pages carry a CSP without inline
scripts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts import roles
from accounts.models import RoleGrant, User
from app.clock import utcnow
from tests.consoles.support import CONSOLE, csrf_token, post, sign_in
from tests.support import make_person

API = "/api/v1"


@pytest.fixture
def leader(app):
    return make_person("SZ", role="circle_leader", phone="+86 139 0000 2001")


def test_staff_sign_in_with_email_or_phone_into_a_session_of_their_account(client, leader):
    signed = post(
        client,
        f"{CONSOLE}/sign-in",
        {"account": leader.user.email, "password": "password-123"},
    )
    assert signed.status_code == 303 and signed.headers["Location"] == f"{CONSOLE}/"
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    assert "Secure" in cookie  # ENVIRONMENT is not development in the tests
    assert client.get(f"{CONSOLE}/leader").status_code == 200
    sessions = client.get(f"{API}/me/sessions", headers=leader.headers).json["items"]
    console = [s for s in sessions if s["device"].startswith("Console: ")]
    assert len(console) == 1

    other = client.application.test_client()
    by_phone = post(
        other, f"{CONSOLE}/sign-in", {"account": "13900002001", "password": "password-123"}
    )
    assert by_phone.status_code == 303


def test_owners_and_wrong_passwords_are_refused_with_a_reason(client, leader):
    owner = make_person("SZ")
    for account, password, says in (
        (owner.user.email, "password-123", "for circle leaders, ambassadors and admins"),
        (leader.user.email, "wrong-password", "Wrong account or password"),
        ("nobody@example.com", "password-123", "Wrong account or password"),
    ):
        page = post(client, f"{CONSOLE}/sign-in", {"account": account, "password": password})
        assert page.status_code == 200 and says in page.get_data(as_text=True)
        assert client.get(f"{CONSOLE}/leader").status_code == 302
    zh = post(
        client,
        f"{CONSOLE}/sign-in",
        {"account": leader.user.email, "password": "wrong-password"},
        headers={"Accept-Language": "zh-CN,zh;q=0.9"},
    )
    assert "账号或密码错误" in zh.get_data(as_text=True)


def test_sign_in_is_rate_limited_as_the_api_login(app, client, leader, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_LOGIN_PER_ACCOUNT", "3 per minute")
    answers = [
        post(client, f"{CONSOLE}/sign-in", {"account": leader.user.email, "password": "nope"})
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert "Retry-After" in answers[-1].headers
    assert "Too many attempts" in answers[-1].get_data(as_text=True)


def test_what_ends_the_api_session_ends_the_console_on_the_next_page(client, leader):
    page = f"{CONSOLE}/leader"
    # Ended in /me/sessions.
    session_id = sign_in(client, leader)
    assert client.get(page).status_code == 200
    assert (
        client.delete(f"{API}/me/sessions/{session_id}", headers=leader.headers).status_code == 204
    )
    assert client.get(page).headers["Location"].startswith(f"{CONSOLE}/sign-in")

    # A password change ends every other session.
    sign_in(client, leader)
    assert client.get(page).status_code == 200
    changed = client.post(
        f"{API}/me/password",
        headers=leader.headers,
        json={"current_password": "password-123", "new_password": "password-456"},
    )
    assert changed.status_code == 204
    assert client.get(page).status_code == 302

    # A ban.
    fresh = make_person("SZ", role="circle_leader")
    sign_in(client, fresh)
    assert client.get(page).status_code == 200
    User.objects(pk=fresh.user.pk).update_one(set__banned_until=utcnow() + timedelta(days=1))
    assert client.get(page).status_code == 302

    # The last staff role revoked: the console's session ends with it.
    other = make_person("SZ", role="circle_leader")
    session_id = sign_in(client, other)
    assert client.get(page).status_code == 200
    grant = RoleGrant.objects.get(user_id=other.user.pk)
    admin = make_person("SZ", role="admin")
    from app.auth import load_caller

    roles.revoke_role(load_caller(admin.id), str(grant.pk))
    assert client.get(page).status_code == 302
    assert session_id not in {s.sid for s in User.objects.get(pk=other.user.pk).sessions}


def test_a_console_session_lasts_its_hours(app, client, leader, monkeypatch):
    sign_in(client, leader)
    assert client.get(f"{CONSOLE}/leader").status_code == 200
    monkeypatch.setitem(app.config, "CONSOLE_SESSION_HOURS", 1)
    with client.session_transaction(f"{CONSOLE}/") as cookie:
        cookie["at"] = (utcnow() - timedelta(hours=2)).timestamp()
    assert client.get(f"{CONSOLE}/leader").status_code == 302
    assert len(User.objects.get(pk=leader.user.pk).sessions) == 1  # the API's, from the tests


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(client, leader, make_event):
    event = make_event(publish=False)
    sign_in(client, leader)
    bare = client.post(f"{CONSOLE}/events/{event.pk}/publish")
    assert bare.status_code == 400
    forged = client.post(f"{CONSOLE}/events/{event.pk}/publish", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    event.reload()
    assert event.status == "draft"
    done = post(client, f"{CONSOLE}/events/{event.pk}/publish")
    assert done.status_code == 303
    event.reload()
    assert event.status == "published"
    scans = client.post(
        f"{CONSOLE}/events/{event.pk}/door/scans", json={"user_id": leader.id, "nonce": "n"}
    )
    assert scans.status_code == 400


def test_pages_carry_a_policy_without_inline_scripts(client, leader):
    sign_in(client, leader)
    for path in (f"{CONSOLE}/sign-in", f"{CONSOLE}/leader", f"{CONSOLE}/events"):
        page = client.get(path, follow_redirects=True)
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy, policy
        assert "frame-ancestors 'none'" in policy
        assert page.headers["Cache-Control"] == "no-store"
        html = page.get_data(as_text=True)
        # Scripts are files; the one data block is JSON, which nothing runs.
        for tag in html.split("<script")[1:]:
            assert 'src="' in tag.split(">")[0] or 'type="application/json"' in tag, tag[:80]
        assert " style=" not in html and " onclick=" not in html


def test_the_language_is_the_browsers_unless_switched(client, leader):
    sign_in(client, leader)
    zh = client.get(f"{CONSOLE}/events", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="zh-CN">' in zh.get_data(as_text=True) and "活动" in zh.get_data(
        as_text=True
    )
    switched = client.get(f"{CONSOLE}/language/en?next={CONSOLE}/events")
    assert switched.headers["Location"] == f"{CONSOLE}/events"
    en = client.get(f"{CONSOLE}/events", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in en.get_data(as_text=True)
    # A `next` elsewhere is not followed.
    away = client.get(f"{CONSOLE}/language/zh-CN?next=https://elsewhere.example/")
    assert away.headers["Location"] == f"{CONSOLE}/"


def test_a_role_without_the_page_gets_403_and_another_citys_event_404(client, make_event):
    event = make_event()
    ambassador = make_person("SZ", role="ambassador")
    sign_in(client, ambassador)
    assert client.get(f"{CONSOLE}/events").status_code == 403
    assert client.get(f"{CONSOLE}/ambassador").status_code == 200
    chengdu = make_person("CD", role="circle_leader")
    sign_in(client, chengdu)
    assert client.get(f"{CONSOLE}/events/{event.pk}").status_code == 404
    refused = post(client, f"{CONSOLE}/events/{event.pk}/cancel", {"reason": "Mine now"})
    assert refused.status_code == 404
    event.reload()
    assert event.status == "published"
    assert csrf_token(client)
