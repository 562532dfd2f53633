"""The peer on PostgreSQL: eventsourcing 9.5.6's ``PostgresApplicationRecorder``.

Built the way the library builds it — ``PostgresFactory`` configured by ``POSTGRES_*``
settings, everything else at the library's defaults (a psycopg pool of 5 connections plus
10 overflow, no database functions, ``lock_timeout`` 0) — and used through the recorder
API. Its ``insert_events`` locks the table in EXCLUSIVE mode for each insert, so that
notification ids are issued in commit order. Its driver is synchronous psycopg, so workers
are threads.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment

from evstore.bench.systems._eventsourcing import EventsourcingTarget

__all__ = ["EventsourcingPostgresTarget", "postgres_environment"]


def postgres_environment(url: str, schema: str) -> dict[str, str]:
    """The ``POSTGRES_*`` settings naming ``url``'s database and ``schema``."""
    parts = urlsplit(url)
    return {
        "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": schema,
    }


class EventsourcingPostgresTarget(EventsourcingTarget):
    """eventsourcing's application recorder on ``<schema>.stored_events``."""

    def __init__(self, url: str, schema: str, *, create: bool = True) -> None:
        super().__init__()
        self.env = postgres_environment(url, schema)
        self.create = create
        if not create:
            self.env["CREATE_TABLE"] = "no"

    async def open(self) -> None:
        factory = PostgresFactory(Environment(env=self.env))
        self._close = factory.close
        if self.create:
            # The recorder creates its table and composite type inside the schema: make it.
            with factory.datastore.transaction(commit=True) as cursor:
                cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.env["POSTGRES_SCHEMA"]}"')
        self._recorder = factory.application_recorder()
