"""Lint and type checks, run by the one test command (`python3 -m pytest -q tests`).

ruff: the rules in pyproject.toml over the package and the tests. mypy: the
modules listed in pyproject.toml ([tool.mypy] files), with
``disallow_untyped_defs`` on storage, chunkio, grid, queues and tasks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff_is_clean():
    proc = run("ruff", "check", "igneous", "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean():
    proc = run("mypy", "--config-file", "pyproject.toml", *_files())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _files() -> list[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    return list(config["files"])
