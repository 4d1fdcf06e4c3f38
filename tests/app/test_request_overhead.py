"""What every request pays before and after its view, cut to what it needs (issue 24): the
checks here count calls (`calls_counted`) on a hot write, a keyed redemption, and the
guarantees the cuts keep."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import flask
import pytest
from flask.sessions import SecureCookieSessionInterface

from app import App
from app.request_bodies import load_json
from tests.conftest import ROOT, Servers
from tests.loyalty.conftest import keyed_redemptions
from tests.support import calls_counted, make_person


@pytest.fixture
def redeem(client) -> Callable[[str], Any]:
    return keyed_redemptions(client)


def test_a_request_asks_no_hook_or_view_again_whether_it_is_a_coroutine(app, redeem):
    assert isinstance(app, App)
    assert redeem("first").status_code == 201
    with calls_counted(inspect.iscoroutinefunction) as asked:
        answer = redeem("second")
    assert answer.status_code == 201, answer.json
    assert asked == [0]


def test_ensure_sync_keeps_functions_not_the_objects_their_methods_are_bound_to(app):
    class View:
        def get(self) -> str:
            return "answered"

    kept = len(app._sync_functions)
    for _ in range(3):
        method = View().get
        assert app.ensure_sync(method) is method
    assert len(app._sync_functions) == kept + 1


def test_ensure_sync_still_hands_a_coroutine_function_to_async_to_sync(app):
    async def view() -> str:
        await asyncio.sleep(0)
        return "answered"

    # Flask runs async views through its `async` extra, which this project does not install:
    # being asked for it proves the coroutine function was not mistaken for a plain one.
    with pytest.raises(RuntimeError, match="async views"):
        app.ensure_sync(view)
    assert view not in app._sync_functions


def test_a_request_without_cookies_opens_its_session_without_a_signer(redeem):
    with calls_counted(SecureCookieSessionInterface.get_signing_serializer) as signers:
        answer = redeem("first")
    assert answer.status_code == 201, answer.json
    assert signers == [0]


def test_a_keyed_requests_body_is_parsed_once(redeem):
    with calls_counted(load_json) as parsed:
        answer = redeem("first")
    assert answer.status_code == 201, answer.json
    assert parsed == [1]


def test_a_body_that_is_not_json_is_still_refused_by_the_arguments_parser(client):
    owner = make_person("SZ")
    answer = client.post(
        "/api/v1/redemptions",
        data=b'{"reward_id": ',
        headers={**owner.headers, "Content-Type": "application/json", "Idempotency-Key": "k"},
    )
    assert (answer.status_code, answer.json["error"]) == (400, "malformed_json")


def test_a_session_cookie_is_still_read_and_checked(app):
    sessions = app.session_interface
    name = sessions.get_cookie_name(app)
    with app.test_request_context("/"):
        signed = sessions.get_signing_serializer(app).dumps({"signed_in": "someone"})
    for cookie, opened in [
        (f"{name}={signed}", {"signed_in": "someone"}),
        (f"{name}={signed[:-2]}xx", {}),  # a forged signature
        ("another=1", {}),
    ]:
        with app.test_request_context("/", headers={"Cookie": cookie}):
            assert dict(sessions.open_session(app, flask.request)) == opened


def test_each_request_is_counted_and_timed_by_its_route(redeem):
    from prometheus_client import REGISTRY

    labels = {"method": "POST", "endpoint": "/api/v1/redemptions"}

    def counted() -> tuple[float, float]:
        requests = REGISTRY.get_sample_value("http_requests_total", {**labels, "status": "201"})
        timed = REGISTRY.get_sample_value("http_request_duration_seconds_count", labels)
        return requests or 0.0, timed or 0.0

    before = counted()
    assert [redeem(key).status_code for key in ("first", "second")] == [201, 201]
    assert counted() == (before[0] + 2, before[1] + 2)


def test_an_api_with_rate_limits_turned_off_starts_and_answers(servers: Servers):
    """RATELIMIT_ENABLED=false (bench/ runs so): Flask-Limiter then registers no hooks, and
    there is no before-request check to take out. In a process of its own, since the
    limiter is the session app's singleton."""
    probe = (
        "from app import create_app\n"
        "print(create_app().test_client().get('/api/v1/cities').status_code)"
    )
    environ = {
        **os.environ,
        "MONGODB_URI": servers.mongodb_uri,
        "REDIS_URL": servers.redis_url,
        "RATELIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "200"
