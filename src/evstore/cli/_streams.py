"""Commands on streams: ``append``, ``read``, ``streams`` and ``info``."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import click
import orjson

from evstore import (
    ANY_VERSION,
    NO_STREAM,
    STREAM_EXISTS,
    AsyncEventStore,
    EventData,
    ExpectedVersion,
    RecordedEvent,
)
from evstore.cli._app import AppContext, pass_app, run, store_options
from evstore.cli._output import (
    JsonLines,
    append_result_record,
    echo_record,
    events_table,
    format_option,
    info_table,
    resolve_format,
    stdout_console,
    streams_table,
)
from evstore.cli._records import event_record, info_record, loads_object, new_event_from

__all__ = ["COMMANDS"]

ALL = "$all"
_BATCH = 1000

# Fields an --stdin line may carry. The informative fields of `read` output are accepted
# (and ignored) so that `evstore read a | evstore append b --stdin` needs no reshaping.
_STDIN_FIELDS = {
    "event_type",
    "data",
    "metadata",
    "event_id",
    "correlation_id",
    "causation_id",
    "data_encoding",
    "metadata_encoding",
}
_IGNORED_FIELDS = {"event_number", "stream_id", "stream_version", "position", "created_at"}


_EXPECTED_NAMES: dict[str, ExpectedVersion] = {
    "any": ANY_VERSION,
    "any_version": ANY_VERSION,
    "no_stream": NO_STREAM,
    "stream_exists": STREAM_EXISTS,
}


# Callbacks rather than click.ParamType subclasses: ParamType became generic in click 8.2,
# and a callback reads the same on every click version the `cli` extra allows.
def _expected_version(
    _ctx: click.Context, _param: click.Parameter, value: str
) -> ExpectedVersion | int:
    """``any``, ``no_stream``, ``stream_exists`` or a non-negative integer."""
    text = value.strip().lower()
    if text in _EXPECTED_NAMES:
        return _EXPECTED_NAMES[text]
    if text.isdigit():
        return int(text)
    raise click.BadParameter(
        f"{value!r} is not any, no_stream, stream_exists or a non-negative integer"
    )


def _json(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    """The parsed JSON text (``None`` stays ``None``)."""
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"{value!r} is not valid JSON ({exc})") from None


def _events_from_stdin() -> list[EventData]:
    events = []
    stdin = sys.stdin.buffer
    for number, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        where = f"stdin line {number}"
        record = loads_object(line, where)
        unknown = sorted(set(record) - _STDIN_FIELDS - _IGNORED_FIELDS)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
        record.setdefault("data", {})
        events.append(new_event_from(record, where))
    return events


@click.command(short_help="Append an event, or JSON lines from stdin.")
@click.argument("stream")
@click.argument("event_type", required=False)
@click.argument("data", metavar="[DATA_JSON]", required=False, callback=_json)
@click.option(
    "--expected-version",
    "-e",
    callback=_expected_version,
    default="any",
    metavar="any|no_stream|stream_exists|N",
    show_default=True,
    help="What the stream must be at: any, no_stream, stream_exists or its version N.",
)
@click.option("--metadata", callback=_json, default=None, help="Event metadata as JSON.")
@click.option("--event-id", default=None, help="The event's UUID (default: a fresh one).")
@click.option("--correlation-id", default=None, help="Correlation UUID.")
@click.option("--causation-id", default=None, help="Causation UUID.")
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help='Read events as JSON lines {"event_type","data","metadata","event_id"} from stdin '
    "and append them all in one atomic append.",
)
@store_options
@pass_app
def append(
    app: AppContext,
    stream: str,
    event_type: str | None,
    data: Any,
    expected_version: ExpectedVersion | int,
    metadata: Any,
    event_id: str | None,
    correlation_id: str | None,
    causation_id: str | None,
    from_stdin: bool,
) -> None:
    """Append an event to STREAM (DATA_JSON defaults to {}); prints the new version."""
    if from_stdin:
        given = [event_type, data, metadata, event_id, correlation_id, causation_id]
        if any(value is not None for value in given):
            raise click.UsageError("--stdin takes the events from stdin only; give no EVENT_TYPE")
        events = _events_from_stdin()
    else:
        if event_type is None:
            raise click.UsageError("missing EVENT_TYPE (or use --stdin)")
        events = [
            EventData(
                event_type,
                {} if data is None else data,
                metadata,
                event_id=event_id,
                correlation_id=correlation_id,
                causation_id=causation_id,
            )
        ]

    async def body() -> None:
        async with app.store() as store:
            result = await store.append_to_stream(stream, expected_version, events)
        echo_record(append_result_record(stream, len(events), result))

    run(body())


def _events(
    store: AsyncEventStore, stream: str, start: int, batch: int, forward: bool
) -> AsyncIterator[RecordedEvent]:
    if stream == ALL:
        if forward:
            return store.stream_all_forward(start, batch_size=batch)
        return store.stream_all_backward(start, batch_size=batch)
    if forward:
        return store.stream_forward(stream, start, batch_size=batch)
    return store.stream_backward(stream, start, batch_size=batch)


@click.command()
@click.argument("stream", metavar="STREAM|$all")
@click.option("--forward/--backward", default=True, show_default=True, help="Reading direction.")
@click.option(
    "--start",
    type=click.IntRange(min=-1),
    default=None,
    help="First event number (or $all position) to read [default: 0 forward, -1 backward "
    "= the end].",
)
@click.option(
    "--count", type=click.IntRange(min=0), default=None, help="At most this many [default: all]."
)
@format_option
@store_options
@pass_app
def read(
    app: AppContext,
    stream: str,
    forward: bool,
    start: int | None,
    count: int | None,
    output_format: str | None,
) -> None:
    """Print the events of STREAM, or of the global log with '$all'."""
    fmt = resolve_format(output_format)
    first = start if start is not None else (0 if forward else -1)
    batch = _BATCH if count is None else max(1, min(count, _BATCH))
    writer = JsonLines(sys.stdout.buffer)
    collected: list[RecordedEvent] = []

    async def body() -> None:
        async with await app.readable_store() as store:
            if count == 0:
                # Nothing to print, but a missing or deleted stream must still say so.
                if stream == ALL:
                    await store.stream_info(ALL)
                else:
                    await store.read_stream_forward(stream, 0, 0)
                return
            seen = 0
            async for event in _events(store, stream, first, batch, forward):
                if fmt == "jsonl":
                    writer.write(event_record(event))
                else:
                    collected.append(event)
                seen += 1
                if count is not None and seen >= count:
                    break

    try:
        run(body())
    finally:
        writer.flush()
    if fmt == "table":
        direction = "forward" if forward else "backward"
        stdout_console().print(events_table(collected, f"{stream} ({direction})"))


@click.command()
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--page-size", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--search", default=None, help="Only streams whose id contains this text.")
@click.option(
    "--sort-by",
    type=click.Choice(["created_at", "stream_id", "stream_version", "deleted_at", "status"]),
    default="created_at",
    show_default=True,
)
@click.option("--sort-dir", type=click.Choice(["asc", "desc"]), default="asc", show_default=True)
@format_option
@store_options
@pass_app
def streams(
    app: AppContext,
    page: int,
    page_size: int,
    search: str | None,
    sort_by: Any,
    sort_dir: Any,
    output_format: str | None,
) -> None:
    """List one page of the streams ($all included)."""

    async def body() -> Any:
        async with await app.readable_store() as store:
            return await store.paginate_streams(
                page_size=page_size,
                page_number=page,
                search=search,
                sort_by=sort_by,
                sort_dir=sort_dir,
            )

    result = run(body())
    if resolve_format(output_format) == "table":
        stdout_console().print(streams_table(result))
        return
    writer = JsonLines(sys.stdout.buffer)
    for info in result.entries:
        writer.write(info_record(info))
    writer.flush()


@click.command(short_help="Show a stream's version and dates ($all too).")
@click.argument("stream", metavar="STREAM|$all")
@format_option
@store_options
@pass_app
def info(app: AppContext, stream: str, output_format: str | None) -> None:
    """Show a stream's version, creation and deletion ('$all' works too)."""

    async def body() -> Any:
        async with await app.readable_store() as store:
            return await store.stream_info(stream)

    result = run(body())
    if resolve_format(output_format) == "table":
        stdout_console().print(info_table(result))
    else:
        echo_record(info_record(result))


COMMANDS = (append, read, streams, info)
