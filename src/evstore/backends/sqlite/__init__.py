"""The SQLite backend: an embedded event store in one database file.

WAL mode with ``synchronous=FULL``; one group-commit writer thread per backend instance
(:mod:`.writer`); reads on a small pool of reader connections; global positions are the
events table's AUTOINCREMENT rowid. The schema is described in :mod:`._sql`.
"""

from evstore.backends.sqlite.storage import SQLiteBackend

__all__ = ["SQLiteBackend"]
