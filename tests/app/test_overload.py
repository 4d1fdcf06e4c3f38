"""A slow or missing backing service costs a request a bounded time and then a 503 with
Retry-After (or, for the rate limiter, a pause of the limits), never a request held until
the client gives up."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import mongoengine
import pytest
import redis
from pymongo.errors import DuplicateKeyError, NetworkTimeout, OperationFailure
from werkzeug.test import Client

from app.admission import AdmissionControl
from app.errors import unavailable
from tests.support import make_person, wait_until

BUDGET_MS = 600
# Time for the test client, the error handler and a loaded machine on top of the budget.
MARGIN_S = 2.0


@contextlib.contextmanager
def paused(process) -> Iterator[None]:
    """The server process is stopped (SIGSTOP) for the block: it keeps its sockets open and
    answers nothing, as a server stuck on a disk or a long GC would."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        # Each thread stops a moment after kill() returns, and a busy machine stretches that
        # moment: a ping sent within it was answered.
        wait_until(lambda: stopped(process.pid), timeout=10, interval=0.005, message="SIGSTOP")
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def stopped(pid: int) -> bool:
    """Every thread of the process is stopped ("T" in /proc)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
    return all(state == "T" for state in states)


@pytest.fixture
def small_budget(app, monkeypatch):
    monkeypatch.setitem(app.config, "REQUEST_DB_BUDGET_MS", BUDGET_MS)


def timed(call) -> tuple[float, object]:
    started = time.monotonic()
    response = call()
    return time.monotonic() - started, response


def test_paused_database_answers_503_with_retry_after_within_the_budget(
    client, servers, small_budget
):
    owner = make_person("SZ")
    assert client.get("/api/v1/me/points", headers=owner.headers).status_code == 200
    with paused(servers.mongo.process):
        elapsed, response = timed(lambda: client.get("/api/v1/me", headers=owner.headers))
        # A write in a transaction too: the budget bounds its retries.
        write_elapsed, write = timed(
            lambda: client.post("/api/v1/auth/logout", headers=owner.headers)
        )
    assert response.status_code == 503, response.json
    assert response.json["error"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert elapsed < BUDGET_MS / 1000 + MARGIN_S
    assert write.status_code == 503, write.json
    assert write_elapsed < BUDGET_MS / 1000 + MARGIN_S
    # Served again once the server is back.
    wait_until(
        lambda: client.get("/api/v1/me", headers=owner.headers).status_code == 200,
        timeout=15,
        message="the API to recover",
    )


def test_paused_database_makes_ready_answer_503_within_a_second_or_so(client, servers):
    with paused(servers.mongo.process):
        elapsed, response = timed(lambda: client.get("/ready"))
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json["checks"]["mongodb"] == "down"
    assert elapsed < 1 + MARGIN_S


def test_stopped_redis_pauses_rate_limits_without_holding_login(client, servers):
    make_person("SZ", email="limits@example.com")
    with servers.redis_down():
        elapsed, response = timed(
            lambda: client.post(
                "/api/v1/auth/login",
                json={"email": "limits@example.com", "password": "password-123"},
            )
        )
    assert response.status_code == 200, response.json
    assert elapsed < MARGIN_S


def test_paused_redis_costs_login_the_redis_timeout_not_a_hang(app, client, servers):
    make_person("SZ", email="paused@example.com")
    # Its connections opened while Redis answered, as on a running server.
    login = {"email": "paused@example.com", "password": "password-123"}
    assert client.post("/api/v1/auth/login", json=login).status_code == 200
    with paused(servers.redis.process):
        elapsed, response = timed(lambda: client.post("/api/v1/auth/login", json=login))
        ready_elapsed, ready = timed(lambda: client.get("/ready"))
    assert response.status_code == 200, response.json
    # Each limit of the route (per account, per IP) may wait out the timeout once.
    timeout_s = app.config["REDIS_TIMEOUT_MS"] / 1000
    assert elapsed < 4 * timeout_s + MARGIN_S
    assert ready.status_code == 503
    assert ready.json["checks"]["redis"] == "down"
    assert ready_elapsed < 2 * timeout_s + MARGIN_S


@pytest.mark.parametrize(
    ("error", "is_unavailable"),
    [
        (NetworkTimeout("timed out"), True),
        (OperationFailure("operation exceeded time limit", code=50), True),
        (
            OperationFailure(
                "WriteConflict", code=112, details={"errorLabels": ["TransientTransactionError"]}
            ),
            True,
        ),
        (redis.exceptions.ConnectionError("refused"), True),
        (redis.exceptions.TimeoutError("timed out"), True),
        (DuplicateKeyError("E11000 duplicate key"), False),
        (OperationFailure("unknown operator", code=2), False),
    ],
)
def test_only_the_connection_and_timeout_family_counts_as_unavailable(error, is_unavailable):
    assert unavailable(error) is is_unavailable
    # mongoengine wraps pymongo's error while handling it.
    try:
        try:
            raise error
        except Exception:
            raise mongoengine.OperationError("could not save") from None
    except mongoengine.OperationError as wrapped:
        assert unavailable(wrapped) is is_unavailable


def test_an_unexpected_database_error_stays_a_500(app):
    with app.test_request_context("/"):
        with pytest.raises(DuplicateKeyError):
            app.handle_user_exception(DuplicateKeyError("E11000 duplicate key"))
        response = app.handle_user_exception(redis.exceptions.ConnectionError("refused"))
    assert response.status_code == 503
    assert response.headers["Retry-After"]


def test_admission_control_answers_the_surplus_503_at_once_and_admits_probes():
    inside, release = threading.Event(), threading.Event()

    def slow_app(environ, start_response):
        inside.set()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    guarded = Client(AdmissionControl(slow_app, limit=1, wait_seconds=0.05))
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(response=guarded.get("/api/v1/me")))
    worker.start()
    try:
        assert inside.wait(10)
        elapsed, refused = timed(lambda: guarded.get("/api/v1/me"))
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["X-Content-Type-Options"] == "nosniff"
        assert refused.json["error"] == "overloaded"
        assert refused.json["code"] == 503
        assert elapsed < MARGIN_S
        inside.clear()
        probe = threading.Thread(target=lambda: guarded.get("/health"))
        probe.start()
        # The probe got past the full limit into the app.
        assert inside.wait(10)
    finally:
        release.set()
        worker.join(10)
    probe.join(10)
    assert first["response"].status_code == 200
    # The place is free again.
    assert guarded.get("/api/v1/me").status_code == 200
