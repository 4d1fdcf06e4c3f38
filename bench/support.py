"""What the benchmarks share: the embedded servers when none are configured, the API under
gunicorn on loopback as the README runs it, owners with tokens, timed bursts of requests
and the lines that print them next to their baseline."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from app.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def servers(prefix: str) -> Iterator[list[EmbeddedServer]]:
    """Start SecantusDB and Redis for the run unless MONGODB_URI / REDIS_URL name servers;
    yields those started (a benchmark may read their processes' CPU)."""
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
            yield started
        finally:
            for server in reversed(started):
                server.stop()


@contextmanager
def api_server(
    workers: int = 4,
    threads: int = 4,
    environ: dict[str, str] | None = None,
    application: str = "wsgi:app",
) -> Iterator[str]:
    """The API under gunicorn on a free loopback port, as the README's production command
    runs it (4 workers x 4 gthread threads); yields its base URL once healthy. `environ`
    adds settings of the run's own; `application` serves another WSGI app the same way (it
    answers GET /health)."""
    from app.embedded import free_port, stop_processes

    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            application,
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
        stop_processes([process], 20)


def load() -> str:
    """The machine's load averages (1, 5, 15 min) and cores: shared machines skew points_account."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} cores"


@dataclass
class Burst:
    """`count` calls made from `clients` threads: their rate and latencies."""

    count: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def line(self, name: str, baseline: Burst, unit: str) -> str:
        return (
            f"  {name:<34} {self.rate:8.1f} {unit}/s   p50 {self.percentile(0.5) * 1000:7.1f} ms"
            f"   p99 {self.percentile(0.99) * 1000:7.1f} ms   {self.rate / baseline.rate:.2f}x"
        )


def burst(count: int, clients: int, attempt: Callable[[int], None]) -> Burst:
    """Run `attempt(i)` for i < count from `clients` threads."""
    latencies: list[float] = []
    lock = threading.Lock()

    def timed(index: int) -> None:
        started = time.perf_counter()
        attempt(index)
        with lock:
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(timed, range(count)))
    return Burst(count, time.perf_counter() - started, latencies)


def owners(count: int, city: str = "SZ") -> list[tuple[str, str]]:
    """Owners inserted at once (hashing each password would take minutes), with the access
    token of a live session each: (id, token) pairs."""
    from bson import ObjectId

    from accounts.models import City, User
    from accounts.services import create_city
    from accounts.sessions import start_session

    if not City.objects(code=city).first():
        create_city(city, city, "Province", "Asia/Shanghai")
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


def credit(people: list[tuple[str, str]], points: int) -> None:
    """Give each owner `points` in one consistent earn (entry, lot, account), written at
    once rather than through thousands of transactions."""
    from bson import ObjectId

    from app.clock import utcnow
    from loyalty import ledger, points_account
    from loyalty.models import LedgerEntry, Lot, PointsAccount

    now = utcnow()
    accounts, lots, entries = [], [], []
    for owner_id, _ in people:
        account_id, entry_id, lot_id = ObjectId(owner_id), ObjectId(), ObjectId()
        expires_at = ledger.add_months(now, ledger.LOT_LIFETIME_MONTHS)
        accounts.append(
            {
                "_id": account_id,
                "balance": points,
                "lifetime_earned": points,
                "redeemed": {},
                "spend_from": expires_at,
                "spend_lots": [{"_id": lot_id, "remaining": points, "expires_at": expires_at}],
                **points_account.tier_figure(points, now, now),
                **points_account.expiring_figure([(expires_at, points)], now),
                "created_at": now,
                "updated_at": now,
            }
        )
        lots.append(
            {
                "_id": lot_id,
                "account_id": account_id,
                "entry_id": entry_id,
                "amount": points,
                "remaining": points,
                "expired": 0,
                "expires_at": expires_at,
                "created_at": now,
            }
        )
        entries.append(
            {
                "_id": entry_id,
                "account_id": account_id,
                "kind": "earn",
                "amount": points,
                "balance_after": points,
                "reason": "bench",
                "source": {"rule": "bench"},
                "idempotency_key": f"bench:{account_id}",
                "expires_at": expires_at,
                "created_at": now,
            }
        )
    PointsAccount._get_collection().insert_many(accounts)
    Lot._get_collection().insert_many(lots)
    LedgerEntry._get_collection().insert_many(entries)


def raw_transaction(work: Callable[..., object]) -> None:
    """`work(session)` in one transaction with the guarantees the service asks for
    (snapshot reads, majority commit), as pymongo alone runs it."""
    from pymongo.read_concern import ReadConcern
    from pymongo.write_concern import WriteConcern

    from app.db import client

    with client().start_session() as session:
        session.with_transaction(
            work, read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
        )


def lean_outbox_event(session, subject_type: str, subject_id, payload: dict) -> None:
    """The `{subject_type}.created` outbox event a lean transaction records in `session`, as
    the service records its domain event."""
    from bson import ObjectId

    from app.clock import utcnow
    from app.db import database

    database().outbox.insert_one(
        {
            "_id": str(ObjectId()),
            "type": f"{subject_type}.created",
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "payload": payload,
            "occurred_at": utcnow(),
        },
        session=session,
    )


def post_retrying(
    http: requests.Session, url: str, headers: dict[str, str], retries: int = 3, **kwargs: Any
) -> tuple[requests.Response, int]:
    """POST as the API guide tells clients to: a 503 (past the request's database budget,
    or overloaded) is sent again with the same headers, its key included, after
    Retry-After. The last answer, and how many times it was sent again."""
    for attempt in range(retries + 1):
        answer = http.post(url, headers=headers, timeout=120, **kwargs)
        if answer.status_code != 503 or attempt == retries:
            return answer, attempt
        time.sleep(float(answer.headers.get("Retry-After", 1)))
    raise AssertionError("unreachable")


@contextmanager
def workers(environ: dict[str, str] | None = None, threads: int = 4) -> Iterator[None]:
    """A Dramatiq worker process and the outbox dispatcher on the run's servers, as the
    README runs them, stopped on exit."""
    from app.embedded import stop_processes

    env = {**os.environ, "LOG_LEVEL": "WARNING", **(environ or {})}
    commands = [
        [
            str(Path(sys.executable).parent / "dramatiq"),
            "workers.main",
            "--processes",
            "1",
            "--threads",
            str(threads),
        ],
        [sys.executable, "-m", "workers.dispatcher"],
    ]
    started = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for command in commands
    ]
    try:
        yield
    finally:
        stop_processes(started, 20)
