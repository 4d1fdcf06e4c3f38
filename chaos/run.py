"""`make chaos`: faults under load, checked afterwards.

Runs the whole system as `make run` does (app/launcher.py's process commands: the API under
gunicorn, a Dramatiq worker, the outbox dispatcher, the scheduler; SecantusDB and Redis on
ports and data directories of the run's own, all on 127.0.0.1) and, for DURATION seconds:

- a workload of owners registering for events and cancelling, leaders checking owners in
  (earning points), owners redeeming rewards and cancelling redemptions, owners posting in
  their club and an ambassador hiding, removing and restoring posts, over HTTP, that
  writes every attempt and its answer to a history file (JSON lines);
- a fault loop that, FAULTS times at random moments, SIGKILLs one of the worker, the
  dispatcher, the scheduler, Redis or the database server, and starts it again on the same
  port and data directory (a process that exits by itself meanwhile is restarted too).

Then it lets the workers drain (every domain event handled, with a deadline) and runs the
checker (chaos/check.py) on the history and the database. The last line reads
`chaos: <N> operations acknowledged, <F> faults injected, <V> violations`; the exit code
is 1 on any violation.

`python -m chaos.run [--faults 60] [--duration 180] [--seed S] [--keep DIR]`
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.embedded import (  # noqa: E402
    EmbeddedServer,
    die_with_parent,
    free_port,
    start_mongo,
    start_redis,
    stop_processes,
)
from app.launcher import process_specs  # noqa: E402

PROCESSES = ("worker", "dispatcher", "scheduler")
FAULT_TARGETS = (*PROCESSES, "redis", "mongodb")
THREADS = 6
OWNERS_PER_THREAD = 8
EVENTS = 10
CAPACITY = 6
REWARDS = 3
STOCK = 60
SEED_POINTS = 1500
# An answer later than this counts as none (the request may still have been applied).
CLIENT_TIMEOUT = 20
DRAIN_DEADLINE = 240


class System:
    """The servers and processes of the run, each started again after it is killed."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.mongo_port, self.redis_port, self.api_port = free_port(), free_port(), free_port()
        self.servers: dict[str, EmbeddedServer] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.restarts_after_exit: list[str] = []
        self.lock = threading.Lock()
        self.environ: dict[str, str] = {}
        self.specs: dict[str, list[str]] = {}
        self.fault_log = (self.logs / "faults.log").open("a", buffering=1)

    def start_servers(self) -> None:
        self.start_server("mongodb")
        self.start_server("redis")
        self.environ = {
            **os.environ,
            "ENVIRONMENT": "development",
            "MONGODB_URI": self.servers["mongodb"].uri,
            "REDIS_URL": self.servers["redis"].uri,
            "RATELIMIT_ENABLED": "false",
            "JWT_ACCESS_TTL_SECONDS": "7200",
            # A killed worker's unacked messages come back after this.
            "DRAMATIQ_HEARTBEAT_TIMEOUT_MS": "5000",
            # A killed dispatcher's successor leads within 6 s rather than 30: the run
            # drains sooner, and the lead changes hands more often under its faults.
            "DISPATCHER_LEASE_SECONDS": "6",
            "LOG_LEVEL": "WARNING",
            "PUSH_PROVIDER": "log",
        }
        os.environ.update(self.environ)
        settings = {
            "PORT": self.api_port,
            "WEB_CONCURRENCY": 2,
            "WEB_THREADS": 8,
            "WORKER_PROCESSES": 1,
            "WORKER_THREADS": 4,
        }
        self.specs = process_specs(settings, self.data_dir)

    def start_server(self, name: str) -> None:
        if name == "mongodb":
            self.servers[name] = start_mongo(
                self.data_dir / "mongodb",
                "chaos",
                port=self.mongo_port,
                log_file=self.logs / "mongodb.log",
                # Without it the server loses the last acknowledged commits to a kill -9
                # (app/embedded.py): that would be the server's loss, not the service's.
                sync_on_commit=True,
            )
        else:
            # As for the database: a lost queued message would be Redis's loss at its
            # default durability, not the service's.
            self.servers[name] = start_redis(
                self.data_dir / "redis", port=self.redis_port, sync_on_write=True
            )

    def start_process(self, name: str) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.processes[name] = subprocess.Popen(
            self.specs[name],
            cwd=ROOT,
            env=self.environ,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            # A process group of its own, so SIGKILL reaches what Dramatiq forks too.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash of the host would, and start it again on the same port and
        data directory after a short pause."""
        with self.lock:
            if name in self.servers:
                self.servers[name].kill()
            else:
                process = self.processes[name]
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            time.sleep(random.uniform(0.1, 1.5))
            if name in self.servers:
                self.start_server(name)
            else:
                self.start_process(name)

    def restart_exited(self) -> None:
        """A process that died on its own (a server it needs was gone) is started again,
        as a supervisor would; counted, since it is worth knowing."""
        with self.lock:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    self.restarts_after_exit.append(f"{name} (exit {process.returncode})")
                    self.start_process(name)

    def stop(self) -> None:
        stop_processes(self.processes.values())
        for server in reversed(list(self.servers.values())):
            server.stop()


def wait_for_api(base_url: str, api: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise SystemExit("chaos: the API exited at start-up")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit("chaos: the API did not become ready")


def seed() -> dict[str, Any]:
    """The city, its leader, an admin, owners with points and live sessions, published
    events whose check-in is open, rewards with stock. Needs an app context."""
    from bson import ObjectId

    from accounts import roles, services, sessions
    from accounts.models import City
    from app.auth import load_caller
    from app.clock import utcnow
    from bench.support import owners
    from community.clubs import create_club, join
    from community.models import CITY_CLUB
    from events.models import PUBLISHED, Event
    from loyalty.adjustments import adjust
    from loyalty.models import Reward

    if not City.objects(code="SZ").first():
        services.create_city("SZ", "Shenzhen", "Guangdong", "Asia/Shanghai")
    staff = {}
    for role in ("admin", services.CIRCLE_LEADER, services.AMBASSADOR):
        user = services.register(
            email=f"{role}@chaos.example.com",
            password="password-123",
            display_name=role,
            city_code="SZ",
        )
        roles.add_role_grant(user.pk, role, ["SZ"])
        staff[role] = {
            "id": str(user.pk),
            "token": sessions.start_session(user.pk, "chaos")["access_token"],
        }
    admin = load_caller(ObjectId(staff["admin"]["id"]))
    club = create_club(
        load_caller(ObjectId(staff[services.CIRCLE_LEADER]["id"])),
        name="Chaos owners",
        kind=CITY_CLUB,
        city_code="SZ",
    )
    members = owners(THREADS * OWNERS_PER_THREAD)
    for user_id, _ in members:
        adjust(admin, user_id, SEED_POINTS, "chaos seed")
        join(load_caller(ObjectId(user_id)), str(club.pk))
    starts_at = utcnow() + timedelta(hours=1)
    events = [
        str(
            Event(
                city_code="SZ",
                organizer_id=ObjectId(staff[services.CIRCLE_LEADER]["id"]),
                title=f"Chaos {number}",
                venue="Loopback",
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=2),
                registration_closes_at=starts_at,
                capacity=CAPACITY,
                seats_left=CAPACITY,
                status=PUBLISHED,
            )
            .save()
            .pk
        )
        for number in range(EVENTS)
    ]
    rewards = [
        str(
            Reward(title=f"Chaos reward {number}", cost=100, stock=STOCK, fulfillment="digital")
            .save()
            .pk
        )
        for number in range(REWARDS)
    ]
    return {
        "admin": staff["admin"],
        "leader": staff[services.CIRCLE_LEADER],
        "ambassador": staff[services.AMBASSADOR],
        "club": str(club.pk),
        "owners": [{"id": user_id, "token": token} for user_id, token in members],
        "events": events,
        "rewards": rewards,
        "stock": STOCK,
        "capacity": CAPACITY,
    }


class History:
    """Every attempt and its answer, one JSON line each, written as they end."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w")
        self.lock = threading.Lock()
        self.sequence = itertools.count()

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            entry["seq"] = next(self.sequence)
            self.file.write(json.dumps(entry) + "\n")
            self.file.flush()


