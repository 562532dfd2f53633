"""Where targets live during a run: scratch PostgreSQL schemas or scratch SQLite files.

Every cell gets a fresh location (a new schema, or a new file), made before and removed
after, so each system starts from empty tables and no cell pays for its predecessor's
data. On PostgreSQL a ``CHECKPOINT`` before each cell keeps one cell's dirty pages from
being flushed during the next (skipped, with a note, without the privilege).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from evstore.bench.systems import Backend, Target, TargetSpec, make_target

__all__ = ["PostgresSite", "Site", "SqliteSite"]


class Site(ABC):
    """A backend's scratch area; opens targets on fresh locations."""

    backend: Backend

    @abstractmethod
    async def close(self) -> None:
        """Remove everything the site made."""

    @abstractmethod
    def spec(self, system: str, pool_size: int = 0) -> TargetSpec:
        """A fresh location for ``system``."""

    @abstractmethod
    async def prepare(self) -> None:
        """Settle the database before a measured cell."""

    @abstractmethod
    async def discard(self, spec: TargetSpec) -> None:
        """Remove ``spec``'s location."""

    @asynccontextmanager
    async def target(self, system: str, pool_size: int = 0) -> AsyncIterator[Target]:
        """``system`` opened on a fresh location, removed on exit."""
        spec = self.spec(system, pool_size)
        target = make_target(spec)
        try:
            await target.open()
            await self.prepare()
            yield target
        finally:
            await target.close()
            await self.discard(spec)

    @asynccontextmanager
    async def location(self, system: str, pool_size: int = 0) -> AsyncIterator[TargetSpec]:
        """A fresh location with ``system``'s tables created, for other processes to open."""
        spec = self.spec(system, pool_size)
        target = make_target(spec)
        try:
            await target.open()
            await target.close()
            await self.prepare()
            yield replace(spec, create=False)
        finally:
            await self.discard(spec)


class PostgresSite(Site):
    """Schemas ``<prefix>_<n>`` in one database, each dropped after its cell."""

    backend: Backend = "postgres"

    def __init__(self, url: str, conn: Any, prefix: str) -> None:
        self.url = url
        self._conn = conn
        self._prefix = prefix
        self._count = 0
        self.can_checkpoint = True

    @classmethod
    async def connect(cls, url: str) -> PostgresSite:
        conn = await asyncpg.connect(url)
        return cls(url, conn, f"evstore_bench_{secrets.token_hex(3)}")

    async def close(self) -> None:
        await self._conn.close()

    def spec(self, system: str, pool_size: int = 0) -> TargetSpec:
        self._count += 1
        schema = f"{self._prefix}_{self._count}"
        return TargetSpec(system, "postgres", self.url, schema, pool_size)

    async def prepare(self) -> None:
        if not self.can_checkpoint:
            return
        try:
            await self._conn.execute("CHECKPOINT")
        except asyncpg.InsufficientPrivilegeError:
            self.can_checkpoint = False

    async def discard(self, spec: TargetSpec) -> None:
        await self._conn.execute(f'DROP SCHEMA IF EXISTS "{spec.schema}" CASCADE')

    async def settings(self) -> dict[str, str]:
        """The server settings that decide write throughput, for the report."""
        names = (
            "server_version",
            "fsync",
            "synchronous_commit",
            "full_page_writes",
            "wal_sync_method",
            "commit_delay",
            "shared_buffers",
            "max_connections",
            "max_wal_size",
        )
        return {name: str(await self._conn.fetchval(f"SHOW {name}")) for name in names}


class SqliteSite(Site):
    """Files in a temporary directory, each deleted after its cell."""

    backend: Backend = "sqlite"

    def __init__(self, directory: str | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="evstore_bench_", dir=directory)
        self._count = 0

    async def close(self) -> None:
        self._tmp.cleanup()

    def spec(self, system: str, pool_size: int = 0) -> TargetSpec:
        self._count += 1
        path = Path(self._tmp.name) / f"{self._count}.db"
        return TargetSpec(system, "sqlite", str(path), pool_size=pool_size)

    async def prepare(self) -> None:
        return None

    async def discard(self, spec: TargetSpec) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(spec.location + suffix).unlink(missing_ok=True)

    def settings(self) -> dict[str, str]:
        """SQLite's version and what a default connection gets (eventsourcing's case)."""
        conn = sqlite3.connect(os.path.join(self._tmp.name, "probe.db"))
        try:
            synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        finally:
            conn.close()
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return {
            "sqlite_version": sqlite3.sqlite_version,
            "default_synchronous": names.get(synchronous, str(synchronous)),
            "directory": self._tmp.name,
        }
