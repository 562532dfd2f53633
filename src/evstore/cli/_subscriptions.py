"""``evstore subscriptions``: list persistent subscriptions, their parked events, delete them.

A group whose bare form lists (``evstore subscriptions`` = ``evstore subscriptions list``),
with ``parked``, ``replay-parked`` and ``delete`` beside ``list``. Everything goes through
the store's public subscription methods, so it sees what any process stored: checkpoints
and parked events live in the database, not in the process that subscribed.

Lag is how many event numbers the subscription still has to go: the stream's version (the
highest global position for ``$all``) minus the checkpoint. It counts event numbers, not
events the subscription will deliver (a selector may filter some), and is 0 for a stream
that does not exist (yet, or any more after a hard delete); for a soft-deleted stream it is
unknown (``null``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table

from evstore import (
    AsyncEventStore,
    RecordedEvent,
    StreamDeletedError,
    StreamNotFoundError,
    SubscriptionInfo,
)
from evstore.cli._app import AppContext, CliError, pass_app, run, store_options
from evstore.cli._lifecycle import confirm
from evstore.cli._output import (
    FORMATS,
    JsonLines,
    events_table,
    resolve_format,
    stdout_console,
)
from evstore.cli._records import event_record, iso_time

__all__ = ["COMMANDS", "subscription_record"]

ALL = "$all"
# Where the group's own --format/--json is kept for its subcommands (click's ctx.meta is
# shared by the whole invocation).
_FORMAT_KEY = "evstore.subscriptions.format"


def _output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--format jsonl|table`` (as elsewhere in the CLI) and its shorthand ``--json``."""
    command = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="JSON lines (the same as --format jsonl).",
    )(command)
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(FORMATS),
        default=None,
        help="Output format [default: table on a terminal, jsonl otherwise].",
    )(command)


def _chosen_format(output_format: str | None, as_json: bool) -> str | None:
    if as_json and output_format == "table":
        raise click.UsageError("--json and --format table contradict each other")
    return "jsonl" if as_json else output_format


def _resolve(output_format: str | None, as_json: bool) -> str:
    """This command's format, else the group's, else the terminal-dependent default."""
    chosen = _chosen_format(output_format, as_json)
    if chosen is None:
        chosen = click.get_current_context().meta.get(_FORMAT_KEY)
    return resolve_format(chosen)


def _time(moment: datetime) -> str:
    # Seconds are enough to tell subscriptions apart; the JSON record has microseconds.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def subscription_record(info: SubscriptionInfo, lag: int | None) -> dict[str, Any]:
    """The JSON-ready record of one subscription as ``list`` prints it."""
    return {
        "stream_id": info.stream_id,
        "subscription_name": info.subscription_name,
        "checkpoint": info.checkpoint,
        "lag": lag,
        "parked_count": info.parked_count,
        "created_at": iso_time(info.created_at),
    }


async def _head(store: AsyncEventStore, stream_id: str) -> int | None:
    """The stream's version ($all: highest position); 0 when missing, None when deleted."""
    try:
        return (await store.stream_info(stream_id)).stream_version
    except StreamNotFoundError:
        return 0
    except StreamDeletedError:
        return None


async def _records(store: AsyncEventStore) -> list[dict[str, Any]]:
    heads: dict[str, int | None] = {}
    records = []
    for info in await store.list_subscriptions():
        if info.stream_id not in heads:
            heads[info.stream_id] = await _head(store, info.stream_id)
        head = heads[info.stream_id]
        # Never negative: a stream hard-deleted and written again restarts its numbers.
        lag = None if head is None else max(0, head - info.checkpoint)
        records.append(subscription_record(info, lag))
    return records


def _subscriptions_table(records: list[dict[str, Any]]) -> Table:
    count = len(records)
    caption = f"{count} persistent subscription{'' if count == 1 else 's'}"
    if any(record["lag"] is None for record in records):
        caption += "; lag ? = stream deleted"
    table = Table(caption=caption)
    # Folded, never cut short: the stream and name are what `parked`/`delete` need.
    table.add_column("stream", overflow="fold")
    table.add_column("name", overflow="fold")
    table.add_column("checkpoint", justify="right")
    table.add_column("lag", justify="right")
    table.add_column("parked", justify="right")
    table.add_column("created_at (UTC)", no_wrap=True)
    for record in records:
        lag = record["lag"]
        table.add_row(
            record["stream_id"],
            record["subscription_name"],
            str(record["checkpoint"]),
            "?" if lag is None else str(lag),
            str(record["parked_count"]),
            _time(datetime.fromisoformat(record["created_at"])),
        )
    return table