def workload(
    base_url: str,
    world: dict[str, Any],
    mine: list[dict[str, str]],
    history: History,
    stop: threading.Event,
    rng: random.Random,
) -> None:
    """One client thread: the owners in `mine` act only here, so each owner's operations
    are sequential and the history orders them."""
    http = requests.Session()
    redemptions: list[tuple[dict[str, str], str]] = []
    posts: list[str] = []

    def call(op: str, method: str, path: str, token: str, **details: Any) -> Any:
        body = details.pop("json", None)
        headers = {"Authorization": f"Bearer {token}"}
        if method == "POST" and op in {"register", "redeem", "post"}:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        started = time.time()
        try:
            response = http.request(
                method, base_url + path, json=body, headers=headers, timeout=CLIENT_TIMEOUT
            )
            status = response.status_code
            answer = response.json() if response.content else None
        except (requests.RequestException, ValueError) as exc:
            status, answer = 0, {"exception": type(exc).__name__}
        history.record(
            {
                "op": op,
                "status": status,
                "body": answer,
                "started": started,
                "ended": time.time(),
                **details,
            }
        )
        return answer if 200 <= status < 300 else None

    while not stop.is_set():
        owner = rng.choice(mine)
        event = rng.choice(world["events"])
        roll = rng.random()
        # Check-ins are rarer than registrations: an attended place stays taken, and the
        # events' seats would soon all be.
        if roll < 0.32:
            call(
                "register",
                "POST",
                f"/api/v1/events/{event}/registrations",
                owner["token"],
                owner=owner["id"],
                event=event,
            )
        elif roll < 0.46:
            call(
                "cancel_registration",
                "DELETE",
                f"/api/v1/events/{event}/registrations/me",
                owner["token"],
                owner=owner["id"],
                event=event,
            )
        elif roll < 0.52:
            call(
                "check_in",
                "POST",
                f"/api/v1/events/{event}/check-ins",
                world["leader"]["token"],
                json={"user_id": owner["id"]},
                owner=owner["id"],
                event=event,
            )
        elif roll < 0.68 or (roll < 0.78 and not redemptions):
            reward = rng.choice(world["rewards"])
            answer = call(
                "redeem",
                "POST",
                "/api/v1/redemptions",
                owner["token"],
                json={"reward_id": reward, "quantity": 1},
                owner=owner["id"],
                reward=reward,
            )
            if answer:
                redemptions.append((owner, answer["id"]))
        elif roll >= 0.78 and (roll < 0.88 or not posts):
            answer = call(
                "post",
                "POST",
                f"/api/v1/clubs/{world['club']}/posts",
                owner["token"],
                json={"body": f"Chaos post {uuid.uuid4().hex[:8]}"},
                owner=owner["id"],
            )
            if answer:
                posts.append(answer["id"])
        elif roll >= 0.88:
            post = rng.choice(posts)
            call(
                "moderate",
                "POST",
                "/api/v1/moderation/actions",
                world["ambassador"]["token"],
                json={
                    "target_type": "post",
                    "target_id": post,
                    "action": rng.choice(("hide", "restore", "remove")),
                    "reason": "chaos",
                },
                post=post,
            )
        else:
            holder, redemption = redemptions.pop(rng.randrange(len(redemptions)))
            call(
                "cancel_redemption",
                "POST",
                f"/api/v1/redemptions/{redemption}/cancel",
                holder["token"],
                owner=holder["id"],
                redemption=redemption,
            )


