"""Packaging: adapters/ is installed as actorflow.adapters, in a wheel and in an editable install."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (found,) = out.glob("actorflow-*.whl")
    return found


def test_wheel_maps_adapters_under_actorflow(wheel: Path):
    """The wheel holds actorflow/adapters/..., py.typed, and no top-level adapters package."""
    names = zipfile.ZipFile(wheel).namelist()
    assert "actorflow/adapters/memory/__init__.py" in names
    assert "actorflow/py.typed" in names
    # The SQLite adapter's SQL is package data: its queries and every migration ship.
    assert "actorflow/adapters/sqlite/queries.sql" in names
    assert "actorflow/adapters/sqlite/migrations/0001_initial.sql" in names
    assert not [n for n in names if n.startswith("adapters/")]
    assert not [n for n in names if n.startswith("tests/")]


def test_wheel_imports_the_adapters_in_a_fresh_venv(wheel: Path, tmp_path: Path):
    """A fresh venv with only the wheel (dependencies lent by this environment) imports them."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300)
    # Lend the dependencies through PYTHONPATH: .pth files there (our editable finder) are not run.
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    code = (
        "import importlib.util, actorflow, actorflow.adapters.memory as m\n"
        "assert importlib.util.find_spec('adapters') is None\n"
        "import actorflow.adapters.sqlite as s\n"
        "assert s.migrate('from-wheel.db') == [1, 2], 'the SQL files load from the installed wheel'\n"
        "print(m.__file__)\n"
    )
    result = subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert str(env_dir) in result.stdout


def test_editable_install_exposes_adapters_under_actorflow_only(tmp_path: Path):
    """The development install maps adapters/ to actorflow.adapters too, without a top-level package."""
    code = (
        "import importlib.util, actorflow.adapters.memory as m\n"
        "assert importlib.util.find_spec('adapters') is None, 'top-level adapters must not import'\n"
        "print(m.__file__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert Path(result.stdout.strip()).resolve() == ROOT / "adapters" / "memory" / "__init__.py"
