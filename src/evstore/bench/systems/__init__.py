"""The systems under test, built from a picklable :class:`TargetSpec`.

Each system's module is imported only when asked for, so evstore's own targets work
without the peer library (``eventsourcing``) installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from evstore.bench.systems._base import AsyncTarget, Backend, Target, ThreadTarget

__all__ = [
    "AsyncTarget",
    "Backend",
    "Target",
    "TargetSpec",
    "ThreadTarget",
    "make_target",
    "missing_peer",
]

EVSTORE = "evstore"
PEER = "eventsourcing"


@dataclass(frozen=True)
class TargetSpec:
    """Which system, where: a PostgreSQL database URL and schema, or a SQLite file path.

    ``system`` is ``evstore``, ``eventsourcing``, ``raw unnest``, ``raw copy`` (PostgreSQL)
    or ``raw sqlite3``; ``raw unnest + ids`` (PostgreSQL) is a reference, see ``raw_pg``.
    ``pool_size`` 0 keeps the system's default pool. ``create`` False: the tables exist
    (made by another process), do not run DDL — concurrent ``CREATE OR REPLACE`` from
    several processes fails with "tuple concurrently updated".
    """

    system: str
    backend: Backend
    location: str
    schema: str = "public"
    pool_size: int = 0
    create: bool = True


def missing_peer() -> str | None:
    """Why the eventsourcing baselines cannot run here, or None when they can."""
    for module in ("eventsourcing", "psycopg", "psycopg_pool"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'evstore[bench]')"
    return None


def make_target(spec: TargetSpec) -> Target:
    """The (unopened) target ``spec`` describes."""
    if spec.system == EVSTORE:
        from evstore.bench.systems.evstore_target import EvstoreTarget

        if spec.backend == "sqlite":
            return EvstoreTarget(f"sqlite:///{spec.location}")
        options: dict[str, object] = {"schema": spec.schema, "auto_init": spec.create}
        if spec.pool_size:
            options["pool_size"] = spec.pool_size
        return EvstoreTarget(spec.location, **options)
    if spec.system == PEER and spec.backend == "postgres":
        from evstore.bench.systems.eventsourcing_pg import EventsourcingPostgresTarget

        return EventsourcingPostgresTarget(spec.location, spec.schema, create=spec.create)
    if spec.system == PEER:
        from evstore.bench.systems.eventsourcing_sqlite import EventsourcingSqliteTarget

        return EventsourcingSqliteTarget(spec.location)
    if spec.system in ("raw unnest", "raw copy", "raw unnest + ids"):
        from evstore.bench.systems.raw_pg import RawPostgresTarget

        return RawPostgresTarget(
            spec.location,
            spec.schema,
            method="copy" if spec.system == "raw copy" else "unnest",
            pool_size=spec.pool_size or 10,
            create=spec.create,
            event_ids=spec.system == "raw unnest + ids",
        )
    if spec.system == "raw sqlite3":
        from evstore.bench.systems.raw_sqlite import RawSqliteTarget

        return RawSqliteTarget(spec.location)
    raise ValueError(f"unknown system {spec.system!r} on {spec.backend}")
