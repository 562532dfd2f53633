"""The PostgreSQL backend: ``postgresql://`` URLs (asyncpg).

See :mod:`evstore.backends.postgres._sql` for the schema and the global-position design,
:mod:`.writer` for group commit and :mod:`.sequencer` for how appenders get positions.
"""

from evstore.backends.postgres.storage import PostgresBackend

__all__ = ["PostgresBackend"]
