"""scripts/_venv.sh: pip runs only when pyproject.toml or the extra asked for changed."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _ensure(root: Path, *extras: str) -> list[str]:
    """Run ensure_venv once per extra in a copy of the scripts; the pip commands it ran."""
    calls = " && ".join(f"ensure_venv '{extra}'" for extra in extras)
    subprocess.run(
        ["bash", "-c", f"source scripts/_venv.sh && {calls}"], cwd=root, check=True, capture_output=True
    )
    log = root / "pip.log"
    ran = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return ran


def test_pip_runs_only_when_pyproject_or_the_extra_changed(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPTS / "_venv.sh", tmp_path / "scripts" / "_venv.sh")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "truthvault"\n')
    # a .venv whose python records what pip is asked to do instead of doing it
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/pip.log"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)

    first = _ensure(tmp_path, "")
    assert any(call.endswith("install --quiet --disable-pip-version-check -e .") for call in first), first
    assert _ensure(tmp_path, "", "") == []  # nothing changed: no pip at all
    assert any(call.endswith("-e .[test]") for call in _ensure(tmp_path, "[test]"))
    assert _ensure(tmp_path, "[test]", "") == []  # the tests' install holds the plain one
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "truthvault"\nversion = "2"\n')
    assert any(call.endswith("-e .") for call in _ensure(tmp_path, ""))
    assert any(call.endswith("-e .[test]") for call in _ensure(tmp_path, "[test]"))
