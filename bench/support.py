"""What the benchmarks share: the embedded servers when none are configured, and the API
under gunicorn on loopback."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def servers(prefix: str) -> Iterator[None]:
    """Start SecantusDB and Redis for the run unless MONGODB_URI / REDIS_URL name servers."""
    from app.embedded import start_mongo, start_redis

    # Benchmarks run on loopback: the development SECRET_KEY will do unless one is given.
    os.environ.setdefault("ENVIRONMENT", "development")
    started = []
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        try:
            if not os.environ.get("MONGODB_URI"):
                started.append(start_mongo(Path(scratch) / "mongodb", "bench"))
                os.environ["MONGODB_URI"] = started[-1].uri
            if not os.environ.get("REDIS_URL"):
                started.append(start_redis(Path(scratch) / "redis"))
                os.environ["REDIS_URL"] = started[-1].uri
            yield
        finally:
            for server in reversed(started):
                server.stop()


def owners(count: int, city: str = "SZ") -> list[tuple[str, str]]:
    """`count` owners of `city` written in one insert, each with the access token of a live
    session: (user id, token). Needs an app context."""
    from bson import ObjectId

    from accounts.models import User
    from accounts.services import start_session

    users = [
        User(
            id=ObjectId(),
            email=f"bench{ObjectId()}@example.com",
            password_hash="x",
            display_name="Bench owner",
            city_code=city,
            referral_code=f"B{ObjectId()}",
        )
        for _ in range(count)
    ]
    User._get_collection().insert_many([user.to_mongo() for user in users])
    return [(str(user.pk), start_session(user.pk, "bench")["access_token"]) for user in users]


@contextmanager
def api_server(
    workers: int = 2, threads: int = 8, environ: dict[str, str] | None = None
) -> Iterator[str]:
    """The API under gunicorn on a free loopback port; yields its base URL once healthy.
    `environ` adds settings of the run's own."""
    from app.embedded import free_port

    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "wsgi:app",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "LOG_LEVEL": "WARNING",
            "RATELIMIT_ENABLED": "false",
            **(environ or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit("bench: the API server exited")
            # Connection refused or a slow first answer: gunicorn is still booting.
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("bench: the API server did not start")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(20)
