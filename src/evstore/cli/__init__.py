"""The ``evstore`` command line: database lifecycle, appending, reading, export and import.

It is built on the public façade only (:class:`evstore.AsyncEventStore`), like any other
program using evstore. Needs the ``cli`` extra: ``pip install 'evstore[cli]'``.
"""

from __future__ import annotations

from evstore.cli import _lifecycle, _streams, _transfer
from evstore.cli._app import cli

__all__ = ["cli", "main"]

for _command in (*_lifecycle.COMMANDS, *_streams.COMMANDS, *_transfer.COMMANDS):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``evstore`` console script."""
    cli.main(prog_name="evstore")
