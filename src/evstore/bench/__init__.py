"""evstore's benchmark suite: evstore beside its peer library and the raw database.

Workloads (W1 and W4 are the Elixir EventStore's own benchmark shapes):

* W1 append 100 events per operation, 1/10/50 writers, each writer its own stream;
* W2 append 1 event per operation, 1/10/50 writers in one process;
* W3 append 1 event per operation from 8 processes with 4 writers each;
* W4 read a 100-event stream, 1/10/50 readers;
* W5 read ``$all`` from the origin (events/s) and RSS growth while streaming 1,000,000;
* W6 append latency (p50, p99) under W2 with 50 writers.

Systems: evstore (the public façade), the ``eventsourcing`` library's recorders (the
peer, optional: ``pip install 'evstore[bench]'``), and raw asyncpg / sqlite3 on a minimal
event table (the physical limit). Entry points: ``benchmarks/run.py`` (full suite, results
JSON), ``python -m evstore.bench`` and ``evstore bench`` (quick).
"""

from evstore.bench._results import Cell, Run
from evstore.bench._workloads import Settings
from evstore.bench.runner import Plan, run_suite

__all__ = ["Cell", "Plan", "Run", "Settings", "run_suite"]
