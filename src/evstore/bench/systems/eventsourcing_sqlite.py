"""The peer on SQLite: eventsourcing 9.5.6's ``SQLiteApplicationRecorder``.

Built by ``SQLiteFactory`` from ``SQLITE_DBNAME`` with the library's defaults (WAL, which
it switches on itself; a pool of 5 + 10 connections handing out one writer at a time;
SQLite's default ``synchronous``, FULL in this build — the runner prints it). It inserts an
append's events one ``execute`` each, in one transaction. Workers are threads.
"""

from __future__ import annotations

from eventsourcing.sqlite import SQLiteFactory
from eventsourcing.utils import Environment

from evstore.bench.systems._eventsourcing import EventsourcingTarget

__all__ = ["EventsourcingSqliteTarget"]


class EventsourcingSqliteTarget(EventsourcingTarget):
    """eventsourcing's application recorder on one SQLite file."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    async def open(self) -> None:
        factory = SQLiteFactory(Environment(env={"SQLITE_DBNAME": self.path}))
        self._close = factory.close
        self._recorder = factory.application_recorder()