async def _find(store: AsyncEventStore, stream: str, name: str) -> SubscriptionInfo:
    """The stored subscription (stream, name).

    Raises:
        CliError: there is none (the library would silently do nothing).
    """
    for info in await store.list_subscriptions():
        if info.stream_id == stream and info.subscription_name == name:
            return info
    raise CliError(f"no subscription {name!r} on {stream!r}; `evstore subscriptions` lists them")


class _OrderedGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        # list first, the destructive delete last: the order they are usually needed in.
        return list(self.commands)


@click.group(
    cls=_OrderedGroup,
    invoke_without_command=True,
    short_help="List persistent subscriptions; parked events; delete.",
)
@_output_options
@store_options
@click.pass_context
def subscriptions(ctx: click.Context, output_format: str | None, as_json: bool) -> None:
    """List the persistent subscriptions (with no COMMAND), show or replay their parked
    events, or delete one.

    STREAM is the subscribed stream, or '$all' for an all-streams subscription; NAME is the
    subscription's name. --url, --schema, --format and --json given here apply to the
    COMMAND too.
    """
    ctx.meta[_FORMAT_KEY] = _chosen_format(output_format, as_json)
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_command)


@subscriptions.command("list", short_help="List subscriptions: checkpoint, lag, parked (default).")
@_output_options
@store_options
@pass_app
def list_command(app: AppContext, output_format: str | None, as_json: bool) -> None:
    """List every persistent subscription: stream, name, checkpoint, lag (event numbers
    still to go: the stream's version, or $all's last position, minus the checkpoint),
    parked events and creation time."""
    fmt = _resolve(output_format, as_json)

    async def body() -> list[dict[str, Any]]:
        async with await app.readable_store() as store:
            return await _records(store)

    records = run(body())
    if fmt == "table":
        stdout_console().print(_subscriptions_table(records))
        return
    writer = JsonLines(sys.stdout.buffer)
    for record in records:
        writer.write(record)
    writer.flush()


@subscriptions.command(short_help="List a subscription's parked events.")
@click.argument("stream", metavar="STREAM|$all")
@click.argument("name")
@_output_options
@store_options
@pass_app
def parked(
    app: AppContext, stream: str, name: str, output_format: str | None, as_json: bool
) -> None:
    """List the parked events of subscription NAME on STREAM, oldest parked first; the
    number shown is the event number the subscription was given (the global position for
    '$all')."""
    fmt = _resolve(output_format, as_json)

    async def body() -> list[RecordedEvent]:
        async with await app.readable_store() as store:
            await _find(store, stream, name)
            return await store.parked_events(stream, name)

    events = run(body())
    if fmt == "table":
        title = f"parked events of {name!r} on {stream!r}"
        stdout_console().print(events_table(events, title))
        return
    writer = JsonLines(sys.stdout.buffer)
    for event in events:
        writer.write(event_record(event))
    writer.flush()


@subscriptions.command("replay-parked", short_help="Deliver a subscription's parked events again.")
@click.argument("stream", metavar="STREAM|$all")
@click.argument("name")
@store_options
@pass_app
def replay_parked(app: AppContext, stream: str, name: str) -> None:
    """Have subscription NAME on STREAM deliver its parked events again, ahead of new ones.

    A subscriber running in another process picks them up within a few of its poll
    intervals; with none running, they come first at the next subscribe. An event leaves
    the parked list once it is handled.
    """

    async def body() -> int:
        async with await app.readable_store() as store:
            info = await _find(store, stream, name)
            await store.replay_parked(stream, name)
            return info.parked_count

    count = run(body())
    plural = "" if count == 1 else "s"
    click.echo(f"replay of {count} parked event{plural} of {name!r} on {stream!r} requested")


@subscriptions.command(short_help="Delete a subscription and its parked events (asks first).")
@click.argument("stream", metavar="STREAM|$all")
@click.argument("name")
@click.option(
    "--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a TTY)."
)
@store_options
@pass_app
def delete(app: AppContext, stream: str, name: str, yes: bool) -> None:
    """Delete subscription NAME on STREAM: its checkpoint and parked events (asks first).

    Subscribing again under that name starts afresh from its start_from. Stop its
    subscribers first: one running in another process is not stopped, and carries on
    without a stored checkpoint.
    """

    async def find() -> SubscriptionInfo:
        async with await app.readable_store() as store:
            return await _find(store, stream, name)

    # Looked up before asking, so that a typo is an error rather than a question.
    info = run(find())
    confirm(app, f"delete subscription {name!r} on {stream!r} and its parked events", yes)

    async def body() -> None:
        async with await app.readable_store() as store:
            await store.delete_subscription(stream, name)

    run(body())
    plural = "" if info.parked_count == 1 else "s"
    click.echo(
        f"deleted subscription {name!r} on {stream!r} "
        f"(checkpoint {info.checkpoint}, {info.parked_count} parked event{plural})"
    )


COMMANDS = (subscriptions,)
