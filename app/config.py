"""Configuration: every environment variable the service reads, each in one place with its type.

README's configuration table mirrors `SETTINGS` (and the launcher's own,
`app.launcher.LAUNCHER_SETTINGS`); keep them in step.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Public (it is in the repository): anyone can sign tokens with it. Only an explicit
# ENVIRONMENT=development accepts it, and the API then answers loopback clients only.
DEVELOPMENT_SECRET_KEY = "dev-insecure-secret-key-change-me-0000000000"
MIN_SECRET_KEY_LENGTH = 32


class ConfigError(RuntimeError):
    """Raised at start-up when the environment holds a value the service cannot use."""


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _names(raw: str) -> tuple[str, ...]:
    return tuple(filter(None, (part.strip() for part in raw.split(","))))


@dataclass(frozen=True)
class Setting:
    env: str
    key: str
    parse: Callable[[str], Any]
    default: Any
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "MONGODB_URI",
        "MONGODB_URI",
        str,
        None,
        "MongoDB URI including the database name. Unset: the launcher and the tests start "
        "an embedded SecantusDB on 127.0.0.1.",
    ),
    Setting(
        "REDIS_URL",
        "REDIS_URL",
        str,
        None,
        "Redis URL for Dramatiq, rate limits and scheduler locks. Unset: an embedded "
        "redis-server is started.",
    ),
    Setting(
        "SECRET_KEY",
        "SECRET_KEY",
        str,
        DEVELOPMENT_SECRET_KEY,
        f"Signs JWTs and event tickets: {MIN_SECRET_KEY_LENGTH}+ random characters. Unset: "
        "the public development key, which only `ENVIRONMENT=development` accepts.",
    ),
    Setting(
        "SECRET_KEY_PREVIOUS",
        "SECRET_KEY_PREVIOUS",
        str,
        None,
        "The SECRET_KEY before the last rotation: still verifies the tokens and tickets it "
        "signed, so a rotation logs nobody out.",
    ),
    Setting(
        "ENVIRONMENT",
        "ENVIRONMENT",
        str,
        None,
        "`development` (`make run` sets it) accepts the public development SECRET_KEY and then "
        "serves loopback clients only. Anything else, or unset, needs a SECRET_KEY of your own.",
    ),
    Setting(
        "JWT_ACCESS_TTL_SECONDS", "JWT_ACCESS_TOKEN_EXPIRES", int, 900, "Lifetime of access tokens."
    ),
    Setting(
        "JWT_REFRESH_TTL_SECONDS",
        "JWT_REFRESH_TOKEN_EXPIRES",
        int,
        30 * 24 * 3600,
        "Lifetime of refresh tokens.",
    ),
    Setting(
        "REFRESH_REUSE_GRACE_SECONDS",
        "REFRESH_REUSE_GRACE_SECONDS",
        int,
        10,
        "A spent refresh token presented again this soon after its exchange gets the same new "
        "tokens (an app's parallel requests refreshing at once); later, it ends the session.",
    ),
    Setting(
        "SCORECARD_REFRESH_SECONDS",
        "SCORECARD_REFRESH_SECONDS",
        int,
        600,
        "A city partner's scorecard of the current month is recomputed on reading at most "
        "this often (the nightly job computes every month anyway).",
    ),
    Setting(
        "RATELIMIT_ENABLED",
        "RATELIMIT_ENABLED",
        _boolean,
        True,
        "`false` turns every rate limit off (load tests).",
    ),
    Setting(
        "RATELIMIT_LOGIN_PER_ACCOUNT",
        "RATELIMIT_LOGIN_PER_ACCOUNT",
        str,
        "10 per minute",
        "Login attempts allowed per account (flask-limiter syntax).",
    ),
    Setting(
        "RATELIMIT_LOGIN_PER_IP",
        "RATELIMIT_LOGIN_PER_IP",
        str,
        "30 per minute",
        "Login attempts allowed per client IP.",
    ),
    Setting(
        "RATELIMIT_REGISTER_PER_IP",
        "RATELIMIT_REGISTER_PER_IP",
        str,
        "20 per minute",
        "Sign-ups allowed per client IP.",
    ),
    Setting(
        "RATELIMIT_PASSWORD_RESET_PER_ACCOUNT",
        "RATELIMIT_PASSWORD_RESET_PER_ACCOUNT",
        str,
        "10 per hour",
        "Password-reset codes asked for and confirmations tried, together, per account.",
    ),
    Setting(
        "RATELIMIT_PASSWORD_RESET_PER_IP",
        "RATELIMIT_PASSWORD_RESET_PER_IP",
        str,
        "30 per hour",
        "Password-reset requests and confirmations, together, per client IP.",
    ),
    Setting(
        "RATELIMIT_POSTS_PER_USER",
        "RATELIMIT_POSTS_PER_USER",
        str,
        "5 per minute",
        "Posts an owner may publish (flask-limiter syntax).",
    ),
    Setting(
        "RATELIMIT_COMMENTS_PER_USER",
        "RATELIMIT_COMMENTS_PER_USER",
        str,
        "20 per minute",
        "Comments an owner may write.",
    ),
    Setting(
        "RATELIMIT_LIKES_PER_USER",
        "RATELIMIT_LIKES_PER_USER",
        str,
        "60 per minute",
        "Likes and unlikes an owner may send.",
    ),
    Setting(
        "RATELIMIT_REPORTS_PER_USER",
        "RATELIMIT_REPORTS_PER_USER",
        str,
        "10 per minute",
        "Reports an owner may file.",
    ),
    Setting(
        "NEW_ACCOUNT_POSTS_PER_DAY",
        "NEW_ACCOUNT_POSTS_PER_DAY",
        int,
        3,
        "Posts an account younger than 24 hours may publish (429 `new_account_limit`).",
    ),
    Setting(
        "NEW_ACCOUNT_COMMENTS_PER_DAY",
        "NEW_ACCOUNT_COMMENTS_PER_DAY",
        int,
        10,
        "Comments an account younger than 24 hours may write.",
    ),
    Setting(
        "REPORT_HIDE_THRESHOLD",
        "REPORT_HIDE_THRESHOLD",
        float,
        3.0,
        "Open report weight at which a post or comment is hidden pending review.",
    ),
    Setting(
        "REPORT_MAX_WEIGHT",
        "REPORT_MAX_WEIGHT",
        float,
        2.5,
        "The most one report weighs, however trusted its reporter; below "
        "REPORT_HIDE_THRESHOLD, so that nobody hides content alone.",
    ),
    Setting(
        "REPORTER_PROBATION_DAYS",
        "REPORTER_PROBATION_DAYS",
        int,
        7,
        "Days after sign-up during which an account's reports weigh nothing until a person "
        "decides them.",
    ),
    Setting(
        "REPORTER_MIN_DECIDED",
        "REPORTER_MIN_DECIDED",
        int,
        5,
        "Decided reports a reporter needs before the share of them upheld adds weight.",
    ),
    Setting(
        "REPORTER_ACCURACY_BONUS",
        "REPORTER_ACCURACY_BONUS",
        float,
        1.0,
        "The most weight a reporter's accuracy (share of decided reports upheld) adds.",
    ),
    Setting(
        "CLIENT_FINGERPRINT_DAYS",
        "CLIENT_FINGERPRINT_DAYS",
        int,
        90,
        "Days an account keeps the fingerprint of the client it signed up from (a keyed "
        "hash of its IP and device name); while kept, accounts from one client count once "
        "among a target's reporters.",
    ),
    Setting(
        "SENSITIVE_WORDS_REFRESH_SECONDS",
        "SENSITIVE_WORDS_REFRESH_SECONDS",
        float,
        10.0,
        "How often a process checks whether the sensitive-word list changed.",
    ),
    Setting(
        "MAX_CONTENT_LENGTH",
        "MAX_CONTENT_LENGTH",
        int,
        1024 * 1024,
        "Largest request body in bytes; larger bodies get 413.",
    ),
    Setting(
        "STATEMENT_MAX_BYTES",
        "STATEMENT_MAX_BYTES",
        int,
        64 * 1024 * 1024,
        "Largest ecosystem partner statement body in bytes (a day of 200,000 lines is about "
        "30 MB); larger ones get 413.",
    ),
    Setting(
        "STATEMENT_DB_BUDGET_MS",
        "STATEMENT_DB_BUDGET_MS",
        int,
        60_000,
        "The database budget of an ecosystem partner's statement upload, in place of "
        "REQUEST_DB_BUDGET_MS: storing 100,000 lines takes longer than any other request.",
    ),
    Setting(
        "RATELIMIT_PAY_CODES_PER_USER",
        "RATELIMIT_PAY_CODES_PER_USER",
        str,
        "10 per minute",
        "Pay codes an owner may ask for (each holds one of the million numbers for an hour).",
    ),
    Setting(
        "RATELIMIT_PAY_CODE_FAILURES_PER_PARTNER",
        "RATELIMIT_PAY_CODE_FAILURES_PER_PARTNER",
        str,
        "60 per minute",
        "Debits an ecosystem partner may send with an invalid, used or expired pay code before "
        "its debits are refused 429 (guessing six digits).",
    ),
    Setting(
        "DEFAULT_PHONE_REGION",
        "DEFAULT_PHONE_REGION",
        str,
        "CN",
        "Region assumed for phone numbers written without a country code.",
    ),
    Setting("LOG_LEVEL", "LOG_LEVEL", str, "INFO", "Log level of the JSON logs."),
    Setting(
        "TRUSTED_PROXIES",
        "TRUSTED_PROXIES",
        int,
        0,
        "How many reverse proxies set X-Forwarded-For in front of the API (rate limits use "
        "the client IP).",
    ),
    Setting(
        "REQUEST_DB_BUDGET_MS",
        "REQUEST_DB_BUDGET_MS",
        int,
        5000,
        "The time all MongoDB work of one API request may take (pymongo's client-side "
        "timeout, connecting included); past it the request answers 503 with Retry-After "
        "instead of waiting on a slow or unreachable database.",
    ),
    Setting(
        "REDIS_TIMEOUT_MS",
        "REDIS_TIMEOUT_MS",
        int,
        500,
        "Connect and read timeout of the API's Redis clients (rate limits, readiness): a slow "
        "or unreachable Redis pauses the limits instead of holding requests.",
    ),
    Setting(
        "MAX_REQUESTS_IN_FLIGHT",
        "MAX_REQUESTS_IN_FLIGHT",
        int,
        0,
        "Requests one API process works on at once; a request finding them all busy waits "
        "ADMISSION_WAIT_MS, then answers 503 with Retry-After. 0: no limit. Set it below "
        "gunicorn's --threads (app/admission.py).",
    ),
    Setting(
        "ADMISSION_WAIT_MS",
        "ADMISSION_WAIT_MS",
        int,
        100,
        "How long a request waits for one of the MAX_REQUESTS_IN_FLIGHT places.",
    ),
    Setting(
        "DRAMATIQ_HEARTBEAT_TIMEOUT_MS",
        "DRAMATIQ_HEARTBEAT_TIMEOUT_MS",
        int,
        60_000,
        "After this long without a heartbeat a worker counts as dead and its unacked "
        "messages are redelivered.",
    ),
    Setting(
        "DISPATCHER_LEASE_SECONDS",
        "DISPATCHER_LEASE_SECONDS",
        int,
        30,
        "How long the leading outbox dispatcher's lead lasts unless renewed (a third of it "
        "before it runs out): after a crash, a standby takes over within this time.",
    ),
    Setting(
        "EXTRA_HANDLER_MODULES",
        "EXTRA_HANDLER_MODULES",
        _names,
        (),
        "Comma-separated modules with more domain event handlers for the workers and the "
        "dispatcher (tests load failing and slow handlers this way).",
    ),
    Setting(
        "EXTRA_SCHEDULE_MODULES",
        "EXTRA_SCHEDULE_MODULES",
        _names,
        (),
        "Comma-separated modules whose `SCHEDULE` the scheduler runs besides "
        "workers/schedule.py's (tests add a job firing every few seconds this way).",
    ),
    Setting(
        "METRICS_TOKEN",
        "METRICS_TOKEN",
        str,
        None,
        "Bearer token `/metrics` requires. Unset: `/metrics` answers loopback requests only.",
    ),
    Setting(
        "CORS_ORIGINS",
        "CORS_ORIGINS",
        _names,
        (),
        "Comma-separated origins (`https://app.example.com`) whose browser pages may call the "
        "API; `*` for any. Empty: no cross-origin access (the default).",
    ),
    Setting(
        "TICKET_KEY_ROTATION_DAYS",
        "TICKET_KEY_ROTATION_DAYS",
        int,
        30,
        "Days a city partner's Ed25519 ticket key signs before the next one takes over (the "
        "old one verifies what it signed until those tickets expire). Positive.",
    ),
    Setting(
        "CONSOLE_SESSION_HOURS",
        "CONSOLE_SESSION_HOURS",
        int,
        12,
        "Hours a console sign-in lasts (its device session then ends). Positive.",
    ),
    Setting(
        "BULK_CREDIT_MAX_BYTES",
        "BULK_CREDIT_MAX_BYTES",
        int,
        32 * 1024 * 1024,
        "Largest CSV file an admin uploads to credit owners in bulk (the one body allowed "
        "past MAX_CONTENT_LENGTH).",
    ),
    Setting(
        "BULK_CREDIT_MAX_LINES",
        "BULK_CREDIT_MAX_LINES",
        int,
        500_000,
        "Most lines one bulk credit file may hold.",
    ),
    Setting("PUSH_PROVIDER", "PUSH_PROVIDER", str, "log", "`log` or `webhook`."),
    Setting(
        "PUSH_WEBHOOK_URL",
        "PUSH_WEBHOOK_URL",
        str,
        None,
        "Where the webhook push provider POSTs notifications.",
    ),
    Setting(
        "PUSH_WEBHOOK_SECRET",
        "PUSH_WEBHOOK_SECRET",
        str,
        None,
        "HMAC-SHA256 key that signs webhook bodies (X-Signature header).",
    ),
)


def load(
    environ: dict[str, str] | os._Environ = os.environ, settings: tuple[Setting, ...] = SETTINGS
) -> dict[str, Any]:
    """Read settings from the environment, with their types; raise ConfigError on bad values."""
    config: dict[str, Any] = {}
    for setting in settings:
        raw = environ.get(setting.env)
        if raw is None or raw == "":
            config[setting.key] = setting.default
            continue
        try:
            config[setting.key] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{setting.env}: {exc}") from exc
    return config


def validate(config: dict[str, Any]) -> None:
    """Refuse configurations the service must not run with."""
    if not config.get("MONGODB_URI"):
        raise ConfigError("MONGODB_URI is not set (the launcher sets it for embedded servers)")
    if not config.get("REDIS_URL"):
        raise ConfigError("REDIS_URL is not set (the launcher sets it for embedded servers)")
    _validate_secret(config["SECRET_KEY"], config["ENVIRONMENT"])
    previous = config.get("SECRET_KEY_PREVIOUS")
    too_short = previous is not None and len(previous) < MIN_SECRET_KEY_LENGTH
    if too_short and config["ENVIRONMENT"] != "development":
        raise ConfigError(f"SECRET_KEY_PREVIOUS must be {MIN_SECRET_KEY_LENGTH}+ random characters")
    for env, key in (
        ("JWT_ACCESS_TTL_SECONDS", "JWT_ACCESS_TOKEN_EXPIRES"),
        ("JWT_REFRESH_TTL_SECONDS", "JWT_REFRESH_TOKEN_EXPIRES"),
    ):
        # flask-jwt-extended leaves `exp` out of tokens made with a zero lifetime, and the
        # API refuses tokens without `exp`.
        if config[key] <= 0:
            raise ConfigError(f"{env} must be a positive number of seconds")
    if config["REFRESH_REUSE_GRACE_SECONDS"] < 0:
        raise ConfigError("REFRESH_REUSE_GRACE_SECONDS must not be negative")
    if config["MAX_REQUESTS_IN_FLIGHT"] < 0 or config["ADMISSION_WAIT_MS"] < 0:
        raise ConfigError("MAX_REQUESTS_IN_FLIGHT and ADMISSION_WAIT_MS cannot be negative")
    for env in ("REQUEST_DB_BUDGET_MS", "REDIS_TIMEOUT_MS"):
        # Zero would make every database call or rate-limit check time out at once.
        if config[env] <= 0:
            raise ConfigError(f"{env} must be a positive number of milliseconds")
    if not 0 < config["REPORT_MAX_WEIGHT"] < config["REPORT_HIDE_THRESHOLD"]:
        # One report reaching the threshold would let a single account hide content.
        raise ConfigError("REPORT_MAX_WEIGHT must be above 0 and below REPORT_HIDE_THRESHOLD")
    for env in (
        "REPORTER_PROBATION_DAYS",
        "REPORTER_MIN_DECIDED",
        "REPORTER_ACCURACY_BONUS",
        "CLIENT_FINGERPRINT_DAYS",
    ):
        if config[env] < 0:
            raise ConfigError(f"{env} must not be negative")
    if config["DISPATCHER_LEASE_SECONDS"] <= 0:
        raise ConfigError("DISPATCHER_LEASE_SECONDS must be a positive number of seconds")
    if config["SCORECARD_REFRESH_SECONDS"] < 0:
        raise ConfigError("SCORECARD_REFRESH_SECONDS must not be negative")
    for origin in config["CORS_ORIGINS"]:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port])")
    if config["CONSOLE_SESSION_HOURS"] <= 0:
        raise ConfigError("CONSOLE_SESSION_HOURS must be a positive number of hours")
    for env in ("BULK_CREDIT_MAX_BYTES", "BULK_CREDIT_MAX_LINES"):
        if config[env] <= 0:
            raise ConfigError(f"{env} must be positive")
    if config["TICKET_KEY_ROTATION_DAYS"] <= 0:
        raise ConfigError("TICKET_KEY_ROTATION_DAYS must be a positive number of days")
    if config["PUSH_PROVIDER"] not in {"log", "webhook"}:
        raise ConfigError("PUSH_PROVIDER must be `log` or `webhook`")
    if config["PUSH_PROVIDER"] == "webhook" and not config.get("PUSH_WEBHOOK_URL"):
        raise ConfigError("PUSH_PROVIDER=webhook needs PUSH_WEBHOOK_URL")
    if config["PUSH_PROVIDER"] == "webhook" and not config.get("PUSH_WEBHOOK_SECRET"):
        raise ConfigError("PUSH_PROVIDER=webhook needs PUSH_WEBHOOK_SECRET (bodies are signed)")


# An origin as a browser sends it: scheme, host and maybe a port; no path, no trailing slash.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def uses_development_secret(config: dict[str, Any]) -> bool:
    return config["SECRET_KEY"] == DEVELOPMENT_SECRET_KEY


def _validate_secret(secret: str, environment: str | None) -> None:
    if environment == "development":
        return
    if secret == DEVELOPMENT_SECRET_KEY:
        raise ConfigError(
            "SECRET_KEY is not set. Set it to "
            f"{MIN_SECRET_KEY_LENGTH}+ random characters (python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'), or set ENVIRONMENT=development to run on "
            "loopback with the public development key (`make run` does)"
        )
    if len(secret) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(f"SECRET_KEY must be {MIN_SECRET_KEY_LENGTH}+ random characters")
