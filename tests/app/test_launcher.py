"""`make run`'s launcher: the whole system up, then SIGTERM stops every process it started
(no orphan, no stale WiredTiger lock), and data survives a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pymongo
import requests

from app.embedded import free_port
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


def launch(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen:
    environ = {
        key: value for key, value in os.environ.items() if key not in {"MONGODB_URI", "REDIS_URL"}
    }
    environ.update(
        {
            "DATA_DIR": str(data_dir),
            "PORT": str(ports["api"]),
            "EMBEDDED_MONGODB_PORT": str(ports["mongo"]),
            "EMBEDDED_REDIS_PORT": str(ports["redis"]),
            "WEB_CONCURRENCY": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "app.launcher"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def stop(launcher: subprocess.Popen) -> set[int]:
    started = descendants(launcher.pid)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(60) == 0
    return started


def test_sigterm_stops_everything_and_data_survives_restart(tmp_path):
    ports = {"api": free_port(), "mongo": free_port(), "redis": free_port()}
    api = f"http://127.0.0.1:{ports['api']}/api/v1"
    launcher = launch(tmp_path, ports)
    try:
        wait_until(
            lambda: ready(ports["api"]),
            timeout=90,
            interval=0.25,
            message="the launched API to be ready",
        )
        mongo = pymongo.MongoClient(
            f"mongodb://127.0.0.1:{ports['mongo']}/?directConnection=true&retryWrites=false"
        )
        mongo.community.cities.insert_one({"code": "KEEP", "name": "Kept", "province": "-"})
        mongo.close()
        started = stop(launcher)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    # API master and worker, Dramatiq, dispatcher, scheduler and both servers at least.
    assert len(started) >= 6
    assert [pid for pid in started if alive(pid)] == []

    relaunched = launch(tmp_path, ports)
    try:
        wait_until(
            lambda: ready(ports["api"]),
            timeout=90,
            interval=0.25,
            message="the relaunched API (no stale lock) to be ready",
        )
        codes = [c["code"] for c in requests.get(f"{api}/cities", timeout=5).json()["items"]]
        assert codes == ["KEEP"]
        stop(relaunched)
    finally:
        if relaunched.poll() is None:
            relaunched.kill()
