"""Server benchmarks: ``evstore serve`` with the real kurrentdbclient beside the same work
done in-process, in one run.

    .venv/bin/python benchmarks/server.py --json results.json          # both backends
    .venv/bin/python benchmarks/server.py --quick --backends sqlite     # no PostgreSQL
    .venv/bin/python benchmarks/server.py --only B1 --profile /tmp/prof # py-spy records

B1: appends/s, p50/p99 latency and CPU per append of 50 asyncio tasks appending one event
per call to their own streams, with ``AsyncKurrentDBClient.append_to_stream`` against
``evstore serve`` in its own process (the headline; also one client shared by all tasks,
and the server in a thread of the benchmark's process) and with ``AsyncEventStore`` in
process; the ratio gRPC / in-process. B2: ``$all`` read throughput of ``read_all`` (no
filter) against ``stream_all_forward`` over the same 100,000 events. PostgreSQL:
``--admin-url`` (default postgresql://postgres@127.0.0.1:5432/postgres) must be allowed to
CREATE DATABASE; the run creates ``evstore_bench_<hex>``, drops it at the end, and refuses
a server without durable commits. SQLite: files in a temporary directory
(``--sqlite-dir``). ``--backends memory`` adds B1 on ``memory://`` stores: the cost of
the gRPC path with the cheapest store. The code lives in ``evstore.bench.server``
(``src/evstore/bench/server*.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run from a checkout without installing: the package is in ../src.
sys.path.insert(0, str(HERE.parent / "src"))

from evstore.bench.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
