"""Every example in examples/ runs to completion and reports success.

Examples are discovered with a glob, so a new example is tested without touching this
file. Each must exit 0 and print "<title>: OK" (the last line of its output).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT = 60.0

# A line each known example prints when its outcome is right (besides the final "...: OK").
KEY_LINES = {
    "getting_started": "status: COMPLETED, run state: COMPLETED, version: 4",
    "callback": "loan-bob: REJECTED by dave (rejected: amount too high)",
    "timeout": "pay-2: EXPIRED: expired at 00:31",
    "schedule": "runs of 'hourly-report' created at: 00:00, 01:00, 02:00, 03:00, 06:00",
    "connector": "4 runs for 4 signups: the login event started none",
    "order_processing": "stored record: run state DATA_DELETED",
    "three_nodes": "every run completed: 30 of 30",
    "fastapi_service": "order-2: SHIPPED (Completed), tracking TRK-order-2",
    "postgres_cli": "parcel-4: Initiated -> Paused -> Running -> Running -> Completed; label LBL-parcel-4",
}
# Examples that need a server: marked, and given its address (they skip or fail as any such test).
NEEDS_POSTGRES = {"postgres_cli"}


def test_examples_are_found():
    assert len(EXAMPLES) >= 6, EXAMPLES


@pytest.mark.parametrize(
    "example",
    [pytest.param(p, marks=[pytest.mark.postgres] if p.stem in NEEDS_POSTGRES else []) for p in EXAMPLES],
    ids=[p.stem for p in EXAMPLES],
)
def test_example_runs(example: Path, request: pytest.FixtureRequest):
    env = dict(os.environ)
    if example.stem in NEEDS_POSTGRES:
        env["ACTORFLOW_DSN"] = request.getfixturevalue("pg_dsn")
    try:
        result = subprocess.run(
            [sys.executable, str(example.relative_to(ROOT))],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{example.name} did not finish within {TIMEOUT}s; output so far:\n{exc.stdout!r}\n{exc.stderr!r}")
    output = f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    assert result.returncode == 0, f"{example.name} exited {result.returncode}\n{output}"
    lines = result.stdout.strip().splitlines()
    assert lines, f"{example.name} printed nothing\n{output}"
    assert lines[-1].endswith(": OK"), f"{example.name} did not report success\n{output}"
    assert "Traceback" not in result.stderr, output
    key = KEY_LINES.get(example.stem)
    if key is not None:
        assert key in result.stdout, f"{example.name} did not print {key!r}\n{output}"


def test_every_example_is_listed_in_the_readme():
    readme = (ROOT / "examples" / "README.md").read_text()
    missing = [p.name for p in EXAMPLES if f"python examples/{p.name}" not in readme]
    assert not missing, f"add these to examples/README.md: {missing}"
