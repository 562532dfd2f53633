"""``EventStore``: the blocking twin of :class:`AsyncEventStore`.

It runs one ``AsyncEventStore`` on a private event loop in a daemon thread and waits for
each call. There is a single source of truth (the async engine); the cost is one thread
hop per call, a few tens of microseconds, small beside any database round trip. The
alternative, generating sync code from the async source as psycopg does, would need a
sync driver for every backend and a second copy of the group-commit writers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack
from uuid import UUID

from evstore._store import AsyncEventStore as _Async
from evstore._types import (
    ANY_VERSION,
    AppendResult,
    EventData,
    ExpectedVersion,
    Page,
    RecordedEvent,
    SnapshotData,
    StreamInfo,
)
from evstore.backends.base import SortBy, SortDir
from evstore.serialization import Serializer
from evstore.subscriptions._handles import SubscriptionInfo
from evstore.subscriptions._options import PersistentOptions
from evstore.subscriptions._sync import SyncSubscription, SyncTransientSubscription

__all__ = ["EventStore"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running in a daemon thread, for blocking callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="evstore-sync", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], *, cancel_on_interrupt: bool = False) -> T:
        """Run ``coro`` on the loop and wait for it.

        With ``cancel_on_interrupt``, an exception raised in the waiting thread (Ctrl-C)
        cancels the coroutine instead of leaving it running unseen: for waits that take
        something (a subscription's next batch), which must stay where it was.
        """
        if self.loop.is_closed():
            coro.close()
            raise RuntimeError("the EventStore is closed")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            if cancel_on_interrupt:
                future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def _run_once(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from blocking code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    worker = _LoopThread()
    try:
        return worker.run(coro)
    finally:
        worker.stop()


async def _awaited(awaitable: Any) -> Any:
    """A coroutine awaiting ``awaitable`` (the loop thread runs coroutines only)."""
    return await awaitable


class EventStore:
    """The blocking twin of :class:`AsyncEventStore`: same options, same method names.

    Use ``with EventStore(url) as store:``; every method blocks until done. Iterators
    (``stream_forward`` and friends) yield events one by one, reading in batches.
    """

    def __init__(self, url: str | None = None, **options: Any) -> None:
        self._async = _Async(url, **options)
        self._thread: _LoopThread | None = None
        self._closed = False
        # Two threads making their first call at once must not start two loops.
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The URL this store was opened on."""
        return self._async.url

    @property
    def serializer(self) -> Serializer:
        """The store's serializer."""
        return self._async.serializer

    def _call(self, coro: Coroutine[Any, Any, T], *, cancel_on_interrupt: bool = False) -> T:
        thread = self._thread
        if thread is None:
            try:
                thread = self.open()._thread
            except BaseException:
                coro.close()
                raise
        assert thread is not None
        return thread.run(coro, cancel_on_interrupt=cancel_on_interrupt)

    def open(self) -> Self:
        """Connect (see :meth:`AsyncEventStore.open`). Idempotent until closed.

        Raises:
            RuntimeError: the store was closed; a closed store stays closed.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the EventStore is closed")
            if self._thread is None:
                thread = _LoopThread()
                try:
                    thread.run(self._async.open())
                except BaseException:
                    thread.stop()
                    raise
                self._thread = thread
        return self

    def close(self) -> None:
        """Finish pending writes, disconnect and stop the private loop. Idempotent."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            try:
                thread.run(self._async.close())
            finally:
                thread.stop()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        thread = getattr(self, "_thread", None)
        if thread is not None and not thread.loop.is_closed():
            thread.loop.call_soon_threadsafe(thread.loop.stop)

    # -- database lifecycle ----------------------------------------------------------

    @classmethod
    def create(cls, url: str | None = None, **options: Any) -> str:
        """See :meth:`AsyncEventStore.create`."""
        return _run_once(_Async.create(url, **options))

    @classmethod
    def init(cls, url: str | None = None, **options: Any) -> str:
        """See :meth:`AsyncEventStore.init`."""
        return _run_once(_Async.init(url, **options))

    @classmethod
    def migrate(cls, url: str | None = None, **options: Any) -> str:
        """See :meth:`AsyncEventStore.migrate`."""
        return _run_once(_Async.migrate(url, **options))

    @classmethod
    def drop(cls, url: str | None = None, **options: Any) -> str:
        """See :meth:`AsyncEventStore.drop`."""
        return _run_once(_Async.drop(url, **options))

    @classmethod
    def reset(cls, url: str | None = None, **options: Any) -> str:
        """See :meth:`AsyncEventStore.reset`."""
        return _run_once(_Async.reset(url, **options))

    @classmethod
    def schema_version(cls, url: str | None = None, **options: Any) -> str | None:
        """See :meth:`AsyncEventStore.schema_version`."""
        return _run_once(_Async.schema_version(url, **options))

    # -- writing ---------------------------------------------------------------------

    def append_to_stream(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        events: Sequence[EventData],
        *,
        created_at: datetime | None = None,
    ) -> AppendResult:
        """See :meth:`AsyncEventStore.append_to_stream`."""
        return self._call(
            self._async.append_to_stream(stream_id, expected_version, events, created_at=created_at)
        )

    def link_to_stream(
        self,
        stream_id: str,
        expected_version: ExpectedVersion | int,
        events_or_event_ids: Sequence[RecordedEvent | UUID | str],
    ) -> AppendResult:
        """See :meth:`AsyncEventStore.link_to_stream`."""
        return self._call(
            self._async.link_to_stream(stream_id, expected_version, events_or_event_ids)
        )

    def delete_stream(
        self, stream_id: str, expected_version: ExpectedVersion | int, *, hard: bool = False
    ) -> None:
        """See :meth:`AsyncEventStore.delete_stream`."""
        self._call(self._async.delete_stream(stream_id, expected_version, hard=hard))

    # -- reading ---------------------------------------------------------------------

    def read_stream_forward(
        self, stream_id: str, start_version: int = 0, count: int = 1000
    ) -> list[RecordedEvent]:
        """See :meth:`AsyncEventStore.read_stream_forward`."""
        return self._call(self._async.read_stream_forward(stream_id, start_version, count))

    def read_stream_backward(
        self, stream_id: str, start_version: int = -1, count: int = 1000
    ) -> list[RecordedEvent]:
        """See :meth:`AsyncEventStore.read_stream_backward`."""
        return self._call(self._async.read_stream_backward(stream_id, start_version, count))

    def read_all_streams_forward(
        self, start_position: int = 0, count: int = 1000
    ) -> list[RecordedEvent]:
        """See :meth:`AsyncEventStore.read_all_streams_forward`."""
        return self._call(self._async.read_all_streams_forward(start_position, count))

    def read_all_streams_backward(
        self, start_position: int = -1, count: int = 1000
    ) -> list[RecordedEvent]:
        """See :meth:`AsyncEventStore.read_all_streams_backward`."""
        return self._call(self._async.read_all_streams_backward(start_position, count))

    def _iterate(self, events: AsyncIterator[RecordedEvent]) -> Iterator[RecordedEvent]:
        try:
            while True:
                try:
                    yield self._call(anext(events))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            if self._thread is not None:
                self._call(events.aclose())  # type: ignore[attr-defined]

    def stream_forward(
        self, stream_id: str, start_version: int = 0, *, batch_size: int = 1000
    ) -> Iterator[RecordedEvent]:
        """See :meth:`AsyncEventStore.stream_forward`."""
        return self._iterate(
            self._async.stream_forward(stream_id, start_version, batch_size=batch_size)
        )

    def stream_backward(
        self, stream_id: str, start_version: int = -1, *, batch_size: int = 1000
    ) -> Iterator[RecordedEvent]:
        """See :meth:`AsyncEventStore.stream_backward`."""
        return self._iterate(
            self._async.stream_backward(stream_id, start_version, batch_size=batch_size)
        )

    def stream_all_forward(
        self, start_position: int = 0, *, batch_size: int = 1000
    ) -> Iterator[RecordedEvent]:
        """See :meth:`AsyncEventStore.stream_all_forward`."""
        return self._iterate(self._async.stream_all_forward(start_position, batch_size=batch_size))

    def stream_all_backward(
        self, start_position: int = -1, *, batch_size: int = 1000
    ) -> Iterator[RecordedEvent]:
        """See :meth:`AsyncEventStore.stream_all_backward`."""
        return self._iterate(self._async.stream_all_backward(start_position, batch_size=batch_size))

    def stream_info(self, stream_id: str) -> StreamInfo:
        """See :meth:`AsyncEventStore.stream_info`."""
        return self._call(self._async.stream_info(stream_id))

    def paginate_streams(
        self,
        *,
        page_size: int = 50,
        page_number: int = 1,
        search: str | None = None,
        sort_by: SortBy = "created_at",
        sort_dir: SortDir = "asc",
    ) -> Page[StreamInfo]:
        """See :meth:`AsyncEventStore.paginate_streams`."""
        return self._call(
            self._async.paginate_streams(
                page_size=page_size,
                page_number=page_number,
                search=search,
                sort_by=sort_by,
                sort_dir=sort_dir,
            )
        )

    def get_stream_metadata(self, stream_id: str) -> dict[str, Any]:
        """See :meth:`AsyncEventStore.get_stream_metadata`."""
        return self._call(self._async.get_stream_metadata(stream_id))

    def set_stream_metadata(
        self,
        stream_id: str,
        metadata: dict[str, Any],
        expected_version: ExpectedVersion | int = ANY_VERSION,
    ) -> AppendResult:
        """See :meth:`AsyncEventStore.set_stream_metadata`."""
        return self._call(self._async.set_stream_metadata(stream_id, metadata, expected_version))

    # -- subscriptions ---------------------------------------------------------------

    def subscribe(
        self,
        stream_id: str,
        *,
        selector: Callable[[RecordedEvent], Any] | None = None,
        mapper: Callable[[RecordedEvent], Any] | None = None,
    ) -> SyncTransientSubscription:
        """See :meth:`AsyncEventStore.subscribe`; returns a blocking iterator of batches."""
        request = self._async.subscribe(stream_id, selector=selector, mapper=mapper)
        return SyncTransientSubscription(self._call(_awaited(request)), self._call)

    def subscribe_to_stream(
        self, stream_id: str, subscription_name: str, **options: Unpack[PersistentOptions]
    ) -> SyncSubscription:
        """See :meth:`AsyncEventStore.subscribe_to_stream`; returns a blocking handle."""
        request = self._async.subscribe_to_stream(stream_id, subscription_name, **options)
        return SyncSubscription(self._call(_awaited(request)), self._call)

    def subscribe_to_all_streams(
        self, subscription_name: str, **options: Unpack[PersistentOptions]
    ) -> SyncSubscription:
        """See :meth:`AsyncEventStore.subscribe_to_all_streams`."""
        request = self._async.subscribe_to_all_streams(subscription_name, **options)
        return SyncSubscription(self._call(_awaited(request)), self._call)

    def unsubscribe_from_stream(self, stream_id: str, name: str) -> None:
        """See :meth:`AsyncEventStore.unsubscribe_from_stream`."""
        self._call(self._async.unsubscribe_from_stream(stream_id, name))

    def unsubscribe_from_all_streams(self, name: str) -> None:
        """See :meth:`AsyncEventStore.unsubscribe_from_all_streams`."""
        self._call(self._async.unsubscribe_from_all_streams(name))

    def delete_subscription(self, stream_id: str, name: str) -> None:
        """See :meth:`AsyncEventStore.delete_subscription`."""
        self._call(self._async.delete_subscription(stream_id, name))

    def delete_all_streams_subscription(self, name: str) -> None:
        """See :meth:`AsyncEventStore.delete_all_streams_subscription`."""
        self._call(self._async.delete_all_streams_subscription(name))

    def parked_events(self, stream_id: str, name: str) -> list[RecordedEvent]:
        """See :meth:`AsyncEventStore.parked_events`."""
        return self._call(self._async.parked_events(stream_id, name))

    def replay_parked(self, stream_id: str, name: str) -> None:
        """See :meth:`AsyncEventStore.replay_parked`."""
        self._call(self._async.replay_parked(stream_id, name))

    def list_subscriptions(self) -> list[SubscriptionInfo]:
        """See :meth:`AsyncEventStore.list_subscriptions`."""
        return self._call(self._async.list_subscriptions())

    # -- snapshots -------------------------------------------------------------------

    def read_snapshot(self, source_id: str) -> SnapshotData:
        """See :meth:`AsyncEventStore.read_snapshot`."""
        return self._call(self._async.read_snapshot(source_id))

    def record_snapshot(self, snapshot: SnapshotData) -> None:
        """See :meth:`AsyncEventStore.record_snapshot`."""
        self._call(self._async.record_snapshot(snapshot))

    def delete_snapshot(self, source_id: str) -> None:
        """See :meth:`AsyncEventStore.delete_snapshot`."""
        self._call(self._async.delete_snapshot(source_id))
