"""The README's complete example runs as shown, and type-checks under mypy --strict."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def example_source() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## A complete example", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README has no python block under 'A complete example'"
    return match.group(1)


def test_readme_example_runs(tmp_path: Path):
    script = tmp_path / "readme_example.py"
    script.write_text(example_source())
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "receipt-" in result.stdout
    assert "Completed" in result.stdout


def test_readme_example_type_checks(tmp_path: Path):
    """The public API's typing is under test: the README example passes mypy --strict."""
    script = tmp_path / "readme_example.py"
    script.write_text(example_source())
    _mypy_strict(tmp_path, script)


def test_the_fastapi_example_type_checks_with_a_pydantic_object(tmp_path: Path):
    """``Builder[Order, Status]`` with a pydantic ``Order``, async steps and the async API pass mypy --strict."""
    script = tmp_path / "fastapi_service.py"
    shutil.copy(ROOT / "examples" / "fastapi_service.py", script)
    _mypy_strict(tmp_path, script)


def _mypy_strict(tmp_path: Path, script: Path) -> None:
    """mypy --strict on ``script`` against the package as a wheel lays it out.

    mypy cannot follow the editable install's import hook, so the package is laid out
    in a temporary tree as a wheel would install it (adapters/ under actorflow/).
    """
    tree = tmp_path / "site"
    shutil.copytree(ROOT / "actorflow", tree / "actorflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "adapters", tree / "actorflow" / "adapters", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(tree)},
    )
    assert result.returncode == 0, result.stdout
