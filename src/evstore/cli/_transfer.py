"""``export`` and ``import``: move a whole store through a file of JSON lines.

``export`` writes every event of ``$all`` in position order, then what ``$all`` cannot tell:
the streams' links, soft deletions, and versions where entries are unreadable (formats:
:mod:`._records`, :mod:`._stream_records`; how: :mod:`._export`). ``import`` checks the whole
file (:mod:`._import_plan`), then replays it into an EMPTY store (:mod:`._replay`). Ids,
types, payloads, metadata, correlation/causation ids, timestamps, stream versions, event
numbers (links included) and deletions come out the same; ``$all`` positions too, unless the
source had gaps (hard deletes). A malformed file, or one whose streams cannot be reproduced,
is refused before the first write, without leaving half a store behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click

from evstore import AsyncEventStore
from evstore.cli._app import AppContext, CliError, pass_app, run, store_options
from evstore.cli._export import export_store
from evstore.cli._import_plan import ImportPlan, check_file
from evstore.cli._output import JsonLines, progress_bar
from evstore.cli._replay import Replay

__all__ = ["COMMANDS"]


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


@click.command(short_help="Back the store up as JSON lines (events, links, deletions).")
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
    """Write the store as JSON lines: every event of $all, then the streams' links and
    soft deletions (bytes payloads as base64).

    The links of soft-deleted streams cannot be read, so they are not exported (the summary
    on stderr counts them); the file keeps their places, and `evstore import` fills them
    with links nobody can read, so stream versions stay the same. Links to hard-deleted
    events, or hidden by $tb/$maxCount/$maxAge, come back as empty slots.
    """
    enabled = _wants_progress(progress)

    async def body(stream: IO[bytes]) -> str:
        writer = JsonLines(stream)
        async with await app.readable_store() as store:
            counts = await export_store(store, writer, enabled)
        return counts.summary(app.display_url)

    with _output(output) as stream:
        summary = run(body(stream))
    click.echo(summary, err=True)


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


async def _replay(app: AppContext, source: IO[bytes], plan: ImportPlan, enabled: bool) -> None:
    # Empty slots are made by hard-deleting scratch events: only then are hard deletes on.
    options = app.options(enable_hard_deletes=True) if plan.count("slots") else app.options()
    async with AsyncEventStore(app.url, **options) as store:
        await _refuse_non_empty(store, app)
        with progress_bar("importing", plan.operations, enabled=enabled) as update:
            await Replay(store, plan, update).run(source)


@click.command(name="import")
@click.argument("file", metavar="FILE|-")
@_progress_option
@store_options
@pass_app
def import_(app: AppContext, file: str, progress: bool | None) -> None:
    """Replay an export (FILE, or - for stdin) into an EMPTY store.

    Events, links and soft deletions come back with the same stream versions and event
    numbers. The whole file is checked before the first write. Deletion times, and the
    creation time of a stream that begins with a link, are the import's. Unreadable entries
    (see export) become links to scratch events the import hard-deletes at once, one $all
    position each, so positions after them shift.
    """
    enabled = _wants_progress(progress)
    with _input(file) as source:
        plan = check_file(source)
        run(_replay(app, source, plan, enabled))
    click.echo(
        f"Imported {plan.events} event(s) and {plan.links} link(s) in {len(plan.streams)} "
        f"stream(s), {plan.deleted} of them deleted, into {app.display_url}."
    )


COMMANDS = (export, import_)
