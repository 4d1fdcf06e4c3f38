from __future__ import annotations

import pytest

from app import config


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


def test_production_refuses_the_development_secret():
    settings = config.load(
        {"MONGODB_URI": "mongodb://x/db", "REDIS_URL": "redis://x", "ENVIRONMENT": "production"}
    )
    with pytest.raises(config.ConfigError, match="SECRET_KEY"):
        config.validate(settings)
    settings["SECRET_KEY"] = "s" * 40
    config.validate(settings)


def test_missing_servers_are_reported():
    with pytest.raises(config.ConfigError, match="MONGODB_URI"):
        config.validate(config.load({}))


def test_readme_documents_every_variable():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [s.env for s in config.SETTINGS if f"`{s.env}`" not in readme]
    assert missing == []
