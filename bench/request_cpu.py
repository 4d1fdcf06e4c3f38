"""Benchmark: the CPU one hot request costs, beside the floor of the same work done leanly.

Each hot request goes through the API on gunicorn as the README runs it (4 workers x 4
gthread threads, on loopback, CLIENTS concurrent clients, keep-alive sessions):
registration (`POST /events/{id}/registrations` with an Idempotency-Key, spread over EVENTS
events), redemption (`POST /redemptions` with a key, over EVENTS rewards), `GET /me`,
`GET /me/points`, `GET /events`, `GET /feed` (an owner in 20 clubs with 2,000 posts). Beside
them, in the same run and the same way, the floor (bench/floor.py, a bare Flask app under
the same gunicorn): "hello", one `find_one`, a JWT decode and its `find_one`, and the same
logical work of a registration and a redemption (the token, the caller's read, the lean
pymongo transaction of bench/registration.py and bench/ledger.py). And the lean
transactions alone from this process's threads, as the throughput baseline.

The CPU of each side's processes is read from /proc around each burst: the API's gunicorn
(master and workers), the database server (when embedded), this client process, and, with
`--system`, the Dramatiq worker, outbox dispatcher and scheduler that `make run` runs
beside the API. Each of ROUNDS rounds runs one burst of each kind, each target's two sides
back to back, in an order reversed every other round; the figures are medians of the
rounds. Printed per request: API, database, client (and followers') CPU in ms, and
requests/s; then the ratios the issue sets as targets:
- each write's API CPU against its same-work floor (target at most 1.15x);
- each read's against the JWT + `find_one` floor times its MongoDB commands (counted here
  by command monitoring, one request in-process; target at most 1.3x);
- registration and redemption throughput against the lean transaction's (target 0.7x);
each with the range of its ratio over the rounds (a round measures both sides back to
back), which shows how far the machine's load moved it during the run.

`--profile SCENARIO` samples the API's workers with py-spy during one more burst of that
scenario and prints where their time goes by package (the raw stacks stay in a file for a
flame graph). Starts an embedded SecantusDB and Redis when MONGODB_URI / REDIS_URL are
unset. The machine's load average is printed: a shared machine skews every figure.

`python bench/request_cpu.py [--requests 500] [--rounds 3] [--system] [--profile register]`
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import api_server, burst, load, owners, servers  # noqa: E402

CLIENTS = 8
EVENTS = 64  # registrations and redemptions spread over as many events and rewards
OWNERS = 400  # owner j % OWNERS registers for event j % EVENTS: no pair twice in 1,600
MY_CLUBS = 20
MY_POSTS = 2_000
WRITE_TARGET, READ_TARGET, THROUGHPUT_TARGET = 1.15, 1.3, 0.7
# The order of a round's bursts: each target's sides next to each other (a write, its floor
# and its lean transaction; the reads around JWT + find_one), since this machine's load
# moves the CPU a burst costs by a third within minutes.
BACK_TO_BACK = (
    "register",
    "register floor",
    "lean registration",
    "redeem",
    "redeem floor",
    "lean redemption",
    "GET /me",
    "GET /me/points",
    "jwt+find_one",
    "GET /events",
    "GET /feed",
    "hello",
    "find_one",
)
_TICKS = os.sysconf("SC_CLK_TCK")


# --- CPU from /proc ---------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: fields are counted after its ')'.
    return text[text.rindex(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_seconds(roots: list[int]) -> float:
    """User and system CPU of `roots` and their descendants (threads included)."""
    total = 0
    for root in roots:
        for pid in descendants(root):
            if (fields := _stat(pid)) is not None:
                total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def gunicorn_of(base_url: str) -> int:
    """The pid of the gunicorn master this process started for `base_url`."""
    bind = base_url.removeprefix("http://")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if bind.encode() in argv and (_stat(int(entry.name)) or [0, 0])[1] == str(os.getpid()):
                return int(entry.name)
    raise SystemExit(f"bench: no gunicorn found for {base_url}")


@dataclass
class Sample:
    """One burst: CPU per request (ms) of each side, and requests per second."""

    api: float
    database: float
    client: float
    followers: float
    rate: float


@dataclass
class Meter:
    """The processes whose CPU a burst is charged with."""

    database: list[int]
    followers: list[int]

    def measure(self, api: list[int], count: int, attempt: Callable[[int], None]) -> Sample:
        before = (cpu_seconds(api), cpu_seconds(self.database), own_cpu_seconds())
        followers_before = cpu_seconds(self.followers)
        timed = burst(count, CLIENTS, attempt)
        after = (cpu_seconds(api), cpu_seconds(self.database), own_cpu_seconds())
        followers = cpu_seconds(self.followers) - followers_before
        api_s, db_s, client_s = (b - a for a, b in zip(before, after, strict=True))
        per = 1000 / count
        return Sample(api_s * per, db_s * per, client_s * per, followers * per, timed.rate)


# --- the data and the requests ----------------------------------------------------------


@dataclass
class World:
    people: list[tuple[str, str]]
    rewards: list[Any]
    commands: dict[str, int]


def _session() -> Any:
    import requests

    local = _local.__dict__
    local.setdefault("session", requests.Session())
    return local["session"]


_local = threading.local()


def _call(method: str, url: str, token: str, expect: int, **kwargs: Any) -> None:
    response = _session().request(
        method,
        url,
        headers={"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})},
        timeout=120,
        **kwargs,
    )
    if response.status_code != expect:
        raise SystemExit(f"bench: {method} {url} answered {response.status_code}: {response.text}")


def _events(count: int) -> list[Any]:
    from bench.registration import _event

    return [_event(10**6).pk for _ in range(count)]


def api_requests(base: str, world: World, run: str) -> dict[str, Callable[[int], None]]:
    """The hot requests through the API; `run` keeps keys and events fresh per burst."""
    api = f"{base}/api/v1"
    people, rewards = world.people, world.rewards
    events = _events(EVENTS)

    def token(j: int) -> str:
        return people[j % OWNERS][1]

    return {
        "register": lambda j: _call(
            "POST",
            f"{api}/events/{events[j % EVENTS]}/registrations",
            token(j),
            201,
            headers={"Idempotency-Key": f"{run}-{j}"},
        ),
        "redeem": lambda j: _call(
            "POST",
            f"{api}/redemptions",
            token(j),
            201,
            json={"reward_id": str(rewards[j % EVENTS])},
            headers={"Idempotency-Key": f"{run}-{j}"},
        ),
        "GET /me": lambda j: _call("GET", f"{api}/me", token(j), 200),
        "GET /me/points": lambda j: _call("GET", f"{api}/me/points", token(j), 200),
        "GET /events": lambda j: _call("GET", f"{api}/events", token(j), 200),
        "GET /feed": lambda j: _call("GET", f"{api}/feed", token(j), 200),
    }


def floor_requests(base: str, world: World) -> dict[str, Callable[[int], None]]:
    people, rewards = world.people, world.rewards
    events = _events(EVENTS)

    def token(j: int) -> str:
        return people[j % OWNERS][1]

    return {
        "hello": lambda j: _call("GET", f"{base}/hello", "", 200),
        "find_one": lambda j: _call(
            "GET", f"{base}/find-one?user={people[j % OWNERS][0]}", "", 200
        ),
        "jwt+find_one": lambda j: _call("GET", f"{base}/jwt-find-one", token(j), 200),
        "register floor": lambda j: _call(
            "POST", f"{base}/register/{events[j % EVENTS]}", token(j), 201
        ),
        "redeem floor": lambda j: _call(
            "POST", f"{base}/redeem/{rewards[j % EVENTS]}", token(j), 201
        ),
    }


def lean_transactions(world: World) -> dict[str, Callable[[int], None]]:
    """The bare transactions from this process: the throughput baseline."""
    from bson import ObjectId

    from bench.ledger import _lean_redeem
    from bench.registration import lean_registration

    events = _events(EVENTS)
    people = [ObjectId(owner_id) for owner_id, _ in world.people]
    return {
        "lean registration": lambda j: lean_registration(events[j % EVENTS], people[j % OWNERS]),
        "lean redemption": lambda j: _lean_redeem(people[j % OWNERS], world.rewards[j % EVENTS], 1),
    }


def prepare(app: Any) -> World:
    """Owners with points, in 20 clubs of 2,000 posts; rewards; the commands per request."""
    from bench import community
    from bench.ledger import _reward
    from bench.support import credit

    people = owners(OWNERS)
    credit(people, 10**6)
    clubs = community._clubs()[:MY_CLUBS]
    for owner_id, _ in people:
        community._join(owner_id, clubs)
    community._add_posts(clubs, MY_POSTS, (0, 365), seed=1)
    importlib.import_module("migrations.2026_12_03_club_post_days").migrate()
    rewards = [_reward(10**6) for _ in range(EVENTS)]
    world = World(people, rewards, {})
    world.commands = count_commands(app, world)
    return world


def count_commands(app: Any, world: World) -> dict[str, int]:
    """The MongoDB commands of one request of each kind, in-process (command monitoring),
    after one of the same kind (a first request may refresh cached figures)."""
    from tests.support import count_commands as counting

    client, (_, token) = app.test_client(), world.people[0]
    auth = {"Authorization": f"Bearer {token}"}
    events = _events(2)

    def register(key: str) -> Any:
        return client.post(
            f"/api/v1/events/{events.pop()}/registrations",
            headers={**auth, "Idempotency-Key": key},
        )

    def redeem(key: str) -> Any:
        return client.post(
            "/api/v1/redemptions",
            json={"reward_id": str(world.rewards[0])},
            headers={**auth, "Idempotency-Key": key},
        )

    def read(path: str) -> Callable[[str], Any]:
        return lambda key: client.get(f"/api/v1{path}", headers=auth)

    calls = {
        "register": register,
        "redeem": redeem,
        **{f"GET {path}": read(path) for path in ("/me", "/me/points", "/events", "/feed")},
    }
    counted = {}
    for name, call in calls.items():
        call("count-first")
        with counting() as commands:
            response = call("count")
        assert response.status_code in (200, 201), (name, response.status_code)
        counted[name] = len(commands)
    return counted


# --- the profile ------------------------------------------------------------------------


@contextlib.contextmanager
def profiled(master: int, scenario: str) -> Iterator[None]:
    """py-spy sampling the API's workers while the block runs; prints the share of samples
    by package (each sample charged to its innermost frame outside the standard library)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("bench: --profile needs py-spy (pip install py-spy)")
    output = (
        Path(tempfile.gettempdir())
        / f"request_cpu-{scenario.replace(' ', '_').replace('/', '_')}.txt"
    )
    process = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(master),
            "--subprocesses",
            "--nonblocking",
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    print(f"\nprofile of {scenario!r} (py-spy, API workers; raw stacks in {output}):")
    packages, ours = _shares(output.read_text() if output.exists() else "")
    total = sum(packages.values()) or 1
    print("  by package (a sample charged to its innermost frame outside the standard library):")
    for package, samples in packages.most_common(14):
        print(f"    {package:<24} {100 * samples / total:5.1f} %")
    print("  by the project's function that called out (the innermost frame of ours):")
    for function, samples in ours.most_common(16):
        print(f"    {function:<60} {100 * samples / total:5.1f} %")


