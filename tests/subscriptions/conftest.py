"""Fixtures for the subscription tests that need real processes and real databases."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import evstore

SRC = Path(evstore.__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def child_env() -> Callable[[], dict[str, str]]:
    """Environment for child processes: this checkout's evstore first on the path."""

    def make() -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
            "PYTHONUNBUFFERED": "1",
        }

    return make


PYTHON = sys.executable
