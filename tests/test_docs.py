"""The documentation cannot rot: the site builds with no warning, and the guides' code runs.

`mkdocs build --strict` fails on a broken link between pages, a page missing from the
navigation, or an API reference entry that names nothing. The python blocks of "Write a
workflow" and "Test a workflow" are one program, run as a reader would.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDES = ("docs/howto/write-a-workflow.md", "docs/howto/testing.md")

pytestmark = pytest.mark.timeout(180)


def test_the_documentation_site_builds_without_a_warning(tmp_path: Path):
    pytest.importorskip("mkdocs", reason="the docs extra (mkdocs) is not installed")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("Builder", "Supervisor", "RunsAdmin", "SqliteRecordStore", "PostgresRecordStore", "RecordNotFound"):
        assert name in api, f"the API reference has no {name}"
    howtos = sorted(p.stem for p in (ROOT / "docs" / "howto").glob("*.md"))
    assert len(howtos) >= 8, howtos
    for stem in howtos:
        assert (tmp_path / "site" / "howto" / stem / "index.html").exists(), stem


def test_the_guides_code_runs_as_written(tmp_path: Path):
    blocks = []
    for guide in GUIDES:
        blocks += re.findall(r"```python\n(.*?)```", (ROOT / guide).read_text(), re.DOTALL)
    assert len(blocks) >= 7, "the guides lost their code"
    script = tmp_path / "guides.py"
    script.write_text("\n".join(blocks))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "shipped o-1" in done.stdout


def test_the_readme_links_the_changelog_and_the_docs_exist():
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]*)", readme):
        assert (ROOT / target).exists(), f"README links a missing file: {target}"
    assert "CHANGELOG.md" in readme
