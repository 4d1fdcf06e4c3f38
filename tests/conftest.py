"""Test fixtures: real embedded SecantusDB and Redis, started and stopped by the session.

With MONGODB_URI / REDIS_URL set, the suite uses those servers instead (a database of its
own). Collections are emptied, not dropped, between tests so indexes stay.

`make test` runs the suite on parallel pytest-xdist workers (`-n`, see the Makefile). Each
worker is a session of its own: it starts its own SecantusDB and Redis on free ports and
owns them, so tests never share data across workers, and within a worker they share the
servers and the app (session fixtures) and find every collection empty. A new test needs
nothing for this; what it must not do is assume another test ran before it, in the same
process or at all. One that takes more than about five seconds is marked
`@pytest.mark.slow`: slow tests start first, so the run does not end waiting on one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from argon2 import PasswordHasher
from pymongo import monitoring
from pymongo.operations import DeleteMany, InsertOne
from werkzeug.serving import make_server

from accounts import credentials
from app.broker import configure_broker
from app.embedded import (
    EmbeddedServer,
    die_with_parent,
    free_port,
    start_mongo,
    start_redis,
    stop_processes,
)
from tests.support import COMMAND_LOG

ROOT = Path(__file__).resolve().parent.parent

# A key of the session's own, inherited by the processes tests start: only an explicit
# ENVIRONMENT=development accepts the public development key.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(32))


def worker_redis_url(url: str, worker: str) -> str:
    """The given Redis as one xdist worker ("gw2") uses it: a database number of its own
    after the given one, since every worker empties its database after each test."""
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0) + int(worker.removeprefix("gw"))
    if number > 15:
        raise RuntimeError(f"{url} has no Redis database left for xdist worker {worker}")
    return urlunsplit(parts._replace(path=f"/{number}"))


# Dramatiq binds an actor to the global broker when its module is imported, and test modules
# import `tasks.py` modules while pytest collects them, before any fixture runs. So the
# embedded Redis's address is chosen now and the broker configured with it; the `servers`
# fixture then starts Redis there and puts it in the environment (only then: xdist's
# controller imports this module too, and its workers must inherit the environment as given).
_GIVEN_MONGODB_URI = os.environ.get("MONGODB_URI")
_GIVEN_REDIS_URL = os.environ.get("REDIS_URL")
_EMBEDDED_REDIS_PORT = None if _GIVEN_REDIS_URL else free_port()
if _GIVEN_REDIS_URL and os.environ.get("PYTEST_XDIST_WORKER"):
    _GIVEN_REDIS_URL = worker_redis_url(_GIVEN_REDIS_URL, os.environ["PYTEST_XDIST_WORKER"])
_REDIS_URL = _GIVEN_REDIS_URL or f"redis://127.0.0.1:{_EMBEDDED_REDIS_PORT}/0"
configure_broker(_REDIS_URL)
Built = TypeVar("Built")
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
            self.start_redis_again()

    def start_redis_again(self) -> None:
        """Start the embedded Redis on its port and data after it stopped, whoever stopped it."""
        assert self.redis_dir is not None
        self.redis = start_redis(self.redis_dir, port=self.redis_port)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    started: list[EmbeddedServer] = []
    result = Servers(mongodb_uri="", redis_url=_REDIS_URL)
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
        os.environ["REDIS_URL"] = result.redis_url
        yield result
    finally:
        if result.redis and result.redis not in started:
            started.append(result.redis)  # restarted by a failure test
        # Their data goes with the session: a clean shutdown (SecantusDB's takes 2 s) would
        # keep nothing anyone reads.
        for server in reversed(started):
            server.kill()


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


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes() -> Iterator[None]:
    """Passwords hashed in the test process cost argon2's least. At its production cost (64
    MiB, 3 passes, 4 lanes) one hash takes 0.2-0.5 s of both cores, and the suite registers
    over a thousand people: that was half its time. These hashes are still argon2's and
    verify as argon2; processes that tests start hash at full cost, and
    tests/accounts/test_passwords.py holds the production cost."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            credentials, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
        )
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Slow tests first: the parallel workers take them up at the start, and the quick ones
    # fill in around them, rather than one slow test running alone at the end. Tests that
    # run alone come last, when whatever runs beside them is quick to end: among the slow
    # ones one waited 25 s for a hypothesis run, and two workers with it.
    def turn(item: pytest.Item) -> int:
        if item.get_closest_marker("alone"):
            return 2
        return 0 if item.get_closest_marker("slow") else 1

    items.sort(key=turn)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """Under xdist, a test marked `@pytest.mark.alone` runs while no other test of the run
    does, set-up and clean-up included; the others run side by side. For the tests that
    hammer one document from many threads and count on every answer (beside another worker
    their contended transactions outran the request's database budget and answered 503),
    and those that time their own work. On two cores such a test keeps both busy anyway.
    Taken around the whole protocol, so the wait counts in no test's durations."""
    if not hasattr(item.config, "workerinput"):  # not an xdist worker: nothing runs beside
        return (yield)
    # Each worker's basetemp is a folder of the run's own.
    run_dir = Path(item.config.option.basetemp).parent
    alone = item.get_closest_marker("alone") is not None
    with (
        open(run_dir / "turnstile.lock", "a") as turnstile,
        open(run_dir / "tests.lock", "a") as tests,
    ):
        # Through the turnstile one at a time: a test waiting to be alone holds it until the
        # running ones end, so newcomers cannot keep it waiting for ever.
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(tests, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            return (yield)
        finally:
            fcntl.flock(tests, fcntl.LOCK_UN)


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

    if not _GIVEN_MONGODB_URI:
        # A test whose transaction timed out (a paused server, a spent request budget)
        # leaves it open on the server, which reaps it only when another transaction comes
        # along: the deletes below would wait on its locks for ever. The embedded server is
        # this worker's alone, so every session on it is the tests' to end.
        db.client().admin.command("killAllSessions", [])
    database = db.database()
    # One command for every collection (a delete each cost the server and this process
    # 20 ms a test in all, more than many tests' own work).
    everything = [
        DeleteMany({}, namespace=f"{database.name}.{name}")
        for name in database.list_collection_names()
        if not name.startswith("system.")
    ]
    if everything:
        db.client().bulk_write(everything, ordered=False)


def saved_database() -> dict[str, list[dict[str, Any]]]:
    """Every document of the test database, by collection, for `restore_database`: a world
    that many tests share is built once through the services (a quarter of a second or
    more) and put back before each of them (milliseconds)."""
    from app import db

    database = db.database()
    return {
        name: list(database[name].find())
        for name in database.list_collection_names()
        if not name.startswith("system.")
    }


def restore_database(saved: dict[str, list[dict[str, Any]]]) -> None:
    """Put back what `saved_database` saved, into an emptied database."""
    from app import db

    database = db.database()
    documents = [
        InsertOne(document, namespace=f"{database.name}.{name}")
        for name, stored in saved.items()
        for document in stored
    ]
    if documents:
        db.client().bulk_write(documents, ordered=False)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A folder the run's parallel workers share (each worker's basetemp is in it)."""
    basetemp = tmp_path_factory.getbasetemp()
    return basetemp.parent if hasattr(request.config, "workerinput") else basetemp


def built_once(run_dir: Path, name: str, build: Callable[[Path], None]) -> Path:
    """`run_dir/name`, made by `build(folder)` in whichever worker asks first; the others
    wait for it on a lock, for what costs the run tens of seconds each time (a wheel and
    its virtual environment, a generated client)."""
    folder = run_dir / name
    with open(run_dir / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


class Worlds:
    """The worlds a module's tests start from, each built once through the services (a
    quarter of a second or more) and put back before each later test that asks for it
    (milliseconds of inserts). Ask in a function-scoped fixture:
    `return worlds.restored(build_busy_city)`."""

    def __init__(self) -> None:
        self._saved: dict[Callable[[], Any], tuple[Any, dict[str, list[dict[str, Any]]]]] = {}

    def restored(self, build: Callable[[], Built]) -> Built:
        """`build()`'s world in the (emptied) database: built the first time, put back after."""
        if build not in self._saved:
            world = build()
            self._saved[build] = (world, saved_database())
            return world
        world, saved = self._saved[build]
        restore_database(saved)
        return world


@pytest.fixture(scope="module")
def worlds(app) -> Worlds:
    return Worlds()


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
    # Polled often, so shutdown() returns at once rather than after up to half a second.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
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
            # An idle worker polls Redis every 0.1 s rather than backing off to 1 s: it takes
            # a message up sooner and stops in a fraction of the 3 s it took.
            "dramatiq_worker_timeout": "100",
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
    # Polled often, so shutdown() returns at once rather than after up to half a second.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        thread.join(10)
