"""Logs are JSON lines carrying the request id, an unhandled exception's included."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from loyalty import rewards
from tests.loyalty.conftest import earn, make_reward
from tests.support import make_person


@pytest.fixture
def log_lines(app) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """What the app's log handler writes during the test, one parsed JSON object a line
    (a line that is not JSON fails the test)."""
    handler = next(
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter)
    )
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        handler.setStream(previous)


@pytest.fixture
def failing_health(app, monkeypatch: pytest.MonkeyPatch) -> None:
    """`/health` raises, and the app answers as in production instead of re-raising."""

    def fail():
        raise RuntimeError("boom")

    monkeypatch.setitem(app.view_functions, "health.health", fail)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)


def test_unhandled_exception_is_one_json_line_and_a_500_envelope(client, log_lines, failing_health):
    response = client.get("/health", headers={"X-Request-ID": "trace-500"})

    assert response.status_code == 500
    assert response.json == {
        "code": 500,
        "status": "Internal Server Error",
        "message": "Internal server error.",
        "error": "internal_error",
        "request_id": "trace-500",
    }
    assert response.headers["X-Request-ID"] == "trace-500"
    lines = log_lines()
    errors = [line for line in lines if line["level"] == "error"]
    assert len(errors) == 1
    (error,) = errors
    assert error["request_id"] == "trace-500"
    assert "/health" in error["event"]
    assert error["exception"].startswith("Traceback")
    assert "RuntimeError: boom" in error["exception"]
    summary = [line for line in lines if line["event"] == "request"]
    assert [(line["status"], line["request_id"]) for line in summary] == [(500, "trace-500")]


def test_structlog_events_share_the_handler(client, log_lines):
    client.get("/health", headers={"X-Request-ID": "trace-200"})
    (line,) = log_lines()
    assert line["event"] == "request"
    assert line["request_id"] == "trace-200"
    assert line["level"] == "info"
    assert line["status"] == 200


def test_a_hot_write_is_one_line_carrying_what_it_did(client, log_lines):
    owner = make_person("SZ")
    earn(owner.id, 500)
    reward = make_reward(cost=100)
    answer = client.post(
        "/api/v1/redemptions",
        json={"reward_id": str(reward.pk)},
        headers={**owner.headers, "X-Request-ID": "trace-redeem"},
    )
    assert answer.status_code == 201, answer.json
    (line,) = [line for line in log_lines() if line.get("request_id") == "trace-redeem"]
    assert (line["event"], line["status"]) == ("request", 201)
    assert line["reward_redeemed"] == {
        "redemption_id": answer.json["id"],
        "user_id": owner.id,
        "reward_id": str(reward.pk),
        "points": 100,
    }


def test_a_service_outside_a_request_logs_its_own_line(app, log_lines):
    owner = make_person("SZ")
    earn(owner.id, 500)
    rewards.redeem(owner.user, str(make_reward(cost=100).pk))
    assert [line["points"] for line in log_lines() if line["event"] == "reward_redeemed"] == [100]
