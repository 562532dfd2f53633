"""The ``evstore`` command line: database lifecycle, appending, reading, following events
live (``tail``), persistent subscriptions, export and import.

It is built on the public façade only (:class:`evstore.AsyncEventStore`), like any other
program using evstore. It needs the ``cli`` extra: ``pip install 'evstore[cli]'``.

``evstore.cli.cli`` is the click group (for embedding or ``click.testing.CliRunner``);
``evstore.cli.main`` is the console script's entry point.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["cli", "main"]

_EXTRA = {"click", "rich"}


def __getattr__(name: str) -> Any:
    # Imported lazily so that `main` can explain a missing extra instead of a traceback.
    if name == "cli":
        from evstore.cli._commands import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Entry point of the ``evstore`` console script."""
    try:
        from evstore.cli._commands import cli
    except ModuleNotFoundError as exc:
        if exc.name not in _EXTRA:
            raise
        sys.stderr.write(
            f"error: the evstore command needs {exc.name}: pip install 'evstore[cli]'\n"
        )
        sys.exit(1)
    cli.main(prog_name="evstore")
