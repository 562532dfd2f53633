"""The ``evstore`` click group: global options, the store a command works on, error handling.

Every failure a user can cause (a missing stream, a wrong expected version, bad JSON, an
unreadable file, an unreachable database) ends as ONE line on stderr, ``error: …``, and exit
status 1; click's own usage errors keep exit status 2. Nothing below this module prints a
traceback for those.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

import evstore
from evstore import AsyncEventStore, EventStoreError

__all__ = [
    "DEFAULT_URL",
    "AppContext",
    "CliError",
    "cli",
    "pass_app",
    "run",
    "store_options",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_URL = "sqlite:///evstore.db"
"""The URL used when neither ``--url`` nor ``EVSTORE_URL`` names one (as in the library)."""


class CliError(click.ClickException):
    """A failure reported as one ``error: …`` line on stderr, exit status 1."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        # One line, always: multi-line driver messages would break `2>` log parsing.
        super().__init__(" ".join(message.split()) or "unknown error")

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return text or type(exc).__name__


class _EvstoreGroup(click.Group):
    """A group that turns the errors a user can cause into :class:`CliError`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        # Registration order (lifecycle, streams, tail/subscriptions, transfer) reads better
        # than alphabetical.
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader left (`evstore read x | head`): click exits quietly on EPIPE.
            raise
        except (EventStoreError, ValueError, TypeError, OSError) as exc:
            raise CliError(_describe(exc)) from exc


@dataclass
class AppContext:
    """Where the command's store lives; set by the global options, overridable per command."""

    url: str = DEFAULT_URL
    schema: str | None = None

    def options(self, **extra: Any) -> dict[str, Any]:
        """Keyword options for ``AsyncEventStore`` and its lifecycle classmethods."""
        options = dict(extra)
        if self.schema is not None:
            options["schema"] = self.schema
        return options

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages and prompts."""
        return redact_url(self.url)

    def store(self) -> AsyncEventStore:
        """A store that writes (tables are created on open when missing)."""
        return AsyncEventStore(self.url, **self.options())

    async def readable_store(self) -> AsyncEventStore:
        """A store for commands that only read: they never create tables as a side effect.

        Raises:
            CliError: the database holds no evstore tables.
        """
        if await AsyncEventStore.schema_version(self.url, **self.options()) is None:
            raise CliError(
                f"{self.display_url} holds no event store; create one with `evstore init`"
            )
        return AsyncEventStore(self.url, **self.options(auto_init=False))


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one command's async body on a fresh event loop."""
    return asyncio.run(coroutine)


def _set_url(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(AppContext).url = value


def _set_schema(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(AppContext).schema = value


def store_options(command: F) -> F:
    """Let a command take ``--url``/``--schema`` after its name too (they win over global)."""
    command = click.option(
        "--schema",
        callback=_set_schema,
        expose_value=False,
        help="PostgreSQL schema (overrides the global --schema).",
    )(command)
    return click.option(
        "--url",
        callback=_set_url,
        expose_value=False,
        help="Store URL (overrides the global --url).",
    )(command)


@click.group(cls=_EvstoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="EVSTORE_URL",
    show_envvar=True,
    default=DEFAULT_URL,
    show_default=True,
    help="Store URL: memory://name, sqlite:///file.db, postgresql://user@host/db.",
)
@click.option(
    "--schema",
    envvar="EVSTORE_SCHEMA",
    show_envvar=True,
    default=None,
    help="PostgreSQL schema holding the store (default public).",
)
@click.version_option(evstore.__version__, "--version", prog_name="evstore")
@click.pass_context
def cli(ctx: click.Context, url: str, schema: str | None) -> None:
    """Manage, inspect and follow an evstore event store.

    The store is named by --url (or EVSTORE_URL). Errors print one line and exit non-zero.
    """
    ctx.obj = AppContext(url=url, schema=schema)
