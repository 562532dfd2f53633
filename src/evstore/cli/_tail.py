"""``evstore tail``: follow a stream (or ``$all``) live, like ``tail -f`` on a log.

It is built on a *transient* persistent subscription: one reader that catches up on the
history and then follows new events by event number, so the switch from history to live
has no gap and no duplicate (a transient subscription keeps no stored checkpoint and takes
no lock, so any number of ``tail`` processes can follow the same stream). Every batch is
printed, flushed (so ``evstore tail s | grep X`` shows lines as they come) and then
acknowledged, which lets the subscription hand out the next one.

SIGINT (Ctrl-C) and SIGTERM end it cleanly, exit status 0.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any, Literal

import click
import orjson

from evstore import AsyncEventStore, RecordedEvent, StreamNotFoundError, Subscription
from evstore.cli._app import AppContext, pass_app, run, store_options
from evstore.cli._records import dumps, event_record

__all__ = ["COMMANDS", "event_line"]

ALL = "$all"
# Only a key in this process's subscription registry: a transient subscription stores no
# row, so concurrent tails (in this or other processes) never meet each other.
_SUBSCRIPTION_NAME = "evstore-tail"
_BUFFER_SIZE = 100
_MAX_SIZE = 1000

StartFrom = Literal["origin", "current"] | int


def _start_from(_ctx: click.Context, _param: click.Parameter, value: str) -> StartFrom:
    """``origin``, ``current`` or a non-negative integer."""
    text = value.strip().lower()
    if text == "origin":
        return "origin"
    if text == "current":
        return "current"
    if text.isascii() and text.isdigit():
        return int(text)
    raise click.BadParameter(f"{value!r} is not origin, current or a non-negative integer")


def _compact(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "base64:" + base64.b64encode(bytes(value)).decode("ascii")
    # default=str: payloads from a serializer with registered types show as their text.
    return orjson.dumps(value, default=str).decode()


def event_line(event: RecordedEvent) -> str:
    """One event as ``tail`` prints it: ``position stream@version type data`` and a newline."""
    return (
        f"{event.position} {event.stream_id}@{event.stream_version} "
        f"{event.event_type} {_compact(event.data)}\n"
    )


def _writer(stream: IO[bytes], as_json: bool) -> Callable[[list[RecordedEvent]], None]:
    def write(batch: list[RecordedEvent]) -> None:
        if as_json:
            stream.write(b"".join(dumps(event_record(event)) for event in batch))
        else:
            stream.write("".join(event_line(event) for event in batch).encode())
        # Per batch, not per process exit: a pipe would otherwise hold lines for minutes.
        stream.flush()

    return write


class _WarningLines(logging.Handler):
    """Shows evstore's log records as one-line ``warning: …`` on stderr, no traceback.

    A failure of the subscription itself (its stream deleted while followed) is logged by
    the engine with a traceback and then raised by ``receive``; the command reports it as
    its one ``error:`` line, so that log record is dropped here.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR and record.name.startswith("evstore.subscriptions"):
            return
        try:
            message = " ".join(record.getMessage().split())
        except Exception:  # a broken log call must not end the tail
            self.handleError(record)
            return
        click.echo(f"warning: {message}", err=True)


@contextlib.contextmanager
def _library_logs_as_warnings() -> Iterator[None]:
    """While tailing, evstore's log records go to :class:`_WarningLines` only."""
    logger = logging.getLogger("evstore")
    handler = _WarningLines()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` instead of killing the process mid-batch."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            # Not the main thread, or no loop signal support (Windows): Ctrl-C then comes
            # as KeyboardInterrupt, which the command also treats as a clean stop.
            continue
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _announce(stream: str, after: int, exists: bool) -> None:
    # On stderr, so that stdout carries events only; it also tells a watching program
    # (or test) that events appended from now on will be shown.
    where = "position" if stream == ALL else "event"
    note = "" if exists else f" ({stream!r} does not exist yet)"
    click.echo(f"following {stream!r} after {where} {after}{note}; Ctrl-C to stop", err=True)


async def _follow(
    subscription: Subscription,
    stop: asyncio.Event,
    write: Callable[[list[RecordedEvent]], None],
) -> None:
    """Print and acknowledge batches until ``stop`` is set or the subscription ends."""
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            # receive() is cancellation-safe: a batch is only taken when it is returned.
            receiving = asyncio.ensure_future(subscription.receive())
            await asyncio.wait((receiving, stopped), return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving
                return
            batch = receiving.result()  # raises the error that ended the subscription
            if batch is None:
                return
            write(batch)
            await subscription.ack(batch)
    finally:
        stopped.cancel()


async def _head(store: AsyncEventStore, stream: str) -> int | None:
    """The stream's version ($all: its highest position); None when it does not exist.

    Raises:
        StreamDeletedError: the stream is soft-deleted (an error now rather than later).
    """
    try:
        return (await store.stream_info(stream)).stream_version
    except StreamNotFoundError:
        return None  # fine: the subscription waits for its first event


async def _tail(app: AppContext, stream: str, start_from: StartFrom, as_json: bool) -> None:
    stop = asyncio.Event()
    with _stop_on_signals(stop), _library_logs_as_warnings():
        async with await app.readable_store() as store:
            head = await _head(store, stream)
            # "current" resolved here, as the library would resolve it, so that the start
            # is a known number for the banner the moment the subscription exists.
            after: int
            if start_from == "origin":
                after = 0
            elif start_from == "current":
                after = head or 0
            else:
                after = start_from
            request = store.subscribe_to_stream(
                stream,
                _SUBSCRIPTION_NAME,
                transient=True,
                start_from=after,
                buffer_size=_BUFFER_SIZE,
                max_size=_MAX_SIZE,
            )
            async with request as subscription:
                _announce(stream, after, exists=head is not None)
                await _follow(subscription, stop, _writer(sys.stdout.buffer, as_json))


@click.command(short_help="Follow a stream or $all live (Ctrl-C to stop).")
@click.argument("stream", metavar="[STREAM|$all]", default=ALL)
@click.option(
    "--from",
    "start_from",
    callback=_start_from,
    default="current",
    show_default=True,
    metavar="origin|current|N",
    help="origin: the whole history, then live; current: only events appended from now "
    "on; N: events after event number N (the stream's version, or the global position "
    "for $all).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON lines (the records of `evstore read`) instead of text lines.",
)
@store_options
@pass_app
def tail(app: AppContext, stream: str, start_from: StartFrom, as_json: bool) -> None:
    """Print the events of STREAM (default: '$all', every stream) as they are appended.

    Each event is one line: its global position, stream@version, type and data as compact
    JSON (--json: one JSON object per line). Lines are flushed as they come, so the output
    can be piped. A stream that does not exist yet is waited for; a deleted one is an
    error. Ctrl-C (SIGINT) or SIGTERM stops it with exit status 0.

    \b
    Examples:
      evstore tail order-1 --from origin
      evstore tail '$all' --json | jq .event_type
    """
    # Ctrl-C before the signal handlers were installed (or where the loop cannot install
    # them) arrives as KeyboardInterrupt: as clean a stop as a later one.
    with contextlib.suppress(KeyboardInterrupt):
        run(_tail(app, stream, start_from, as_json))


COMMANDS = (tail,)
