"""Signing-key rotation, the headers every response carries, and who may read /metrics."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt as pyjwt
import pytest
from bson import ObjectId

from app.clock import utcnow
from app.errors import ValidationFailed
from events import tickets as events
from events.models import Event
from tests.support import make_city, make_person

API = "/api/v1"
NEW_KEY = "the-next-secret-key-0123456789abcdef"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- signing keys --------------------------------------------------------------------------


def test_a_rotation_keeps_tokens_and_tickets_signed_with_the_previous_key(app, client, monkeypatch):
    ann = make_person()
    old_kid = pyjwt.get_unverified_header(ann.token)["kid"]
    event = Event(id=ObjectId(), city_code="SZ")
    ticket = events.ticket_token(event, ObjectId(), ann.id, utcnow() + timedelta(hours=1))
    refresh_token = client.post(
        f"{API}/auth/login", json={"email": ann.user.email, "password": "password-123"}
    ).json["refresh_token"]

    monkeypatch.setitem(app.config, "SECRET_KEY_PREVIOUS", app.config["SECRET_KEY"])
    monkeypatch.setitem(app.config, "SECRET_KEY", NEW_KEY)
    assert client.get(f"{API}/me", headers=ann.headers).status_code == 200
    assert str(events.read_ticket(ticket, event).owner_id) == ann.id
    rotated = client.post(f"{API}/auth/refresh", headers=bearer(refresh_token))
    assert rotated.status_code == 200
    new_token = rotated.json["access_token"]
    assert pyjwt.get_unverified_header(new_token)["kid"] not in {old_kid, None}

    # Once the previous key is dropped, only what the new key signed still works.
    monkeypatch.setitem(app.config, "SECRET_KEY_PREVIOUS", None)
    assert client.get(f"{API}/me", headers=bearer(new_token)).status_code == 200
    assert client.get(f"{API}/me", headers=ann.headers).status_code == 401
    with pytest.raises(ValidationFailed):
        events.read_ticket(ticket, event)


def _forged(claims_from: str, key: str, headers: dict | None) -> str:
    claims = pyjwt.decode(claims_from, options={"verify_signature": False})
    return pyjwt.encode(claims, key, algorithm="HS256", headers=headers)


def test_a_token_with_an_unknown_or_missing_key_id_is_refused(app, client):
    ann = make_person()
    kid = pyjwt.get_unverified_header(ann.token)["kid"]
    key = app.config["SECRET_KEY"]
    assert (
        client.get(f"{API}/me", headers=bearer(_forged(ann.token, key, {"kid": kid}))).status_code
        == 200
    )
    for token in (
        _forged(ann.token, key, {"kid": "0123456789abcdef"}),
        _forged(ann.token, key, None),
        _forged(ann.token, "an-attacker-key-0123456789abcdef", {"kid": kid}),
    ):
        refused = client.get(f"{API}/me", headers=bearer(token))
        assert refused.status_code == 401 and refused.json["error"] == "unauthorized"


def test_a_token_without_a_session_is_refused(app, client):
    # As tokens issued before sessions existed were: valid signature, no `sid`.
    ann = make_person()
    claims = pyjwt.decode(ann.token, options={"verify_signature": False})
    del claims["sid"]
    token = pyjwt.encode(
        claims, app.config["SECRET_KEY"], headers=pyjwt.get_unverified_header(ann.token)
    )
    refused = client.get(f"{API}/me", headers=bearer(token))
    assert refused.status_code == 401 and refused.json["error"] == "session_ended"


def test_a_token_that_served_requests_is_refused_once_expired(app, client):
    # The process remembers the tokens it verified (app/auth.py): not past their expiry.
    ann = make_person()
    claims = pyjwt.decode(ann.token, options={"verify_signature": False})
    expires = int(time.time()) + 2
    token = pyjwt.encode(
        {**claims, "exp": expires},
        app.config["SECRET_KEY"],
        headers=pyjwt.get_unverified_header(ann.token),
    )
    assert client.get(f"{API}/me", headers=bearer(token)).status_code == 200
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    refused = client.get(f"{API}/me", headers=bearer(token))
    assert refused.status_code == 401 and refused.json["message"] == "Token expired."


# --- headers -------------------------------------------------------------------------------


def _assert_hardened(response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_every_response_carries_the_security_headers(client):
    ann = make_person()
    responses = {
        "health": client.get("/health"),
        "public list": client.get(f"{API}/cities"),
        "authenticated": client.get(f"{API}/me", headers=ann.headers),
        "refused": client.get(f"{API}/me"),
        "not found": client.get(f"{API}/nowhere"),
        "bad input": client.post(f"{API}/auth/login", json={"email": "x"}),
    }
    for name, response in responses.items():
        _assert_hardened(response)
        assert "default-src 'none'" in response.headers["Content-Security-Policy"], name
        assert "Strict-Transport-Security" not in response.headers, name
    for name in ("public list", "authenticated", "refused", "not found", "bad input"):
        assert responses[name].headers["Cache-Control"] == "no-store", name
    assert "no-store" not in responses["health"].headers.get("Cache-Control", "")


def test_the_docs_page_may_load_swagger_ui_but_not_be_framed(client):
    docs = client.get(f"{API}/docs")
    assert docs.status_code == 200 and docs.mimetype == "text/html"
    _assert_hardened(docs)
    policy = docs.headers["Content-Security-Policy"]
    assert "default-src" not in policy and "script-src" not in policy
    assert b"swagger-ui-bundle.js" in docs.data


def test_security_headers_replace_a_view_s_own_and_keep_its_policies(app):
    from flask import Response

    from app.auth import _security_headers

    own = Response(
        "page",
        mimetype="text/html",
        headers=[
            ("x-frame-options", "SAMEORIGIN"),
            ("content-security-policy", "default-src 'self'"),
            ("cache-control", "max-age=5"),
        ],
    )
    with app.test_request_context("/console", headers={"Authorization": "Bearer x"}):
        headers = _security_headers(own).headers
    assert headers.getlist("X-Frame-Options") == ["DENY"]
    assert headers.getlist("Content-Security-Policy") == ["default-src 'self'"]
    assert headers.getlist("Cache-Control") == ["max-age=5"]
    with app.test_request_context("/console", headers={"Authorization": "Bearer x"}):
        bare = _security_headers(Response("page", mimetype="text/html")).headers
    assert bare.getlist("Content-Security-Policy") == ["frame-ancestors 'none'"]
    assert bare.getlist("Cache-Control") == ["no-store"]  # it sent credentials
    with app.test_request_context("/console"):
        assert "Cache-Control" not in _security_headers(Response("page")).headers


def test_hsts_only_over_https(client):
    secure = client.get("/health", base_url="https://api.example.com")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "Strict-Transport-Security" not in client.get("/health").headers


# --- /metrics ------------------------------------------------------------------------------


def test_without_a_metrics_token_only_loopback_requests_see_metrics(client):
    make_city()
    assert client.get("/metrics").status_code == 200
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert remote.status_code == 403 and "http_requests_total" not in remote.text
    relayed = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status_code == 403
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_a_metrics_token_is_required_once_set(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-me")
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/metrics", headers=bearer("wrong")).status_code == 401
    allowed = client.get(
        "/metrics", headers=bearer("scrape-me"), environ_base={"REMOTE_ADDR": "203.0.113.9"}
    )
    assert allowed.status_code == 200 and "http_requests_total" in allowed.text