def inject_faults(
    system: System, count: int, duration: float, stop: threading.Event, rng: random.Random
) -> list[str]:
    """`count` faults at random moments spread over `duration` seconds."""
    injected: list[str] = []
    moments = sorted(rng.uniform(0, duration) for _ in range(count))
    started = time.monotonic()
    for moment in moments:
        while not stop.is_set() and time.monotonic() - started < moment:
            system.restart_exited()
            stop.wait(0.2)
        if stop.is_set():
            break
        target = rng.choice(FAULT_TARGETS)
        print(f"chaos: {time.strftime('%H:%M:%S')} kill -9 {target}", file=system.fault_log)
        system.kill(target)
        injected.append(target)
    return injected


@contextlib.contextmanager
def running_system(data_dir: Path) -> Iterator[tuple[System, str]]:
    system = System(data_dir)
    try:
        system.start_servers()
        system.start_process("api")
        base_url = f"http://127.0.0.1:{system.api_port}"
        wait_for_api(base_url, system.processes["api"])
        for name in PROCESSES:
            system.start_process(name)
        yield system, base_url
    finally:
        system.stop()


def drain(system: System, deadline_seconds: float) -> list[str]:
    """Wait until every domain event in the outbox has been handled by each of its
    handlers; returns what is still unhandled at the deadline."""
    from chaos.check import unhandled_events

    deadline = time.monotonic() + deadline_seconds
    while True:
        system.restart_exited()
        with contextlib.suppress(Exception):
            missing = unhandled_events()
            if not missing or time.monotonic() > deadline:
                return missing
        if time.monotonic() > deadline:
            return ["the database did not answer while draining"]
        time.sleep(1)


