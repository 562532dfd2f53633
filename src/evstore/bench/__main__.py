"""``python -m evstore.bench``: the benchmark runner (results are not saved by default)."""

import sys

from evstore.bench.main import main

if __name__ == "__main__":
    sys.exit(main())
