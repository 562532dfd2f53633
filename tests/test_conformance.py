"""Binds the conformance suite (:mod:`evstore.testing`) to every backend.

Each class gives the suite a ``store_factory`` over fresh databases of one backend: named
``memory://`` databases (dropped afterwards), SQLite files in the test's temporary
directory, and new PostgreSQL databases from the fixtures in ``conftest.py``.
"""

from __future__ import annotations

import importlib.util
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

# Before the suite is imported, so its asserts explain their failures like a test module's.
pytest.register_assert_rewrite("evstore.testing")

from evstore import AsyncEventStore  # noqa: E402
from evstore.testing import ConformanceSuite, StoreFactory, open_store_factory  # noqa: E402


def require_backend(module: str) -> None:
    """Skip while the backend package does not exist yet; once it exists, import errors fail.

    The SQLite and PostgreSQL backends are written in parallel with this suite; a package
    directory without its ``__init__.py`` yet (a namespace package, no origin) is unfinished.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        pytest.skip(f"{module} is not written yet")


class TestMemory(ConformanceSuite):
    """The reference backend."""

    @pytest.fixture
    async def store_factory(self) -> AsyncIterator[StoreFactory]:
        # Named databases, so that shared=True can open a second store on the same one.
        async with open_store_factory(
            lambda: f"memory://conformance-{uuid.uuid4().hex}", cleanup=AsyncEventStore.drop
        ) as factory:
            yield factory


class TestSQLite(ConformanceSuite):
    """SQLite files."""

    @pytest.fixture
    async def store_factory(self, sqlite_path: Path, tmp_path: Path) -> AsyncIterator[StoreFactory]:
        require_backend("evstore.backends.sqlite")
        paths = itertools.chain(
            [sqlite_path], (tmp_path / f"events-{n}.db" for n in itertools.count(2))
        )
        async with open_store_factory(lambda: f"sqlite:///{next(paths)}") as factory:
            yield factory


class TestPostgres(ConformanceSuite):
    """PostgreSQL databases, each created for the test."""

    @pytest.fixture
    async def store_factory(
        self, postgres_url: str, postgres_dsn_factory: Callable[[], str]
    ) -> AsyncIterator[StoreFactory]:
        require_backend("evstore.backends.postgres")
        # The test's own database first; more only when a test asks for several.
        urls = itertools.chain([postgres_url], iter(postgres_dsn_factory, None))
        async with open_store_factory(lambda: next(urls)) as factory:
            yield factory
