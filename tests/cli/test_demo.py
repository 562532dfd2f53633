"""python -m evstore.demo runs, catches its conflict, and can run again on the same store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import SQLITE, subprocess_env


def run_demo(cwd: Path, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "evstore.demo"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=subprocess_env(**env),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo_is_repeatable_on_the_default_store(tmp_path: Path) -> None:
    if not SQLITE:
        first = run_demo(tmp_path, EVSTORE_URL="memory://")
        assert "is refused: WrongExpectedVersionError" in first
        return
    # No EVSTORE_URL: the default sqlite:///evstore.db, relative to the working directory.
    first = run_demo(tmp_path)
    second = run_demo(tmp_path)
    assert (tmp_path / "evstore.db").exists()
    for output in (first, second):
        assert "is refused: WrongExpectedVersionError" in output
    assert "does not exist yet" in first and "now at version 3" in first
    assert "is at version 3 (from an earlier run)" in second
    assert "balance of 70" in first and "balance of 140" in second
    assert "handled 3 new event(s); its checkpoint is now version 3" in first
    assert "handled 2 new event(s); its checkpoint is now version 5" in second


def test_demo_follows_evstore_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chosen.db'}" if SQLITE else "memory://demo"
    output = run_demo(tmp_path, EVSTORE_URL=url)
    assert f"Opened the event store at {url}." in output