_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?):\d+\)$")


def _package(file: str) -> str | None:
    """The top-level package of a frame's file (py-spy names it from its import root);
    None for the standard library."""
    top = file.split("/", 1)[0].removesuffix(".py")
    if top in sys.stdlib_module_names:
        return None
    return f"ours: {top}" if (ROOT / top).exists() or (ROOT / f"{top}.py").exists() else top


def _shares(raw: str) -> tuple[Counter, Counter]:
    packages: Counter = Counter()
    ours: Counter = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        owner, caller = "standard library", "(none)"
        for frame in reversed(stack.split(";")):
            match = _FRAME.match(frame)
            package = _package(match["file"]) if match else None
            if package is None:
                continue
            if owner == "standard library":
                owner = package
            if package.startswith("ours: ") and match:
                caller = f"{match['function']} ({match['file']})"
                break
        packages[owner] += int(count)
        ours[caller] += int(count)
    return packages, ours


# --- the run ----------------------------------------------------------------------------


@contextlib.contextmanager
def followers(enabled: bool) -> Iterator[list[int]]:
    """With `--system`: the Dramatiq worker, the outbox dispatcher and the scheduler, as
    `make run` starts them beside the API; yields their pids."""
    if not enabled:
        yield []
        return
    from app.embedded import stop_processes
    from app.launcher import process_specs

    settings = {
        "WORKER_PROCESSES": 1,
        "WORKER_THREADS": 4,
        "PORT": 0,
        "WEB_CONCURRENCY": 1,
        "WEB_THREADS": 1,
    }
    specs = process_specs(settings, Path(tempfile.gettempdir()))
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    started = [
        subprocess.Popen(
            specs[name], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for name in ("worker", "dispatcher", "scheduler")
    ]
    try:
        yield [process.pid for process in started]
    finally:
        stop_processes(started, 20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="per burst")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--system", action="store_true", help="workers beside the API")
    parser.add_argument("--profile", metavar="SCENARIO", help="register, redeem, GET /me, ...")
    options = parser.parse_args()
    # Before any client exists, so that command monitoring sees the app's client.
    from pymongo import monitoring

    from tests.support import COMMAND_LOG

    monitoring.register(COMMAND_LOG)
    before = load()
    samples: dict[str, list[Sample]] = {}
    with (
        servers("bench-request-cpu-") as started,
        api_server() as api_url,
        api_server(application="bench.floor:app") as floor_url,
    ):
        from app import create_app

        app = create_app({"LOG_LEVEL": "WARNING", "RATELIMIT_ENABLED": False})
        database = [server.process.pid for server in started if server.name == "secantusdb"]
        with app.app_context(), followers(options.system) as following:
            world = prepare(app)
            meter = Meter(database, following)
            api_master, floor_master = gunicorn_of(api_url), gunicorn_of(floor_url)

            def sides(run: str) -> list[tuple[list[int], dict[str, Callable[[int], None]]]]:
                """Each side's processes (charged as "API") and its requests."""
                return [
                    ([api_master], api_requests(api_url, world, run)),
                    ([floor_master], floor_requests(floor_url, world)),
                    ([], lean_transactions(world)),
                ]

            for _, attempts in sides("warm-up"):  # every pool connected, code paths loaded
                for attempt in attempts.values():
                    burst(100, CLIENTS, attempt)
            for round_ in range(options.rounds):
                bursts = sorted(
                    (
                        (processes, name, attempt)
                        for processes, attempts in sides(f"r{round_}")
                        for name, attempt in attempts.items()
                    ),
                    key=lambda burst: BACK_TO_BACK.index(burst[1]),
                )
                # Reversed every other round, so that a drift of the load weighs on both
                # sides of a target alike.
                for processes, name, attempt in bursts[:: 1 if round_ % 2 else -1]:
                    samples.setdefault(name, []).append(
                        meter.measure(processes, options.requests, attempt)
                    )
            if options.profile:
                [(_, api), (_, floor), _] = sides("profile")
                master = floor_master if options.profile in floor else api_master
                with profiled(master, options.profile):
                    burst(options.requests, CLIENTS, {**api, **floor}[options.profile])
    report(samples, world.commands, options, before)
    return 0


def median(samples: list[Sample], field: str) -> float:
    return statistics.median(getattr(sample, field) for sample in samples)


def report(
    samples: dict[str, list[Sample]], commands: dict[str, int], options, before: str
) -> None:
    print(
        f"request CPU benchmark: {options.rounds} rounds of {options.requests} requests per "
        f"kind, {CLIENTS} clients, gunicorn 4x4 gthread on loopback"
        f"{', with the worker, dispatcher and scheduler running' if options.system else ''};"
        f" medians of the rounds; {before} before, {load()} after"
    )
    follow = " follow" if options.system else ""
    print(
        f"  {'CPU ms per request':<20} {'API':>6} {'db':>6} {'client':>6}{follow}   req/s  commands"
    )
    for name, runs in samples.items():
        line = (
            f"  {name:<20} {median(runs, 'api'):6.2f} {median(runs, 'database'):6.2f}"
            f" {median(runs, 'client'):6.2f}"
        )
        if options.system:
            line += f" {median(runs, 'followers'):6.2f}"
        line += f" {median(runs, 'rate'):7.1f}"
        if name in commands:
            line += f"  {commands[name]}"
        print(line)
    api = {name: median(runs, "api") for name, runs in samples.items()}
    rate = {name: median(runs, "rate") for name, runs in samples.items()}

    def rounds(name: str, field: str, baseline: str, times: int = 1) -> str:
        """The ratio in each round, its two sides measured back to back: how far the
        machine moved the figure during the run."""
        ratios = [
            getattr(mine, field) / (getattr(theirs, field) * times)
            for mine, theirs in zip(samples[name], samples[baseline], strict=True)
        ]
        return f"(rounds {min(ratios):.2f}-{max(ratios):.2f}x)" if len(ratios) > 1 else ""

    print("  targets (API CPU against the floor of the same work):")
    for write, floor in (("register", "register floor"), ("redeem", "redeem floor")):
        ratio = api[write] / api[floor]
        print(
            f"    {write:<14} {ratio:5.2f}x its same-work floor ({api[floor]:.2f} ms)"
            f"   target <= {WRITE_TARGET}x {'met' if ratio <= WRITE_TARGET else 'NOT met'}"
            f" {rounds(write, 'api', floor)}"
        )
    for read in ("GET /me", "GET /me/points", "GET /events", "GET /feed"):
        floor = api["jwt+find_one"] * commands[read]
        ratio = api[read] / floor
        print(
            f"    {read:<14} {ratio:5.2f}x JWT + find_one x {commands[read]} commands"
            f" ({floor:.2f} ms)   target <= {READ_TARGET}x"
            f" {'met' if ratio <= READ_TARGET else 'NOT met'}"
            f" {rounds(read, 'api', 'jwt+find_one', commands[read])}"
        )
    for write, lean in (("register", "lean registration"), ("redeem", "lean redemption")):
        ratio = rate[write] / rate[lean]
        print(
            f"    {write:<14} {ratio:5.2f}x the lean transaction's throughput"
            f"   target >= {THROUGHPUT_TARGET}x"
            f" {'met' if ratio >= THROUGHPUT_TARGET else 'NOT met'} {rounds(write, 'rate', lean)}"
        )


if __name__ == "__main__":
    sys.exit(main())
