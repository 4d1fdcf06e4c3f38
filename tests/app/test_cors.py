"""CORS for browser clients on other origins: off unless CORS_ORIGINS names them, then only
for those origins, with the headers a client sends and reads (flask-cors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app import config as app_config
from tests.conftest import ROOT, Servers

APP_ORIGIN = "https://app.example.com"
PREFLIGHT = {
    "Origin": APP_ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
}

# Run in a process of its own: the extensions are singletons of the session's app.
_PROBE = """
import json
from app import create_app
client = create_app().test_client()
answers = {
    "preflight": client.options("/api/v1/clubs", headers=%(preflight)r),
    "allowed": client.get("/api/v1/cities", headers={"Origin": %(origin)r}),
    "other": client.get("/api/v1/cities", headers={"Origin": "https://evil.example"}),
}
print(json.dumps({name: dict(answer.headers) for name, answer in answers.items()}))
"""


def test_cors_is_off_by_default(client):
    preflight = client.options("/api/v1/clubs", headers=PREFLIGHT)
    answer = client.get("/api/v1/cities", headers={"Origin": APP_ORIGIN})
    for response in (preflight, answer):
        assert "Access-Control-Allow-Origin" not in response.headers


def test_named_origins_may_call_with_the_headers_the_api_uses(servers: Servers):
    environ = {
        **os.environ,
        "MONGODB_URI": servers.mongodb_uri,
        "REDIS_URL": servers.redis_url,
        "CORS_ORIGINS": f"{APP_ORIGIN}, https://console.example.com",
        "LOG_LEVEL": "WARNING",
    }
    probe = _PROBE % {"preflight": PREFLIGHT, "origin": APP_ORIGIN}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    headers = json.loads(done.stdout.strip().splitlines()[-1])
    preflight = headers["preflight"]
    assert preflight["Access-Control-Allow-Origin"] == APP_ORIGIN
    allowed = {h.strip().lower() for h in preflight["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in preflight  # bearer tokens, no cookies
    answer = headers["allowed"]
    assert answer["Access-Control-Allow-Origin"] == APP_ORIGIN
    exposed = answer["Access-Control-Expose-Headers"]
    assert "X-Request-ID" in exposed and "Idempotent-Replayed" in exposed
    assert "Access-Control-Allow-Origin" not in headers["other"]


@pytest.mark.parametrize("origin", ["app.example.com", "https://app.example.com/", "ftp://x"])
def test_a_setting_that_is_no_origin_stops_the_start(origin):
    settings = app_config.load({**os.environ, "CORS_ORIGINS": origin})
    with pytest.raises(app_config.ConfigError, match="CORS_ORIGINS"):
        app_config.validate(settings)
