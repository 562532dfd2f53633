"""Store URLs and options: parsed and checked in one place, then turned into a backend.

URLs: ``memory://[name]``, ``sqlite:///relative.db``, ``sqlite:////abs/path.db``,
``sqlite://:memory:``, ``postgresql://…`` (or ``postgres://…``). The default URL is
``$EVSTORE_URL`` or ``sqlite:///evstore.db``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from evstore.backends.base import StorageBackend
from evstore.errors import ConfigurationError
from evstore.serialization import JsonSerializer, Serializer

__all__ = ["DEFAULT_URL", "StoreConfig", "make_backend", "resolve_url"]

DEFAULT_URL = "sqlite:///evstore.db"
SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SCHEMES = ("memory", "sqlite", "postgresql", "postgres")


@dataclass(frozen=True)
class StoreConfig:
    """Every store option, checked. See ``AsyncEventStore`` for their meaning."""

    url: str
    schema: str = "public"
    serializer: Serializer = field(default_factory=JsonSerializer)
    enable_hard_deletes: bool = False
    pool_size: int = 10
    timeout: float | None = 15.0
    poll_interval: float = 0.5
    notifications: bool = True
    session_mode_url: str | None = None
    column_data_type: Literal["bytea", "jsonb"] = "bytea"
    auto_init: bool = True

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @classmethod
    def from_options(cls, url: str | None, options: dict[str, Any]) -> StoreConfig:
        """Check ``url`` and keyword ``options``.

        Raises:
            ConfigurationError: an unknown option, a wrong type or value, an unknown scheme.
        """
        known = set(cls.__dataclass_fields__) - {"url"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown option(s): {', '.join(unknown)}; known options are "
                f"{', '.join(sorted(known))}"
            )
        config = cls(url=resolve_url(url), **options)
        config._check()
        return config

    def _check(self) -> None:
        if not isinstance(self.schema, str) or not SCHEMA_NAME.fullmatch(self.schema):
            raise ConfigurationError(
                f"schema must match [A-Za-z_][A-Za-z0-9_]{{0,62}}, got {self.schema!r}"
            )
        if not isinstance(self.serializer, Serializer):
            raise ConfigurationError(
                "serializer must have content_type, serialize() and deserialize()"
            )
        for name in ("enable_hard_deletes", "notifications", "auto_init"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if isinstance(self.pool_size, bool) or not isinstance(self.pool_size, int):
            raise ConfigurationError(f"pool_size must be an int, got {self.pool_size!r}")
        if self.pool_size < 1:
            raise ConfigurationError(f"pool_size must be >= 1, got {self.pool_size}")
        if self.timeout is not None and not _positive_number(self.timeout):
            raise ConfigurationError(
                f"timeout must be a positive number of seconds or None, got {self.timeout!r}"
            )
        if not _positive_number(self.poll_interval):
            raise ConfigurationError(
                f"poll_interval must be a positive number of seconds, got {self.poll_interval!r}"
            )
        if self.column_data_type not in ("bytea", "jsonb"):
            raise ConfigurationError(
                f"column_data_type must be 'bytea' or 'jsonb', got {self.column_data_type!r}"
            )
        if self.column_data_type == "jsonb" and self.serializer.content_type != "application/json":
            raise ConfigurationError("column_data_type='jsonb' needs a JSON serializer")
        if self.session_mode_url is not None and urlsplit(self.session_mode_url).scheme not in (
            "postgresql",
            "postgres",
        ):
            raise ConfigurationError("session_mode_url must be a postgresql:// URL")


def _positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def resolve_url(url: str | None) -> str:
    """The URL to open: ``url``, else ``$EVSTORE_URL``, else ``sqlite:///evstore.db``.

    Raises:
        ConfigurationError: not a string, or an unknown scheme.
    """
    if url is None:
        url = os.environ.get("EVSTORE_URL") or DEFAULT_URL
    if not isinstance(url, str):
        raise ConfigurationError(f"url must be a str, got {type(url).__name__}")
    scheme = urlsplit(url).scheme
    if scheme not in _SCHEMES or "://" not in url:
        raise ConfigurationError(
            f"unsupported store URL {url!r}: use memory://, sqlite:///path.db or postgresql://…"
        )
    return url


def sqlite_path(url: str) -> str:
    """The file path (or ``:memory:``) named by a ``sqlite://`` URL."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ConfigurationError(f"sqlite URLs take no query or fragment: {url!r}")
    if parts.netloc == ":memory:" and parts.path in ("", "/"):
        return ":memory:"
    if parts.netloc:
        raise ConfigurationError(
            f"sqlite URL {url!r} has a host; use sqlite:///relative.db or sqlite:////abs.db"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ConfigurationError(f"sqlite URL {url!r} names no file")
    return path


def make_backend(config: StoreConfig) -> StorageBackend:
    """Build (but do not open) the backend ``config.url`` names."""
    scheme = config.scheme
    if scheme == "memory":
        from evstore.backends.memory import MemoryBackend

        parts = urlsplit(config.url)
        return MemoryBackend(
            parts.netloc + parts.path.strip("/") or None,
            enable_hard_deletes=config.enable_hard_deletes,
        )
    if scheme == "sqlite":
        from evstore.backends.sqlite import SQLiteBackend

        sqlite_backend: StorageBackend = SQLiteBackend(
            sqlite_path(config.url),
            enable_hard_deletes=config.enable_hard_deletes,
            timeout=config.timeout,
            poll_interval=config.poll_interval,
        )
        return sqlite_backend
    try:
        from evstore.backends.postgres import PostgresBackend
    except ImportError as exc:  # asyncpg is an extra
        raise ConfigurationError(
            "PostgreSQL support needs asyncpg: pip install 'evstore[postgres]'"
        ) from exc
    postgres_backend: StorageBackend = PostgresBackend(
        config.url,
        schema=config.schema,
        enable_hard_deletes=config.enable_hard_deletes,
        pool_size=config.pool_size,
        timeout=config.timeout,
        poll_interval=config.poll_interval,
        notifications=config.notifications,
        session_mode_url=config.session_mode_url,
        column_data_type=config.column_data_type,
    )
    return postgres_backend
