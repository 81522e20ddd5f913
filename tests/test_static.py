"""Static checks are part of the suite: mypy --strict and ruff are clean on the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_mypy_strict_is_clean():
    """mypy --strict (configured in pyproject.toml) on actorflow/ and adapters/."""
    result = _run(sys.executable, "-m", "mypy", "--strict", "actorflow", "adapters")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("args", [("check",), ("format", "--check")], ids=["lint", "format"])
def test_ruff_is_clean(args: tuple[str, ...]):
    """ruff check and ruff format --check on actorflow/ and adapters/."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = _run(ruff, *args, "actorflow", "adapters")
    assert result.returncode == 0, result.stdout + result.stderr
