"""Database lifecycle commands: ``create``, ``init``, ``migrate``, ``drop``, ``reset``.

Each calls the classmethod of the same name on :class:`evstore.AsyncEventStore` and prints
the message it returns. ``drop`` and ``reset`` destroy data, so they ask first; without a
terminal to ask on they refuse unless ``--yes`` says the caller means it (a script or CI job
must never destroy a store because its stdin happened to be empty or redirected).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from typing import Any

import click

from evstore import AsyncEventStore
from evstore.cli._app import AppContext, CliError, pass_app, run, store_options

__all__ = ["COMMANDS"]

_Action = Callable[..., Coroutine[Any, Any, str]]


def _perform(app: AppContext, action: _Action) -> None:
    click.echo(run(action(app.url, **app.options())))


@click.command(short_help="Create the database (and schema) if missing.")
@store_options
@pass_app
def create(app: AppContext) -> None:
    """Create the database (PostgreSQL: and the schema) if it is missing."""
    _perform(app, AsyncEventStore.create)


@click.command()
@store_options
@pass_app
def init(app: AppContext) -> None:
    """Create evstore's tables if they are missing."""
    _perform(app, AsyncEventStore.init)


@click.command(short_help="Upgrade the tables to this version's schema.")
@store_options
@pass_app
def migrate(app: AppContext) -> None:
    """Upgrade evstore's tables to this version's schema (safe to run concurrently)."""
    _perform(app, AsyncEventStore.migrate)


def confirm(app: AppContext, what: str, yes: bool) -> None:
    """Ask before destroying ``what``; refuse when there is no terminal and no ``--yes``.

    Raises:
        CliError: no terminal on stdin and ``yes`` is false.
        click.Abort: the user answered no.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError(
            f"refusing to {what} at {app.display_url} without confirmation: "
            "stdin is not a terminal; pass --yes to confirm"
        )
    click.confirm(f"This will {what} at {app.display_url}. Continue?", abort=True)


def _yes_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a TTY)."
    )(command)


@click.command()
@store_options
@_yes_option
@pass_app
def drop(app: AppContext, yes: bool) -> None:
    """Remove evstore's tables, and every event in them (asks first)."""
    confirm(app, "drop the event store and all its events", yes)
    _perform(app, AsyncEventStore.drop)


@click.command(short_help="Empty the store, keep the tables (asks first).")
@store_options
@_yes_option
@pass_app
def reset(app: AppContext, yes: bool) -> None:
    """Delete every stream, event, subscription and snapshot; keep the tables (asks first)."""
    confirm(app, "delete every stream, event, subscription and snapshot", yes)
    _perform(app, AsyncEventStore.reset)


COMMANDS = (create, init, migrate, drop, reset)
