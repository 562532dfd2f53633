"""The benchmark suite's runner: evstore beside eventsourcing and the raw database.

    .venv/bin/python benchmarks/run.py                       # everything, ~7 minutes
    .venv/bin/python benchmarks/run.py --quick --only W2      # a subset, a few s per cell
    .venv/bin/python benchmarks/run.py --backend sqlite --markdown
    .venv/bin/python benchmarks/run.py --from-json benchmarks/results/<file>.json --markdown

PostgreSQL: ``--admin-url`` (default postgresql://postgres@127.0.0.1:5432/postgres) must
be allowed to CREATE DATABASE; the run creates ``evstore_bench_<hex>``, drops it at the end,
and refuses a server without durable commits. Results go to
``benchmarks/results/<date>-<machine>.json`` (``--output``, ``--no-save``), which
``benchmarks/chart.py`` draws. The code lives in ``evstore.bench`` (``src/evstore/bench``),
so ``evstore bench`` runs the same workloads.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run from a checkout without installing: the package is in ../src.
sys.path.insert(0, str(HERE.parent / "src"))

from evstore.bench.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(results_dir=HERE / "results"))