def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=int, default=60)
    parser.add_argument("--duration", type=float, default=180)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep data and logs here")
    options = parser.parse_args(arguments)
    seed_value = options.seed if options.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed_value)

    with contextlib.ExitStack() as stack:
        if options.keep:
            data_dir = options.keep
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-")))
        system, base_url = stack.enter_context(running_system(data_dir))

        from app import create_app
        from app.handlers import load_handler_modules
        from chaos.check import check

        app = create_app({"LOG_LEVEL": "WARNING"})
        stack.enter_context(app.app_context())
        load_handler_modules()
        world = seed()
        history_path = data_dir / "history.jsonl"
        history = History(history_path)
        print(
            f"chaos: seed {seed_value}, {options.faults} faults over {options.duration:.0f} s, "
            f"{THREADS} client threads, data in {data_dir}",
            flush=True,
        )

        stop = threading.Event()
        owners = world["owners"]
        clients = [
            threading.Thread(
                target=workload,
                args=(
                    base_url,
                    world,
                    owners[index::THREADS],
                    history,
                    stop,
                    random.Random(rng.random()),
                ),
                daemon=True,
            )
            for index in range(THREADS)
        ]
        for client in clients:
            client.start()
        injected = inject_faults(system, options.faults, options.duration, stop, rng)
        stop.set()
        for client in clients:
            client.join(CLIENT_TIMEOUT + 5)
        history.file.close()

        unhandled = drain(system, DRAIN_DEADLINE)
        entries = [json.loads(line) for line in history_path.read_text().splitlines()]
        violations = [f"unhandled domain event: {item}" for item in unhandled[:20]]
        if not unhandled:
            violations += check(entries, world)
        acknowledged = sum(200 <= entry["status"] < 300 for entry in entries)
        statuses: dict[str, int] = {}
        for entry in entries:
            key = f"{entry['op']} {entry['status']}"
            statuses[key] = statuses.get(key, 0) + 1
        print(f"chaos: answers {json.dumps(dict(sorted(statuses.items())))}")
        print(f"chaos: faults {json.dumps({t: injected.count(t) for t in FAULT_TARGETS})}")
        if system.restarts_after_exit:
            print(f"chaos: exited by themselves and restarted: {system.restarts_after_exit}")
        for violation in violations[:50]:
            print(f"chaos: VIOLATION {violation}")
        print(
            f"chaos: {acknowledged} operations acknowledged, {len(injected)} faults injected, "
            f"{len(violations)} violations",
            flush=True,
        )
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
