"""Test fixtures: real embedded SecantusDB and Redis, started and stopped by the session.

With MONGODB_URI / REDIS_URL set, the suite uses those servers instead (a database of its
own). Collections are emptied, not dropped, between tests so indexes stay.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from pymongo import monitoring
from werkzeug.serving import make_server

from app.embedded import (
    EmbeddedServer,
    die_with_parent,
    free_port,
    start_mongo,
    start_redis,
    stop_processes,
)
from tests.support import COMMAND_LOG
from workers.broker import configure_broker

ROOT = Path(__file__).resolve().parent.parent

# A key of the session's own, inherited by the processes tests start: only an explicit
# ENVIRONMENT=development accepts the public development key.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(32))

# Dramatiq binds an actor to the global broker when its module is imported, and test modules
# import `tasks.py` modules while pytest collects them, before any fixture runs. So the
# embedded Redis's address is chosen now and the broker configured with it; the `servers`
# fixture then starts Redis there.
_GIVEN_MONGODB_URI = os.environ.get("MONGODB_URI")
_GIVEN_REDIS_URL = os.environ.get("REDIS_URL")
_EMBEDDED_REDIS_PORT = None if _GIVEN_REDIS_URL else free_port()
os.environ["REDIS_URL"] = _GIVEN_REDIS_URL or f"redis://127.0.0.1:{_EMBEDDED_REDIS_PORT}/0"
configure_broker(os.environ["REDIS_URL"])
# Before any MongoDB client exists (pymongo gives a listener only to the clients created
# after it), so `count_commands()` sees every client's commands.
monitoring.register(COMMAND_LOG)


@dataclass
class Servers:
    mongodb_uri: str
    redis_url: str
    mongo: EmbeddedServer | None = None
    redis: EmbeddedServer | None = None
    redis_dir: Path | None = None
    redis_port: int | None = None

    @contextlib.contextmanager
    def redis_down(self) -> Iterator[None]:
        """`with servers.redis_down():` the embedded Redis is stopped for the block, and
        started again on its port after it, whatever the block raised."""
        assert self.redis is not None, "only an embedded Redis can be stopped by tests"
        assert self.redis_dir is not None
        self.redis.stop()
        try:
            yield
        finally:
            self.redis = start_redis(self.redis_dir, port=self.redis_port)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    started: list[EmbeddedServer] = []
    result = Servers(mongodb_uri="", redis_url=os.environ["REDIS_URL"])
    try:
        if _GIVEN_MONGODB_URI:
            base, _, query = _GIVEN_MONGODB_URI.partition("?")
            result.mongodb_uri = f"{base.rsplit('/', 1)[0]}/test_{uuid.uuid4().hex[:8]}" + (
                f"?{query}" if query else ""
            )
        else:
            result.mongo = start_mongo(tmp_path_factory.mktemp("mongodb"), "test")
            started.append(result.mongo)
            result.mongodb_uri = result.mongo.uri
        if _EMBEDDED_REDIS_PORT:
            result.redis_dir = tmp_path_factory.mktemp("redis")
            result.redis_port = _EMBEDDED_REDIS_PORT
            result.redis = start_redis(result.redis_dir, port=_EMBEDDED_REDIS_PORT)
        os.environ["MONGODB_URI"] = result.mongodb_uri
        yield result
    finally:
        if result.redis and result.redis not in started:
            started.append(result.redis)  # restarted by a failure test
        for server in reversed(started):
            server.stop()


TEST_SETTINGS = {
    # High enough for any functional test; the rate-limit tests lower them.
    "RATELIMIT_LOGIN_PER_ACCOUNT": "1000 per minute",
    "RATELIMIT_LOGIN_PER_IP": "1000 per minute",
    "RATELIMIT_REGISTER_PER_IP": "1000 per minute",
    "RATELIMIT_PASSWORD_RESET_PER_ACCOUNT": "1000 per minute",
    "RATELIMIT_PASSWORD_RESET_PER_IP": "1000 per minute",
    "RATELIMIT_POSTS_PER_USER": "1000 per minute",
    "RATELIMIT_COMMENTS_PER_USER": "1000 per minute",
    "RATELIMIT_LIKES_PER_USER": "1000 per minute",
    "RATELIMIT_REPORTS_PER_USER": "1000 per minute",
    "RATELIMIT_PAY_CODES_PER_USER": "1000 per minute",
    "RATELIMIT_PAY_CODE_FAILURES_PER_PARTNER": "1000 per minute",
}


@pytest.fixture(scope="session")
def app(servers: Servers):
    from app import create_app

    application = create_app(TEST_SETTINGS)
    application.testing = True
    with application.app_context():
        yield application


@pytest.fixture(autouse=True)
def _answers_match_their_records(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every request made with an Idempotency-Key in any test: the view answered exactly
    what its transaction recorded for replays (app/idempotency.py logs when it did not)."""
    yield
    differing = [r for r in caplog.records if "idempotent_answer_differs" in r.getMessage()]
    assert not differing, differing


