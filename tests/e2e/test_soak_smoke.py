"""A few seconds of the soak benchmark (writers killed at random, readers, full checks), so that
it keeps running; the figures come from its full run in benchmarks/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_soak_loses_nothing():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_soak", "--seconds", "8", "--kill-every", "2"]
        + ["--no-write"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["writes_acknowledged"] > 10 and got["reader_opens"] > 10
    for key in ("lost", "wrong_version", "deleted_but_present", "duplicates", "strays"):
        assert got[key] == 0, (key, got)
    assert got["reader_failures"] == 0, got["reader_failure_examples"]
    assert got["rebuild_mismatches"] == 0 and not got["writer_crashes"]
