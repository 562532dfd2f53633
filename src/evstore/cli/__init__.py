"""The ``evstore`` command line: database lifecycle, appending, reading, export and import.

It is built on the public façade only (:class:`evstore.AsyncEventStore`), like any other
program using evstore. Needs the ``cli`` extra: ``pip install 'evstore[cli]'``.
"""

from __future__ import annotations

import os
import sys

from evstore.cli import _lifecycle, _streams, _transfer
from evstore.cli._app import cli

__all__ = ["cli", "main"]

for _command in (*_lifecycle.COMMANDS, *_streams.COMMANDS, *_transfer.COMMANDS):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``evstore`` console script."""
    try:
        cli.main(prog_name="evstore")
    except BrokenPipeError:
        # The reader went away (`evstore read x | head`): not an error worth a traceback.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