def empty_database() -> None:
    """Empty every collection of the test database, keeping the indexes."""
    from app import db

    database = db.database()
    for name in database.list_collection_names():
        if not name.startswith("system."):
            database[name].delete_many({})


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "app" not in request.fixturenames:
        return
    empty_database()
    # A failure test may have left Redis down; the next test that needs it starts it.
    with contextlib.suppress(redis.exceptions.RedisError):
        redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2).flushdb()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app behind a real threaded HTTP server, for truly concurrent requests."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


@dataclass
class BackgroundProcesses:
    """Real worker and dispatcher processes on the test servers."""

    environ: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    COMMANDS = {
        "worker": [
            str(Path(sys.executable).parent / "dramatiq"),
            "workers.main",
            "--processes",
            "1",
            "--threads",
            "4",
        ],
        "dispatcher": [sys.executable, "-m", "workers.dispatcher"],
        "scheduler": [sys.executable, "-m", "workers.scheduler"],
    }

    def start(self, name: str, alias: str | None = None) -> subprocess.Popen:
        # A process group of its own, so `kill` reaches the processes Dramatiq forks too;
        # and it dies with the test session even when pytest itself is killed.
        process = subprocess.Popen(
            self.COMMANDS[name],
            cwd=ROOT,
            env=self.environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.processes[alias or name] = process
        return process

    def kill(self, name: str) -> None:
        """SIGKILL the process and everything it forked, as a crash of the host would."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        stop_processes(self.processes.values())
        self.processes.clear()


@pytest.fixture
def background(app, servers: Servers) -> Iterator[Callable[..., BackgroundProcesses]]:
    """Start real processes: `background("worker", "dispatcher", EXTRA_HANDLER_MODULES=...)`."""
    started: list[BackgroundProcesses] = []

    def start(*names: str, **env: str) -> BackgroundProcesses:
        environ = {
            **os.environ,
            "MONGODB_URI": servers.mongodb_uri,
            "REDIS_URL": servers.redis_url,
            "DRAMATIQ_HEARTBEAT_TIMEOUT_MS": "5000",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        group = BackgroundProcesses(environ)
        started.append(group)
        for name in names:
            group.start(name)
        return group

    try:
        yield start
    finally:
        for group in started:
            group.stop_all()


@dataclass
class PushReceiver:
    """A real HTTP server on the loopback interface standing in for a push gateway."""

    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    # Statuses to answer with, in order; 200 once they run out.
    answers: list[int] = field(default_factory=list)
    # Answer 503 once to the first push whose body contains this (pushes of one domain
    # event for several handlers arrive in any order).
    refuse_once_containing: bytes | None = None

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def push_receiver() -> Iterator[PushReceiver]:
    receiver = PushReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests.append((dict(self.headers), body))
            status = receiver.answers.pop(0) if receiver.answers else 200
            if receiver.refuse_once_containing and receiver.refuse_once_containing in body:
                receiver.refuse_once_containing, status = None, 503
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}/push"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        thread.join(10)
