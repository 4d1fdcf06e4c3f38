"""`make run`'s launcher: the whole system up; Ctrl-C or SIGTERM stops every process it
started, the databases last (no orphan, no stale WiredTiger lock, the dispatcher's lease
handed back), and data survives a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pymongo
import pytest
import requests
from gunicorn.ctl.client import ControlClient

from app.embedded import free_port, mongo_uri, start_mongo
from app.launcher import GUNICORN_LIMITS
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def shell(data_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    """A fresh shell's environment: no servers, no secret."""
    unset = {"MONGODB_URI", "REDIS_URL", "SECRET_KEY", "ENVIRONMENT"}
    environ = {key: value for key, value in os.environ.items() if key not in unset}
    environ.update(
        {
            "DATA_DIR": str(data_dir),
            "PORT": str(ports["api"]),
            "EMBEDDED_MONGODB_PORT": str(ports["mongo"]),
            "EMBEDDED_REDIS_PORT": str(ports["redis"]),
            "WEB_CONCURRENCY": "1",
            "LOG_LEVEL": "WARNING",
            # As the `background` fixture's: an idle Dramatiq worker polls Redis every 0.1 s,
            # and stops in a second and a half rather than three and a half.
            "dramatiq_worker_timeout": "100",
        }
    )
    return environ


def launch(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen:
    """The launcher as `make run` starts it from a fresh shell, the leader of its own
    process group as a terminal's foreground job is."""
    launcher = subprocess.Popen(
        [sys.executable, "-m", "app.launcher"],
        cwd=ROOT,
        env=shell(data_dir, ports),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: ready(ports["api"]) or launcher.poll() is not None,
            timeout=90,
            interval=0.25,
            message="the launched API to be ready",
        )
        assert launcher.poll() is None, "the launcher exited while starting"
    except BaseException:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
        raise
    return launcher


def ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def flask(data_dir: Path, ports: dict[str, int], *arguments: str) -> subprocess.CompletedProcess:
    """`make flask ARGS=...` from another fresh shell."""
    return subprocess.run(
        [sys.executable, "-m", "app.launcher", "flask", *arguments],
        cwd=ROOT,
        env=shell(data_dir, ports),
        capture_output=True,
        text=True,
        timeout=120,
    )


def stop(launcher: subprocess.Popen, signum: signal.Signals) -> set[int]:
    """Signal the launcher's process group, as Ctrl-C in its terminal does, and return
    every process it had started."""
    started = descendants(launcher.pid)
    os.killpg(launcher.pid, signum)
    assert launcher.wait(90) == 0
    return started


def ports() -> dict[str, int]:
    return {"api": free_port(), "mongo": free_port(), "redis": free_port()}


@pytest.mark.slow
def test_a_running_launcher_stopped_and_run_again(tmp_path):
    """gunicorn answers JSON past its default limits and has a control socket of its own,
    and `make flask` reaches the servers of the launcher with the same DATA_DIR. Stopped
    (SIGTERM), every process it started ends, the databases last: the dispatcher hands its
    lease back while MongoDB still runs. Run again on the same DATA_DIR (and stopped with
    Ctrl-C's SIGINT), the data is there. One launcher's life, since each start is the whole
    system's."""
    given = ports()
    api = f"http://127.0.0.1:{given['api']}/api/v1"
    absent = flask(tmp_path, given, "init-db")
    assert absent.returncode != 0 and "no `make run` is running" in absent.stderr

    launcher = launch(tmp_path, given)
    try:
        admin = {"email": "a@example.com", "password": "a-long-password"}
        created = flask(tmp_path, given, "create-admin", *(f"--{k}={v}" for k, v in admin.items()))
        assert created.returncode == 0, created.stderr
        assert requests.post(f"{api}/auth/login", json=admin, timeout=5).status_code == 200

        # A second `make run` on the same DATA_DIR refuses at once, naming the first, and
        # touches nothing of it (not its servers.json, not its metrics, not its servers).
        servers_file = (tmp_path / "servers.json").read_text()
        metrics = set((tmp_path / "prometheus").iterdir())
        assert metrics
        second = subprocess.run(
            [sys.executable, "-m", "app.launcher"],
            cwd=ROOT,
            env=shell(tmp_path, ports()),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert f"pid {launcher.pid}" in second.stderr, second.stderr
        assert "embedded" not in second.stdout
        assert (tmp_path / "servers.json").read_text() == servers_file
        assert metrics <= set((tmp_path / "prometheus").iterdir())
        assert requests.post(f"{api}/auth/login", json=admin, timeout=5).status_code == 200

        # Past gunicorn's default limits (4094-byte request line, 8190-byte header).
        too_long = requests.get(f"{api}/cities?name={'a' * 9000}", timeout=5)
        assert too_long.status_code == 414
        assert too_long.json()["error"] == "uri_too_long"
        too_large = requests.get(f"{api}/cities", headers={"X-Padding": "a" * 9000}, timeout=5)
        assert too_large.status_code == 431
        assert too_large.json()["error"] == "header_too_large"

        control_socket = tmp_path / "gunicorn.ctl"
        wait_until(control_socket.is_socket, message="gunicorn's control socket")
        with ControlClient(str(control_socket), timeout=10) as control:
            workers = {worker["pid"] for worker in control.send_command("show workers")["workers"]}
        assert workers and workers <= descendants(launcher.pid)

        mongo = pymongo.MongoClient(mongo_uri(given["mongo"], "community"))
        mongo.community.cities.insert_one({"code": "KEEP", "name": "Kept", "province": "-"})
        leader = wait_until(
            lambda: mongo.community.outbox_dispatch.find_one({"holder": {"$ne": None}}),
            message="a dispatcher to lead",
        )["holder"]
        mongo.close()
        started = stop(launcher, signal.SIGTERM)
        stopped_at = datetime.now(UTC)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    # API master and workers, Dramatiq, dispatcher, scheduler and both servers at least.
    assert len(started) >= 6
    assert workers <= started
    assert [pid for pid in started if alive(pid)] == []
    assert not (tmp_path / "gunicorn.ctl").exists()
    assert not (tmp_path / "servers.json").exists()

    # The dispatcher stopped while MongoDB still ran: it handed its lease back, so the next
    # start's dispatcher leads at once rather than when the lease runs out.
    database = start_mongo(tmp_path / "mongodb", "community", port=free_port())
    try:
        lead = pymongo.MongoClient(database.uri).community.outbox_dispatch.find_one()
        assert lead["holder"] == leader
        assert lead["lease_until"].replace(tzinfo=UTC) <= stopped_at
    finally:
        database.stop()

    relaunched = launch(tmp_path, given)
    try:
        codes = [c["code"] for c in requests.get(f"{api}/cities", timeout=5).json()["items"]]
        assert "KEEP" in codes
        started = stop(relaunched, signal.SIGINT)
    finally:
        if relaunched.poll() is None:
            relaunched.kill()
    assert [pid for pid in started if alive(pid)] == []


def test_readme_runs_gunicorn_with_the_launchers_limits():
    readme = (ROOT / "README.md").read_text()
    assert " ".join(GUNICORN_LIMITS) in readme
