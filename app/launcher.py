"""`make run`: the whole system in one terminal.

Starts the embedded SecantusDB and Redis when MONGODB_URI / REDIS_URL are unset (data under
./var, kept across restarts), then the API under gunicorn, a Dramatiq worker, the outbox
dispatcher and the scheduler, all pointed at those one-process servers. Every child runs in
a session of its own, so Ctrl-C reaches the launcher alone, which then stops them: the API,
the workers, the dispatcher and the scheduler side by side, and the servers once they all
ended, so that each process still has its databases while it stops (the dispatcher hands its
lease back). Each child also dies with the launcher if the launcher is killed outright.

`python -m app.launcher flask ARGS` (`make flask ARGS='...'`) runs a Flask CLI command
against the servers of a running launcher.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import NoReturn, TextIO

from app.config import ConfigError, Setting, load
from app.embedded import (
    EmbeddedServer,
    die_with_parent,
    start_mongo,
    start_redis,
    stop_processes,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Under DATA_DIR while `make run` runs: the addresses of the embedded servers it started,
# for `make flask` in another terminal.
SERVERS_FILE = "servers.json"
# Under DATA_DIR: locked by the launcher that runs on it, and naming its pid.
LOCK_FILE = "launcher.pid"


# Read by `make run` only, not by the processes it starts: how many of each process it
# starts, and where.
LAUNCHER_SETTINGS: tuple[Setting, ...] = (
    Setting("PORT", "PORT", int, 8000, "Port of the API on 127.0.0.1 (`make run`)."),
    Setting("WEB_CONCURRENCY", "WEB_CONCURRENCY", int, 2, "gunicorn worker processes."),
    Setting("WEB_THREADS", "WEB_THREADS", int, 4, "Threads per gunicorn worker."),
    Setting("WORKER_PROCESSES", "WORKER_PROCESSES", int, 1, "Dramatiq worker processes."),
    Setting("WORKER_THREADS", "WORKER_THREADS", int, 4, "Threads per Dramatiq process."),
    Setting(
        "DATA_DIR",
        "DATA_DIR",
        str,
        "var",
        "Where the embedded servers keep their data across restarts.",
    ),
    Setting(
        "EMBEDDED_MONGODB_PORT",
        "EMBEDDED_MONGODB_PORT",
        int,
        27018,
        "Port of the embedded SecantusDB when MONGODB_URI is unset.",
    ),
    Setting(
        "EMBEDDED_REDIS_PORT",
        "EMBEDDED_REDIS_PORT",
        int,
        6380,
        "Port of the embedded Redis when REDIS_URL is unset.",
    ),
)


# gunicorn answers a request line or header over its limits itself, with an HTML page; its
# limits are raised so that the API's JSON 414 and 431 (app/errors.py) answer instead.
# README's production command carries the same flags.
GUNICORN_LIMITS = ("--limit-request-line", "0", "--limit-request-field_size", "32768")


def process_specs(settings: dict, data_dir: Path) -> dict[str, list[str]]:
    """The commands, by name."""
    return {
        "api": [
            str(BIN / "gunicorn"),
            "wsgi:app",
            "--bind",
            f"127.0.0.1:{settings['PORT']}",
            *GUNICORN_LIMITS,
            # Its own control socket: two launchers on one machine would otherwise share
            # ~/.gunicorn/gunicorn.ctl, each taking it from the other.
            "--control-socket",
            str(data_dir / "gunicorn.ctl"),
            "--workers",
            str(settings["WEB_CONCURRENCY"]),
            "--worker-class",
            "gthread",
            "--threads",
            str(settings["WEB_THREADS"]),
            "--graceful-timeout",
            "10",
            "--access-logfile",
            "-",
        ],
        "worker": [
            str(BIN / "dramatiq"),
            "workers.main",
            "--processes",
            str(settings["WORKER_PROCESSES"]),
            "--threads",
            str(settings["WORKER_THREADS"]),
        ],
        "dispatcher": [sys.executable, "-m", "workers.dispatcher"],
        "scheduler": [sys.executable, "-m", "workers.scheduler"],
    }


def start_servers(
    environ: dict[str, str], settings: dict, data_dir: Path
) -> dict[str, EmbeddedServer]:
    """The embedded servers started, by the variable that points at them."""
    servers = {}
    if not environ.get("MONGODB_URI"):
        servers["MONGODB_URI"] = start_mongo(
            data_dir / "mongodb",
            "community",
            port=settings["EMBEDDED_MONGODB_PORT"],
            log_file=data_dir / "mongodb.log",
        )
    if not environ.get("REDIS_URL"):
        servers["REDIS_URL"] = start_redis(data_dir / "redis", port=settings["EMBEDDED_REDIS_PORT"])
    for variable, server in servers.items():
        environ[variable] = server.uri
        print(f"launcher: embedded {server.name} at {server.uri}", flush=True)
    return servers


def stop_in_order(children: dict[str, subprocess.Popen], servers: list[EmbeddedServer]) -> None:
    """Stop the processes side by side (none waits on another to wind down), then the
    servers they use, last."""
    running = [name for name, child in children.items() if child.poll() is None]
    if running:
        print(f"launcher: stopping {', '.join(running)}", flush=True)
    stop_processes(children.values())
    for server in reversed(servers):
        print(f"launcher: stopping {server.name}", flush=True)
        server.stop()


def development(environ: dict[str, str]) -> dict[str, str]:
    # Everything listens on 127.0.0.1: the public development SECRET_KEY will do, unless
    # the shell names an environment of its own.
    return {**environ, "ENVIRONMENT": environ.get("ENVIRONMENT") or "development"}


def launcher_settings() -> tuple[dict, Path]:
    try:
        settings = load(os.environ, LAUNCHER_SETTINGS)
    except ConfigError as exc:
        sys.exit(f"launcher: {exc}")
    return settings, ROOT / settings["DATA_DIR"]


def flask_command(arguments: list[str]) -> NoReturn:
    """`make flask ARGS='...'`: `flask --app wsgi ...` against the servers of the running
    `make run` that keeps its data in the same DATA_DIR."""
    _, data_dir = launcher_settings()
    environ = dict(os.environ)
    try:
        environ.update(json.loads((data_dir / SERVERS_FILE).read_text()))
    except FileNotFoundError:
        if not (environ.get("MONGODB_URI") and environ.get("REDIS_URL")):
            sys.exit(f"launcher: no `make run` is running with DATA_DIR={data_dir}")
    flask = str(BIN / "flask")
    os.execve(flask, [flask, "--app", "wsgi", *arguments], development(environ))


def hold_data_dir(data_dir: Path) -> TextIO:
    """Take DATA_DIR for this launcher, or exit naming the launcher that holds it, having
    touched nothing: a second launcher would delete the first's servers.json, wipe its
    metrics and start workers against its databases. The lock is the kernel's (flock), so a
    launcher killed outright releases it; its children do not inherit it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the launcher's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        sys.exit(
            f"launcher: another `make run` (pid {holder}) is running with DATA_DIR={data_dir};"
            " stop it first, or give this one a DATA_DIR of its own"
        )
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def main(arguments: list[str]) -> int:
    if arguments[:1] == ["flask"]:
        flask_command(arguments[1:])
    settings, data_dir = launcher_settings()
    _held = hold_data_dir(data_dir)  # locked while this process lives
    environ = development(dict(os.environ))
    metrics_dir = data_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    servers = start_servers(environ, settings, data_dir)
    servers_file = data_dir / SERVERS_FILE
    servers_file.write_text(json.dumps({name: server.uri for name, server in servers.items()}))
    children: dict[str, subprocess.Popen] = {}
    exit_code = 0
    try:
        port = settings["PORT"]
        for name, command in process_specs(settings, data_dir).items():
            children[name] = subprocess.Popen(
                command, cwd=ROOT, env=environ, start_new_session=True, preexec_fn=die_with_parent
            )
        print(
            f"launcher: API on http://127.0.0.1:{port}/api/v1/docs (Ctrl-C stops all)", flush=True
        )
        while not stop.wait(0.5):
            exited = {
                name: child.returncode
                for name, child in children.items()
                if child.poll() is not None
            }
            if exited:
                print(f"launcher: {exited} exited; stopping everything", flush=True)
                exit_code = 1
                break
    finally:
        servers_file.unlink(missing_ok=True)
        stop_in_order(children, list(servers.values()))
        print("launcher: stopped", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
