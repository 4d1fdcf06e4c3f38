"""A short `make chaos` (chaos/run.py): a few faults under load, then the checker finds
nothing lost, nothing applied twice, every invariant holding and no drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_short_chaos_run_finds_no_violation(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "chaos.run", "--faults", "6", "--duration", "12"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr[-3000:]
    last = lines[-1]
    assert last.startswith("chaos: ") and last.endswith(" 0 violations"), result.stdout[-5000:]
    assert " 6 faults injected" in last
    acknowledged = int(last.split()[1])
    assert acknowledged > 100, last
    assert result.returncode == 0
