"""Subscription benchmarks: evstore's subscriptions beside eventsourcing's, in one run.

    .venv/bin/python benchmarks/subscriptions.py --json results.json       # ~5 minutes
    .venv/bin/python benchmarks/subscriptions.py --quick --backends sqlite  # no PostgreSQL
    .venv/bin/python benchmarks/subscriptions.py --only S1 --rate 500 --seconds 20

S1: append-to-delivery latency (p50, p99, max) of a ``$all`` subscription while a writer
appends 1 event per call at a steady 1,000 appends/s; S2: catch-up throughput of a new
subscription over 100,000 stored events. PostgreSQL: ``--admin-url`` (default
postgresql://postgres@127.0.0.1:5432/postgres) must be allowed to CREATE DATABASE; the run
creates ``evstore_bench_<hex>``, drops it at the end, and refuses a server without durable
commits. SQLite: files in a temporary directory (``--sqlite-dir``). The code lives in
``evstore.bench.subscriptions`` (``src/evstore/bench/subscription*.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run from a checkout without installing: the package is in ../src.
sys.path.insert(0, str(HERE.parent / "src"))

from evstore.bench.subscriptions import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
