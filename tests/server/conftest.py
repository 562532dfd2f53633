"""Fixtures for the server tests: a real server on a free port, real KurrentDB clients.

The server runs in a thread of its own with its own event loop (``BackgroundServer``), so
that both the blocking ``KurrentDBClient`` and the asyncio ``AsyncKurrentDBClient`` (on
the test's loop) talk to it over real sockets, as any client would.

- ``server``: over a fresh SQLite file; ``pg_server``: over a fresh PostgreSQL database;
  ``any_server``: both, one after the other (parametrized).
- ``client`` / ``async_client``: clients of ``server``.
- ``make_client`` / ``make_async_client``: clients of any server (closed after the test).
- ``start_server``: start another server with any options (stopped after the test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kurrentdbclient import AsyncKurrentDBClient, KurrentDBClient

from evstore.server.app import BackgroundServer

StartServer = Callable[..., BackgroundServer]
MakeClient = Callable[[BackgroundServer], KurrentDBClient]
MakeAsyncClient = Callable[[BackgroundServer], Awaitable[AsyncKurrentDBClient]]


def connection_string(server: BackgroundServer, **query: str) -> str:
    """``kurrentdb://127.0.0.1:PORT?tls=false`` for ``server`` (plus ``query`` options)."""
    options = "&".join(f"{key}={value}" for key, value in {"tls": "false", **query}.items())
    return f"kurrentdb://127.0.0.1:{server.port}?{options}"


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """``start_server(url, **EvstoreServer options)``: a started server on a free port."""
    started: list[BackgroundServer] = []

    def start(url: str, **options: Any) -> BackgroundServer:
        options.setdefault("port", 0)
        options.setdefault("http_port", 0)
        options.setdefault("grace", 5.0)
        server = BackgroundServer(url, **options).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite store in the test's directory."""
    return f"sqlite:///{tmp_path / 'server.db'}"


@pytest.fixture
def server(start_server: StartServer, sqlite_url: str) -> BackgroundServer:
    """A server over a fresh SQLite file."""
    return start_server(sqlite_url)


@pytest.fixture
def pg_server(start_server: StartServer, postgres_url: str) -> BackgroundServer:
    """A server over a fresh PostgreSQL database."""
    return start_server(postgres_url)


@pytest.fixture(params=["sqlite", "postgres"])
def any_server(
    request: pytest.FixtureRequest, start_server: StartServer, sqlite_url: str
) -> BackgroundServer:
    """A server over SQLite, then over PostgreSQL (for backend-specific behaviour)."""
    if request.param == "postgres":
        return start_server(request.getfixturevalue("postgres_url"))
    return start_server(sqlite_url)


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """``make_client(server)``: a sync client of ``server``, closed after the test."""
    clients: list[KurrentDBClient] = []

    def make(server: BackgroundServer, **query: str) -> KurrentDBClient:
        client = KurrentDBClient(connection_string(server, **query))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
async def make_async_client() -> AsyncIterator[MakeAsyncClient]:
    """``await make_async_client(server)``: a connected asyncio client, closed after."""
    clients: list[AsyncKurrentDBClient] = []

    async def make(server: BackgroundServer, **query: str) -> AsyncKurrentDBClient:
        client = AsyncKurrentDBClient(connection_string(server, **query))
        await client.connect()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def client(server: BackgroundServer, make_client: MakeClient) -> KurrentDBClient:
    """A sync client of ``server``."""
    return make_client(server)


@pytest.fixture
async def async_client(
    server: BackgroundServer, make_async_client: MakeAsyncClient
) -> AsyncKurrentDBClient:
    """An asyncio client of ``server``."""
    return await make_async_client(server)
