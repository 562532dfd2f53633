"""``evstore serve``: a KurrentDB-compatible gRPC server over any evstore store.

KurrentDB clients (kurrentdbclient, the official .NET/Java/Node/Go/Rust clients) talk to it
with the KurrentDB v1 client protocol: the project's own ``protos/*.proto`` files, compiled
into ``_generated`` by ``scripts/gen_protos.py``. It needs the ``server`` extra:
``pip install 'evstore[server]'``.
"""
