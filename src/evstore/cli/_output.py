"""How commands show results: JSON lines for programs, rich tables for people.

The default follows the terminal: a table when stdout is a TTY, JSON lines when it is a pipe
or a file, so ``evstore read x | jq`` works without flags.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

import click
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from evstore import AppendResult, Page, RecordedEvent, StreamInfo
from evstore.cli._records import dumps, info_record

__all__ = [
    "FORMATS",
    "JsonLines",
    "append_result_record",
    "echo_record",
    "events_table",
    "format_option",
    "info_table",
    "progress_bar",
    "resolve_format",
    "stdout_console",
    "streams_table",
]

FORMATS = ("jsonl", "table")
_PREVIEW = 60


def format_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--format jsonl|table`` option (default: table on a terminal, else jsonl)."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(FORMATS),
        default=None,
        help="Output format [default: table on a terminal, jsonl otherwise].",
    )(command)


def resolve_format(output_format: str | None) -> str:
    """The chosen format, or the terminal-dependent default."""
    if output_format is not None:
        return output_format
    return "table" if sys.stdout.isatty() else "jsonl"


def stdout_console() -> Console:
    """A rich console on the current stdout (click's, so test runners capture it)."""
    return Console(file=sys.stdout)


class JsonLines:
    """Writes records as JSON lines to a binary stream, flushing at the end."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, record: dict[str, Any]) -> None:
        self._stream.write(dumps(record))

    def flush(self) -> None:
        self._stream.flush()


def echo_record(record: dict[str, Any]) -> None:
    """Print one JSON line on stdout."""
    stream = sys.stdout.buffer
    stream.write(dumps(record))
    stream.flush()


def append_result_record(stream_id: str, count: int, result: AppendResult) -> dict[str, Any]:
    """What ``append`` prints: the ``AppendResult`` and what it was for."""
    return {
        "stream_id": stream_id,
        "events": count,
        "stream_version": result.stream_version,
        "position": result.position,
    }


def _preview(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if value is None:
        return ""
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def _time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def events_table(events: Iterable[RecordedEvent], title: str) -> Table:
    """A table of events: number, origin, position, type, time and a data preview."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("stream@version")
    table.add_column("position", justify="right")
    table.add_column("type")
    table.add_column("created_at (UTC)", no_wrap=True)
    table.add_column("data", overflow="fold")
    for event in events:
        table.add_row(
            str(event.event_number),
            f"{event.stream_id}@{event.stream_version}",
            str(event.position),
            event.event_type,
            _time(event.created_at),
            _preview(event.data),
        )
    return table


def streams_table(page: Page[StreamInfo]) -> Table:
    """A table of one page of streams, its caption saying which page of how many."""
    table = Table(
        caption=(
            f"page {page.page_number} of {page.total_pages}, {page.total_entries} stream(s) in all"
        ),
    )
    table.add_column("stream")
    table.add_column("version", justify="right")
    table.add_column("created_at (UTC)")
    table.add_column("deleted_at (UTC)")
    table.add_column("status")
    for info in page.entries:
        table.add_row(
            info.stream_id,
            str(info.stream_version),
            _time(info.created_at),
            _time(info.deleted_at),
            info.status,
        )
    return table


def info_table(info: StreamInfo) -> Table:
    """A two-column table of one stream's info."""
    table = Table(show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in info_record(info).items():
        table.add_row(key, "" if value is None else str(value))
    return table


@contextmanager
def progress_bar(
    description: str, total: int | None, *, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields ``update(completed)``. A no-op when not enabled."""
    if not enabled:
        yield lambda _completed: None
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    console = Console(file=sys.stderr)
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(description, total=total)

        def update(completed: int) -> None:
            progress.update(task, completed=completed)

        yield update
        # Gaps left by hard deletes mean the last update may fall short of the total.
        if total is not None:
            progress.update(task, completed=total)
