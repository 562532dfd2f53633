"""Python code generated from ``evstore/server/protos/*.proto``: do not edit.

Regenerate with ``python scripts/gen_protos.py``. The messages live in a descriptor pool of
their own (``_pool.POOL``), so they coexist with other copies of the same protocol (such as
kurrentdbclient's) in one process.
"""
