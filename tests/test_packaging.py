"""Packaging: adapters/ is installed as actorflow.adapters, in a wheel and in an editable install."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def migration_versions(adapter: str) -> list[int]:
    """The versions of the repository's migrations of ``adapter`` (what an installed copy must apply)."""
    return sorted(int(p.name.split("_", 1)[0]) for p in (ROOT / "adapters" / adapter / "migrations").glob("*.sql"))


@dataclasses.dataclass(frozen=True)
class Installed:
    """A fresh venv holding only the wheel; the dependencies are lent by this environment."""

    env_dir: Path
    python: Path

    def run(self, code: str, cwd: Path, **env: str) -> str:
        """Run ``code`` in the venv; its stdout (the test fails with its stderr if it fails)."""
        # Lend the dependencies through PYTHONPATH: .pth files there (our editable finder) are not run.
        full_env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"], **env}
        result = subprocess.run(
            [str(self.python), "-c", code],
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"the installed wheel failed:\n{result.stderr}"
        return result.stdout


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


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel installed (without dependencies) in a fresh venv, shared by this module's tests."""
    env_dir = tmp_path_factory.mktemp("fresh") / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300)
    return Installed(env_dir, python)


def test_wheel_maps_adapters_under_actorflow(wheel: Path):
    """The wheel holds actorflow/adapters/..., py.typed, and no top-level adapters package."""
    names = zipfile.ZipFile(wheel).namelist()
    assert "actorflow/adapters/memory/__init__.py" in names
    assert "actorflow/adapters/postgres/__init__.py" in names
    assert "actorflow/adapters/kafka/__init__.py" in names
    assert "actorflow/py.typed" in names
    # The SQL adapters' SQL is package data: their queries and every migration ship.
    for adapter in ("sqlite", "postgres"):
        assert f"actorflow/adapters/{adapter}/queries.sql" in names
        migrations = sorted(p.name for p in (ROOT / "adapters" / adapter / "migrations").glob("*.sql"))
        assert migrations, f"no migrations found for {adapter}"
        shipped = sorted(
            n.rsplit("/", 1)[1] for n in names if n.startswith(f"actorflow/adapters/{adapter}/migrations/")
        )
        assert shipped == migrations
    assert not [n for n in names if n.startswith("adapters/")]
    assert not [n for n in names if n.startswith("tests/")]


def test_wheel_ships_the_ui_templates_and_static_files(wheel: Path):
    """``actorflow ui`` serves its pages and assets from the package (no CDN): every file ships."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("templates", "static"):
        files = sorted(p.name for p in (ROOT / "actorflow" / "ui" / folder).iterdir() if p.is_file())
        assert files, folder
        missing = [name for name in files if f"actorflow/ui/{folder}/{name}" not in names]
        assert not missing, f"not in the wheel: {missing}"


def test_wheel_declares_the_postgres_extra(wheel: Path):
    """``pip install "actorflow[postgres]"`` brings psycopg 3 and its pool; the core needs neither."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    requires = [line.removeprefix("Requires-Dist: ") for line in lines if line.startswith("Requires-Dist: ")]
    assert "Provides-Extra: postgres" in lines
    postgres = [r for r in requires if r.endswith('extra == "postgres"')]
    assert any(r.startswith("psycopg[binary]") for r in postgres), requires
    assert any(r.startswith("psycopg-pool") for r in postgres), requires
    assert not [r for r in requires if r.startswith("psycopg") and "extra ==" not in r], "psycopg must stay optional"


def test_wheel_imports_the_adapters_in_a_fresh_venv(installed: Installed, tmp_path: Path):
    """A fresh venv with only the wheel imports every adapter (postgres and kafka with their libraries lent)."""
    code = (
        "import importlib.util, actorflow, actorflow.adapters.memory as m\n"
        "assert importlib.util.find_spec('adapters') is None\n"
        "import actorflow.adapters.sqlite as s\n"
        "print(s.migrate('from-wheel.db'))\n"
        "import actorflow.adapters.postgres as p\n"
        "assert {'PostgresRecordStore', 'PostgresEventStreamer', 'PostgresTimeoutStore', 'migrate'} <= set(p.__all__)\n"
        "import actorflow.adapters.kafka as k\n"
        "assert 'KafkaEventStreamer' in k.__all__\n"
        "for module in (m, s, p, k):\n"
        "    print(module.__file__)\n"
    )
    applied, *files = installed.run(code, tmp_path).splitlines()
    assert applied == str(migration_versions("sqlite")), "the SQL files load from the installed wheel"
    assert len(files) == 4
    assert all(f.startswith(str(installed.env_dir)) for f in files), files


def test_wheel_postgres_adapter_without_psycopg_says_how_to_install_it(installed: Installed, tmp_path: Path):
    """Without psycopg, importing actorflow.adapters.postgres names the extra to install; the core still imports."""
    code = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # as if psycopg were not installed\n"
        "import actorflow, actorflow.adapters.memory\n"
        "try:\n"
        "    import actorflow.adapters.postgres\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('imported without psycopg')\n"
    )
    assert 'pip install "actorflow[postgres]"' in installed.run(code, tmp_path)


@pytest.mark.postgres
def test_wheel_postgres_migrations_load_from_the_installed_wheel(
    installed: Installed, tmp_path: Path, pg_dsn: str, pg_schema: str
):
    """The installed postgres adapter finds its migrations and applies them all to a fresh schema."""
    code = "import os, actorflow.adapters.postgres as p\nprint(p.migrate(os.environ['DSN'], os.environ['SCHEMA']))\n"
    out = installed.run(code, tmp_path, DSN=pg_dsn, SCHEMA=pg_schema)
    assert out.strip() == str(migration_versions("postgres"))


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
