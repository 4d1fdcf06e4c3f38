"""The service runs installed, as README's "Running in production" says: its wheel is built
from a copy of the checkout, installed with `requirements.lock` into a fresh virtual
environment by the README's own lines, and gunicorn, the dispatcher, a Dramatiq worker and
`flask --app wsgi` run from a folder outside the checkout, with nothing of the checkout on
their path. A domain event then travels from an API request through the outbox and Redis to
the worker."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app import domains
from app.embedded import die_with_parent, free_port, stop_processes
from tests.conftest import ROOT, Servers, built_once
from tests.support import wait_until

README = ROOT / "README.md"


def readme_block(containing: str) -> list[str]:
    """The command lines of the README's `sh` block that contains `containing`, joined
    where a line ends in a backslash."""
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S):
        if containing in block:
            joined = re.sub(r"\\\n\s*", "", block)
            return [line.strip() for line in joined.splitlines() if line.strip()]
    raise AssertionError(f"README has no sh block with {containing!r}")


def readme_command(pattern: str) -> list[str]:
    """The README's command (in backticks or a block) that starts with `pattern`."""
    text = re.sub(r"\\\n\s*", "", README.read_text())
    found = re.search(rf"`({re.escape(pattern)}[^`]*)`", text) or re.search(
        rf"^\s*({re.escape(pattern)}.*)$", text, re.M
    )
    assert found, f"README names no `{pattern} ...` command"
    return shlex.split(found.group(1))


@pytest.fixture(scope="module")
def release(run_dir: Path) -> Path:
    """A copy of the checkout (so the build leaves nothing in it) where the README's build
    and install lines ran, into `release/venv`. Built once per run."""
    return built_once(run_dir, "release", build_release)


def build_release(release: Path) -> None:
    source = release / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "node_modules", "build", "dist", "*.egg-info", "__pycache__"
        ),
    )
    venv = source.parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    environ = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        # Compiling every installed module's bytecode is most of an install's CPU; the
        # processes the test starts compile the few they import.
        "PIP_NO_COMPILE": "1",
    }
    environ.pop("PYTHONPATH", None)
    for line in readme_block("pip wheel"):
        done = subprocess.run(
            line, shell=True, cwd=source, env=environ, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"


def test_the_wheel_holds_every_installed_domain_and_the_entry_points(release):
    [wheel] = (release / "source" / "dist").glob("*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    packaged = {name.removesuffix(".py") for name in tops if not name.endswith(".dist-info")}
    # The list app/domains.py makes, which tests/test_structure.py holds the checkout to.
    assert packaged == {*domains.packages(), "wsgi"}


@pytest.fixture
def outside(release: Path, servers: Servers, app, tmp_path: Path) -> Iterator[dict]:
    """A folder outside the checkout and the environment a production host gives the
    installed processes; they are stopped after the test."""
    folder = tmp_path / "host"
    folder.mkdir()
    bin_dir = release / "venv" / "bin"
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "ENVIRONMENT", "PROMETHEUS_MULTIPROC_DIR"}
    }
    environ.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        MONGODB_URI=servers.mongodb_uri,
        REDIS_URL=servers.redis_url,
        ENVIRONMENT="production",
        METRICS_TOKEN="metrics-token-for-the-test",
        LOG_LEVEL="WARNING",
        # gunicorn's control socket goes here, not into the shared ~/.gunicorn.
        XDG_RUNTIME_DIR=str(folder),
    )
    started: list[subprocess.Popen] = []

    def start(command: list[str]) -> subprocess.Popen:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        started.append(process)
        return process

    def run(command: list[str]) -> str:
        done = subprocess.run(command, cwd=folder, env=environ, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    try:
        yield {"start": start, "run": run, "bin": bin_dir}
    finally:
        stop_processes(started)


# Builds the release (a wheel and a virtual environment: tens of seconds), so it starts
# first in a parallel run; the wheel's contents are read later, by when it is built.
@pytest.mark.slow
def test_gunicorn_and_the_workers_run_from_the_installed_wheel(outside):
    # Nothing comes from the checkout: every package is the installed one.
    where = outside["run"](
        [
            "python",
            "-c",
            "import app, wsgi, partners, workers; print(app.__file__, wsgi.__file__)",
        ]
    )
    assert str(ROOT) not in where and "site-packages" in where

    port = free_port()
    api = readme_command("gunicorn wsgi:app")
    api = " ".join(api).replace("0.0.0.0:8000", f"127.0.0.1:{port}")
    api = re.sub(r"--workers \d+", "--workers 1", api).split()
    outside["start"](api)
    outside["start"](readme_command("dramatiq workers.main"))
    outside["start"](readme_command("python -m workers.dispatcher"))
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(f"{base}/ready"), timeout=60, message="the installed API")

    outside["run"](
        ["flask", "--app", "wsgi", "create-admin", "--email", "hq@example.com", "--password",
         "a-long-password", "--city", "CD"]
    )  # fmt: skip
    api_url = f"{base}/api/v1"
    admin = requests.post(
        f"{api_url}/auth/login", json={"email": "hq@example.com", "password": "a-long-password"}
    ).json()["access_token"]
    as_admin = {"Authorization": f"Bearer {admin}"}
    created = requests.post(
        f"{api_url}/admin/cities",
        headers=as_admin,
        json={"code": "SZ", "name": "Shenzhen", "province": "Guangdong"},
    )
    assert created.status_code == 201, created.text
    owner = requests.post(
        f"{api_url}/auth/register",
        json={
            "email": "li.na@example.com",
            "password": "a-long-password",
            "display_name": "Li Na",
            "city_code": "SZ",
        },
    ).json()
    as_owner = {"Authorization": f"Bearer {owner['access_token']}"}
    vehicle = requests.post(
        f"{api_url}/me/vehicles",
        headers=as_owner,
        json={"vin": "LSVAB2BM1CN000123", "model": "smart #1"},
    ).json()
    verified = requests.post(f"{api_url}/vehicles/{vehicle['id']}/verify", headers=as_admin)
    assert verified.status_code == 200, verified.text

    # The consoles' pages, browser files and zh-CN catalogue come with the wheel too.
    sign_in = requests.get(f"{base}/console/sign-in", headers={"Accept-Language": "zh-CN"})
    assert sign_in.status_code == 200 and "<form" in sign_in.text, sign_in.text[:300]
    assert "登录" in sign_in.text  # the compiled zh-CN catalogue
    assert requests.get(f"{base}/console/static/console.css").status_code == 200

    # vehicle.verified: outbox -> dispatcher -> Redis -> the worker's welcome points.
    wait_until(
        lambda: requests.get(f"{api_url}/me/points", headers=as_owner).json()["balance"] == 500,
        timeout=60,
        message="welcome points paid by the installed worker",
    )


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
