"""``evstore serve``: a KurrentDB-compatible gRPC server over any evstore store.

KurrentDB clients (kurrentdbclient, the official .NET/Java/Node/Go/Rust clients) talk to it
with the KurrentDB v1 client protocol: the project's own ``protos/*.proto`` files, compiled
into ``_generated`` by ``scripts/gen_protos.py``. It needs the ``server`` extra:
``pip install 'evstore[server]'``.

Run it in a program or a test with :class:`EvstoreServer` (asyncio) or
:class:`BackgroundServer` (a thread of its own)::

    async with EvstoreServer("sqlite:///events.db", port=0) as server:
        url = f"kurrentdb://127.0.0.1:{server.port}?tls=false"
"""

from __future__ import annotations

from typing import Any

__all__ = ["BackgroundServer", "EvstoreServer", "ServerConfigError"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the service modules import this package, and grpc is heavy.
    if name in __all__:
        from evstore.server import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
