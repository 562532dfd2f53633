"""The interface every system under test implements, asyncio or threaded."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

from evstore.bench._timing import AsyncOperation, SyncOperation

__all__ = ["ROLES", "AsyncTarget", "Backend", "Role", "Target", "ThreadTarget"]

Backend = Literal["postgres", "sqlite"]
Role = Literal["subject", "peer", "limit", "reference"]
ROLES: tuple[Role, ...] = ("subject", "peer", "limit", "reference")
"""The roles in the order the tables list them."""


class Target(ABC):
    """One system, opened on one scratch location (a PostgreSQL schema or a SQLite file).

    ``label`` names it in the tables (``evstore``, ``eventsourcing``, ``raw unnest``…);
    ``role`` says how it is compared: ``subject`` (evstore), ``peer`` or ``limit`` (raw);
    a ``reference`` is shown beside them and enters no ratio.
    """

    label: str = ""
    role: Role = "subject"

    @abstractmethod
    async def open(self) -> None:
        """Create the tables and connect."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect (the caller drops the scratch location)."""

    @abstractmethod
    async def fill(self, streams: Sequence[str], size: int) -> None:
        """Write ``size`` events to each stream, as fast as the system can (setup, untimed)."""

    @abstractmethod
    async def scan_all(self, page: int) -> int:
        """Read the global log from its origin, ``page`` events per query; the count read."""


class AsyncTarget(Target):
    """A system driven by asyncio tasks."""

    @abstractmethod
    def appender(self, size: int) -> AsyncOperation:
        """An operation appending ``size`` events to a new stream of its own, each call."""

    @abstractmethod
    def reader(self, stream: str) -> AsyncOperation:
        """An operation reading the whole of ``stream``, each call."""


class ThreadTarget(Target):
    """A blocking system driven by threads."""

    @abstractmethod
    def appender(self, size: int) -> SyncOperation:
        """An operation appending ``size`` events to a new stream of its own, each call."""

    @abstractmethod
    def reader(self, stream: str) -> SyncOperation:
        """An operation reading the whole of ``stream``, each call."""
