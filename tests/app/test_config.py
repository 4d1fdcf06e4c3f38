from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask_jwt_extended import create_access_token, create_refresh_token

from app import config, launcher
from tests.support import make_person

ROOT = Path(__file__).resolve().parents[2]
SERVERS = {"MONGODB_URI": "mongodb://x/db", "REDIS_URL": "redis://x"}


def test_every_setting_is_typed_from_the_environment():
    loaded = config.load(
        {
            "JWT_ACCESS_TTL_SECONDS": "60",
            "RATELIMIT_ENABLED": "false",
            "EXTRA_HANDLER_MODULES": "a.b, c.d",
        }
    )
    assert loaded["JWT_ACCESS_TOKEN_EXPIRES"] == 60
    assert loaded["RATELIMIT_ENABLED"] is False
    assert loaded["EXTRA_HANDLER_MODULES"] == ("a.b", "c.d")
    assert loaded["MAX_CONTENT_LENGTH"] == 1024 * 1024


@pytest.mark.parametrize(
    "env", [{"JWT_ACCESS_TTL_SECONDS": "soon"}, {"RATELIMIT_ENABLED": "maybe"}]
)
def test_bad_values_fail_at_start_up(env):
    with pytest.raises(config.ConfigError):
        config.load(env)


@pytest.mark.parametrize("environment", [None, "production", "staging"])
def test_only_an_explicit_development_environment_accepts_the_development_secret(environment):
    environ = {**SERVERS, **({"ENVIRONMENT": environment} if environment else {})}
    with pytest.raises(config.ConfigError, match="SECRET_KEY is not set.*ENVIRONMENT=development"):
        config.validate(config.load(environ))
    with pytest.raises(config.ConfigError, match="32"):
        config.validate(config.load({**environ, "SECRET_KEY": "short"}))
    config.validate(config.load({**environ, "SECRET_KEY": "s" * 40}))

    development = config.load({**SERVERS, "ENVIRONMENT": "development"})
    config.validate(development)
    assert development["SECRET_KEY"] == config.DEVELOPMENT_SECRET_KEY


def test_a_process_without_a_secret_refuses_to_start():
    environ = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ENVIRONMENT"}}
    started = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env={**environ, **SERVERS},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "ConfigError: SECRET_KEY is not set" in started.stderr


@pytest.mark.parametrize("variable", ["JWT_ACCESS_TTL_SECONDS", "JWT_REFRESH_TTL_SECONDS"])
def test_token_lifetimes_must_be_positive(variable):
    # A zero lifetime makes tokens without `exp`, which the API refuses.
    settings = config.load({**SERVERS, "SECRET_KEY": "s" * 40, variable: "0"})
    with pytest.raises(config.ConfigError, match=variable):
        config.validate(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REQUEST_DB_BUDGET_MS", "0"),
        ("REDIS_TIMEOUT_MS", "0"),
        ("MAX_REQUESTS_IN_FLIGHT", "-1"),
        ("ADMISSION_WAIT_MS", "-1"),
    ],
)
def test_overload_settings_are_refused_when_they_cannot_work(variable, value):
    settings = config.load({**SERVERS, "SECRET_KEY": "s" * 40, variable: value})
    with pytest.raises(config.ConfigError, match=variable):
        config.validate(settings)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_the_dispatchers_lease_must_be_positive(value):
    # A lease already run out would let each standby take the lead at once, over and over.
    settings = config.load({**SERVERS, "SECRET_KEY": "s" * 40, "DISPATCHER_LEASE_SECONDS": value})
    with pytest.raises(config.ConfigError, match="DISPATCHER_LEASE_SECONDS"):
        config.validate(settings)


def test_tokens_without_an_expiry_are_refused(client):
    person = make_person()
    never_expiring = create_access_token(identity=person.id, expires_delta=False)
    refused = client.get("/api/v1/me", headers={"Authorization": f"Bearer {never_expiring}"})
    assert refused.status_code == 401
    assert refused.json["error"] == "unauthorized"
    assert client.get("/api/v1/me", headers=person.headers).status_code == 200

    refresh = create_refresh_token(identity=person.id, expires_delta=False)
    refused = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {refresh}"})
    assert refused.status_code == 401
    assert refused.json["error"] == "unauthorized"


def test_the_development_secret_serves_loopback_clients_only(app, client):
    own_secret = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = config.DEVELOPMENT_SECRET_KEY
    try:
        remote = client.get("/health", environ_base={"REMOTE_ADDR": "203.0.113.7"})
        assert remote.status_code == 403
        assert remote.json["error"] == "development_key_loopback_only"
        for loopback in ("127.0.0.1", "::1"):
            assert client.get("/health", environ_base={"REMOTE_ADDR": loopback}).status_code == 200
    finally:
        app.config["SECRET_KEY"] = own_secret
    assert client.get("/health", environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 200


def test_missing_servers_are_reported():
    with pytest.raises(config.ConfigError, match="MONGODB_URI"):
        config.validate(config.load({}))


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    settings = (*config.SETTINGS, *launcher.LAUNCHER_SETTINGS)
    missing = [s.env for s in settings if f"`{s.env}`" not in readme]
    assert missing == []
