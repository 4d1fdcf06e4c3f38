"""The document types a TypeScript app well: `openapi-typescript` (pinned in
tests/typescript/package-lock.json) generates types from the served OpenAPI document, and
`tsc --noEmit` type-checks an owner's journey written against them (tests/typescript/
journey.ts: sign-up to redemption, refusals narrowed by `error`). Its Node packages are
installed by `make test` and `.ci/run` (`npm ci`) when missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT

PROJECT = ROOT / "tests" / "typescript"
BIN = PROJECT / "node_modules" / ".bin"


def run(*command: str | Path) -> None:
    done = subprocess.run(
        [str(part) for part in command], cwd=PROJECT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout}\n{done.stderr}"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_an_owner_journey_type_checks_against_the_generated_types(live_server):
    assert (BIN / "tsc").exists(), "Node packages missing: run `npm ci` in tests/typescript"
    generated = PROJECT / "generated"
    generated.mkdir(exist_ok=True)
    document = generated / "openapi.json"
    document.write_text(requests.get(f"{live_server}/api/v1/openapi.json", timeout=30).text)
    # A field with a default is optional to send: openapi-typescript 7 would require it.
    run(BIN / "openapi-typescript", document, "--default-non-nullable", "false", "-o",
        generated / "api.d.ts")  # fmt: skip
    run(BIN / "tsc", "--noEmit", "-p", "tsconfig.json")
