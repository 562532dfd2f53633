"""``export`` and ``import``: move a whole store through a file of JSON lines.

``export`` writes every event of ``$all`` in position order (format: :mod:`._records`).
``import`` replays such a file into an EMPTY store: each run of events of one stream that
share a ``created_at`` (an original append, or a part of one) becomes one append, with the
expected version set to the version before the run, and the original timestamp passed as
``created_at=``. Ids, types, payloads, metadata, correlation/causation ids, timestamps and
stream versions come out the same; ``$all`` positions too, unless the source had gaps (hard
deletes). The file is checked in full before the first write, so a malformed file, or one
whose streams skip versions, is refused without leaving half a store behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click

from evstore import AsyncEventStore, EventData
from evstore.cli._app import AppContext, CliError, pass_app, run, store_options
from evstore.cli._output import JsonLines, progress_bar
from evstore.cli._records import ImportedEvent, event_record, parse_event_record

__all__ = ["COMMANDS"]

_BATCH = 1000
"""Events per read while exporting, and the most events one import append carries."""


def _progress_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Show a progress bar on stderr [default: when stderr is a terminal].",
    )(command)


def _wants_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return sys.stderr.isatty()


@contextmanager
def _output(path: str) -> Iterator[IO[bytes]]:
    """stdout for ``-``; else a temporary file renamed onto ``path`` only on success."""
    if path == "-":
        stream = sys.stdout.buffer
        yield stream
        stream.flush()
        return
    target = Path(path)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@click.command(short_help="Write every event of $all as JSON lines.")
@click.option(
    "--output",
    "-o",
    default="-",
    show_default=True,
    help="File to write (- for stdout). Written under a temporary name, renamed when complete.",
)
@_progress_option
@store_options
@pass_app
def export(app: AppContext, output: str, progress: bool | None) -> None:
    """Write every event of $all as JSON lines (bytes payloads as base64)."""
    enabled = _wants_progress(progress)

    async def body(stream: IO[bytes]) -> int:
        writer = JsonLines(stream)
        exported = 0
        async with await app.readable_store() as store:
            # Export up to the end as it is now: a well-defined cut even while others append.
            last = (await store.stream_info("$all")).stream_version
            with progress_bar("exporting", last, enabled=enabled) as update:
                async for event in store.stream_all_forward(0, batch_size=_BATCH):
                    if event.position > last:
                        break
                    writer.write(event_record(event))
                    exported += 1
                    if exported % _BATCH == 0:
                        update(event.position)
        return exported

    with _output(output) as stream:
        exported = run(body(stream))
    click.echo(f"Exported {exported} event(s) from {app.display_url}.", err=True)


@dataclass
class _Plan:
    """What a checked import file holds."""

    events: int = 0
    versions: dict[str, int] = field(default_factory=dict)


def _records(source: IO[bytes]) -> Iterator[ImportedEvent]:
    source.seek(0)
    for number, line in enumerate(source, start=1):
        if line.strip():
            yield parse_event_record(line, f"line {number}")


def _check(source: IO[bytes]) -> _Plan:
    """Read the whole file once: every record well-formed, every stream gap-free.

    Raises:
        ValueError: the first problem, naming its line.
    """
    plan = _Plan()
    for number, record in enumerate(_records(source), start=1):
        previous = plan.versions.get(record.stream_id, 0)
        if record.stream_version != previous + 1:
            raise ValueError(
                f"event {number} ({record.event.event_id}): stream {record.stream_id!r} "
                f"goes from version {previous} to {record.stream_version}; events in between "
                "are missing from the file (links and hard-deleted events are not exported), "
                "so the stream versions cannot be reproduced"
            )
        plan.versions[record.stream_id] = record.stream_version
        plan.events += 1
    return plan


@contextmanager
def _input(path: str) -> Iterator[IO[bytes]]:
    """The file to import, seekable: stdin is spooled to a temporary file first."""
    if path != "-":
        with open(path, "rb") as stream:
            yield stream
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
        yield spool


async def _refuse_non_empty(store: AsyncEventStore, app: AppContext) -> None:
    if await store.read_all_streams_forward(0, 1):
        events = (await store.stream_info("$all")).stream_version
        raise CliError(
            f"refusing to import into {app.display_url}: it is not empty ($all is at "
            f"position {events}); import into a new database or run `evstore reset` first"
        )
    page = await store.paginate_streams(page_size=1)
    if page.total_entries > 1:  # $all is always listed
        raise CliError(
            f"refusing to import into {app.display_url}: it already has "
            f"{page.total_entries - 1} stream(s)"
        )


async def _replay(store: AsyncEventStore, source: IO[bytes], total: int, enabled: bool) -> int:
    batch: list[EventData] = []
    key: tuple[str, datetime] | None = None
    first_version = 0
    imported = 0
    with progress_bar("importing", total, enabled=enabled) as update:

        async def flush() -> None:
            nonlocal imported
            if key is None or not batch:
                return
            stream_id, created_at = key
            # The expected version pins each event to its original stream version: a
            # concurrent writer on the same stream makes the import fail, never drift.
            await store.append_to_stream(stream_id, first_version - 1, batch, created_at=created_at)
            imported += len(batch)
            update(imported)
            batch.clear()

        for record in _records(source):
            record_key = (record.stream_id, record.created_at)
            if record_key != key or len(batch) >= _BATCH:
                await flush()
                key = record_key
                first_version = record.stream_version
            batch.append(record.event)
        await flush()
    return imported


@click.command(name="import")
@click.argument("file", metavar="FILE|-")
@_progress_option
@store_options
@pass_app
def import_(app: AppContext, file: str, progress: bool | None) -> None:
    """Replay an export (FILE, or - for stdin) into an EMPTY store."""
    enabled = _wants_progress(progress)
    with _input(file) as source:
        plan = _check(source)

        async def body() -> int:
            async with app.store() as store:
                await _refuse_non_empty(store, app)
                return await _replay(store, source, plan.events, enabled)

        imported = run(body())
    click.echo(
        f"Imported {imported} event(s) in {len(plan.versions)} stream(s) into {app.display_url}."
    )


COMMANDS = (export, import_)
