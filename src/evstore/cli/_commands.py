"""The assembled ``evstore`` group: every command module's commands, in help order."""

from __future__ import annotations

from evstore.cli import (
    _bench,
    _lifecycle,
    _serve,
    _streams,
    _subscriptions,
    _tail,
    _transfer,
)
from evstore.cli._app import cli

__all__ = ["cli"]

for _command in (
    *_lifecycle.COMMANDS,
    *_streams.COMMANDS,
    *_tail.COMMANDS,
    *_subscriptions.COMMANDS,
    *_transfer.COMMANDS,
    *_bench.COMMANDS,
    *_serve.COMMANDS,
):
    cli.add_command(_command)
