"""Fixtures shared by the whole suite: real SQLite files and real PostgreSQL databases.

PostgreSQL comes from ``EVSTORE_TEST_POSTGRES_URL`` when set (an admin URL: the user must be
allowed to CREATE DATABASE), else from a throwaway embedded server started once per session.
The helpers live in ``_postgres.py``; this file only wires them into pytest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._postgres import ENV_VAR, EmbeddedPostgres, TestDatabases


def pytest_report_header(config: pytest.Config) -> str:
    """Say which PostgreSQL the run uses, so a failure report shows it."""
    if os.environ.get(ENV_VAR):
        return f"evstore: PostgreSQL from {ENV_VAR}"
    return "evstore: embedded PostgreSQL (started on first use)"


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """Admin URL of the PostgreSQL server for this session.

    The embedded server is started lazily, so runs that touch no PostgreSQL test pay nothing.
    """
    url = os.environ.get(ENV_VAR)
    if url:
        yield url
        return
    server = EmbeddedPostgres.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _postgres_databases(postgres_server_url: str) -> Iterator[TestDatabases]:
    """The session's database registry; whatever is still in it is dropped at the end."""
    databases = TestDatabases(postgres_server_url)
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(scope="session")
def postgres_dsn_factory(_postgres_databases: TestDatabases) -> Callable[[], str]:
    """Call it for a new empty database URL; for tests that need more than one database.

    The databases live until the end of the session (so session- and module-scoped fixtures
    can use them too). Calling it from an async test is fine: the admin work runs on a thread.
    """
    return _postgres_databases.create


@pytest.fixture
def postgres_url(_postgres_databases: TestDatabases) -> Iterator[str]:
    """URL of a new, empty database, dropped (sessions terminated first) after the test."""
    url = _postgres_databases.create()
    try:
        yield url
    finally:
        _postgres_databases.drop(url)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """Path of a not-yet-existing SQLite file in the test's own temporary directory."""
    return tmp_path / "events.db"
