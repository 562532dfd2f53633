"""``EventStore``, the blocking twin: the same results as ``AsyncEventStore``.

Writes are checked by running one script of calls through both APIs on two fresh databases
and comparing every result and error; reads by asking both APIs about one database.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import evstore
from evstore import (
    ANY_VERSION,
    NO_STREAM,
    AsyncEventStore,
    EventData,
    EventStore,
    SnapshotData,
    StreamNotFoundError,
)

CREATED_AT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


@dataclass
class Databases:
    """Fresh database URLs of one backend; named memory databases are dropped afterwards."""

    backend: str
    tmp_path: Path
    made: list[str] = field(default_factory=list)

    def new(self) -> str:
        if self.backend == "memory":
            url = f"memory://sync-{uuid.uuid4().hex}"
        else:
            url = f"sqlite:///{self.tmp_path / f'sync-{len(self.made)}.db'}"
        self.made.append(url)
        return url


@pytest.fixture(params=["memory", "sqlite"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    if request.param == "sqlite":
        spec = importlib.util.find_spec("evstore.backends.sqlite")
        if spec is None or spec.origin is None:
            pytest.skip("evstore.backends.sqlite is not written yet")
    made = Databases(request.param, tmp_path)
    yield made
    if made.backend == "memory":
        for url in made.made:
            EventStore.drop(url)


def _events(first: int, count: int) -> list[EventData]:
    # Fixed ids, so that both APIs write identical events.
    return [
        EventData(
            "Counted",
            {"n": n},
            {"meta": n},
            event_id=uuid.UUID(int=n),
            correlation_id=uuid.UUID(int=1000 + n),
        )
        for n in range(first, first + count)
    ]


# (method, args, kwargs): every kind of write, and the errors they can raise.
WRITES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("append_to_stream", ("s1", NO_STREAM, _events(1, 3)), {"created_at": CREATED_AT}),
    ("append_to_stream", ("s2", 0, _events(4, 2)), {"created_at": CREATED_AT}),
    ("append_to_stream", ("s1", 3, []), {}),
    ("append_to_stream", ("s1", 1, _events(6, 1)), {}),
    ("append_to_stream", ("s1", NO_STREAM, _events(6, 1)), {}),
    ("append_to_stream", ("s3", ANY_VERSION, _events(1, 1)), {}),
    ("append_to_stream", ("$all", ANY_VERSION, _events(7, 1)), {}),
    ("append_to_stream", ("", ANY_VERSION, _events(7, 1)), {}),
    ("link_to_stream", ("links", 0, [uuid.UUID(int=1), str(uuid.UUID(int=4))]), {}),
    ("link_to_stream", ("links", ANY_VERSION, [uuid.UUID(int=99)]), {}),
    ("link_to_stream", ("links", ANY_VERSION, [uuid.UUID(int=1)]), {}),
    ("set_stream_metadata", ("s2", {"$maxCount": 1, "owner": "x"}), {}),
    ("set_stream_metadata", ("s2", {"owner": "y"}, 0), {}),
    ("record_snapshot", (SnapshotData("agg", 3, "Agg", {"state": [1, 2]}),), {}),
    ("delete_snapshot", ("missing",), {}),
    ("delete_stream", ("s2", ANY_VERSION), {"hard": True}),
    ("delete_stream", ("links", 1), {}),
    ("delete_stream", ("links", 2), {}),
    ("delete_stream", ("links", 2), {}),
]

# Reads and iterators, including ones that raise.
READS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("read_stream_forward", ("s1",), {}),
    ("read_stream_forward", ("s1", 2, 1), {}),
    ("read_stream_backward", ("s1",), {}),
    ("read_stream_backward", ("s2", -1, 5), {}),
    ("read_stream_forward", ("missing",), {}),
    ("read_stream_forward", ("links",), {}),
    ("read_stream_forward", ("s1", 0, -1), {}),
    ("read_all_streams_forward", (), {}),
    ("read_all_streams_forward", (3, 2), {}),
    ("read_all_streams_backward", (), {}),
    ("read_all_streams_backward", (4, 2), {}),
    ("stream_forward", ("s1",), {"batch_size": 1}),
    ("stream_forward", ("s1", 2), {"batch_size": 2}),
    ("stream_backward", ("s1",), {"batch_size": 2}),
    ("stream_forward", ("missing",), {}),
    ("stream_forward", ("s1",), {"batch_size": 0}),
    ("stream_all_forward", (), {"batch_size": 1}),
    ("stream_all_backward", (5,), {"batch_size": 2}),
    ("stream_info", ("s1",), {}),
    ("stream_info", ("$all",), {}),
    ("stream_info", ("links",), {}),
    ("stream_info", ("missing",), {}),
    ("paginate_streams", (), {}),
    ("paginate_streams", (), {"page_size": 2, "page_number": 2, "sort_by": "stream_id"}),
    ("paginate_streams", (), {"search": "s", "sort_by": "stream_version", "sort_dir": "desc"}),
    ("paginate_streams", (), {"sort_by": "nope"}),
    ("get_stream_metadata", ("s2",), {}),
    ("get_stream_metadata", ("s1",), {}),
    ("read_snapshot", ("agg",), {}),
    ("read_snapshot", ("missing",), {}),
]

ITERATORS = {"stream_forward", "stream_backward", "stream_all_forward", "stream_all_backward"}


def _error(exc: Exception) -> tuple[str, str]:
    return (type(exc).__name__, str(exc))


def _call_sync(store: EventStore, name: str, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    try:
        result = getattr(store, name)(*args, **kw)
        return list(result) if name in ITERATORS else result
    except evstore.EventStoreError as exc:
        return _error(exc)


async def _call_async(
    store: AsyncEventStore, name: str, args: tuple[Any, ...], kw: dict[str, Any]
) -> Any:
    try:
        result = getattr(store, name)(*args, **kw)
        if name in ITERATORS:
            return [event async for event in result]
        return await result
    except evstore.EventStoreError as exc:
        return _error(exc)


def _write(store: EventStore) -> list[Any]:
    return [_call_sync(store, name, args, kw) for name, args, kw in WRITES]


@pytest.fixture
async def written(databases: Databases) -> AsyncIterator[tuple[EventStore, AsyncEventStore]]:
    """A database written through ``EventStore``; a sync and an async store open on it."""
    url = databases.new()
    sync_store = EventStore(url, enable_hard_deletes=True)
    _write(sync_store)
    async with AsyncEventStore(url) as async_store:
        yield sync_store, async_store
    sync_store.close()


async def test_sync_writes_match_async(databases: Databases) -> None:
    with EventStore(databases.new(), enable_hard_deletes=True) as sync_store:
        from_sync = _write(sync_store)
    async with AsyncEventStore(databases.new(), enable_hard_deletes=True) as async_store:
        from_async = [await _call_async(async_store, n, a, k) for n, a, k in WRITES]

    assert from_sync == from_async
    # The script exercises successes and each kind of refusal.
    assert from_sync[0] == evstore.AppendResult(3, 3)
    errors = {result[0] for result in from_sync if isinstance(result, tuple)}
    assert errors == {
        "WrongExpectedVersionError",
        "StreamExistsError",
        "DuplicateEventError",
        "CannotAppendToAllStreamError",
        "InvalidArgumentError",
        "EventNotFoundError",
        "StreamDeletedError",
    }


@pytest.mark.parametrize(("name", "args", "kw"), READS, ids=[f"{n}{a}{k}" for n, a, k in READS])
async def test_sync_reads_match_async(
    written: tuple[EventStore, AsyncEventStore],
    name: str,
    args: tuple[Any, ...],
    kw: dict[str, Any],
) -> None:
    sync_store, async_store = written

    from_sync = _call_sync(sync_store, name, args, kw)
    from_async = await _call_async(async_store, name, args, kw)

    assert from_sync == from_async
    assert from_sync not in ([], None), "each read shows something: data or an error"


def test_sync_stream_iterator_blocks_and_reads_lazily(databases: Databases) -> None:
    with EventStore(databases.new()) as store:
        store.append_to_stream("s", 0, _events(1, 3))
        iterator = store.stream_forward("s", batch_size=2)

        assert isinstance(iterator, Iterator)
        first = next(iterator)
        second = next(iterator)
        store.append_to_stream("s", 3, _events(4, 1))  # while the iterator is suspended
        rest = list(iterator)

        assert [e.event_number for e in [first, second, *rest]] == [1, 2, 3, 4]
        with pytest.raises(StopIteration):
            next(iterator)


def test_sync_stream_iterator_of_missing_stream_raises_on_first_step(
    databases: Databases,
) -> None:
    with EventStore(databases.new()) as store:
        iterator = store.stream_backward("missing")

        with pytest.raises(StreamNotFoundError):
            next(iterator)


def test_sync_stream_iterator_left_early_keeps_store_usable(databases: Databases) -> None:
    with EventStore(databases.new()) as store:
        store.append_to_stream("s", 0, _events(1, 5))

        for event in store.stream_all_forward(batch_size=1):
            if event.event_number == 2:
                break
        iterator = store.stream_backward("s", batch_size=1)
        assert next(iterator).event_number == 5
        iterator.close()  # type: ignore[attr-defined]

        assert [e.event_number for e in store.read_stream_forward("s", 4)] == [4, 5]


def test_sync_store_closed_under_an_open_iterator_reports_nothing(
    databases: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    store = EventStore(databases.new())
    store.open()
    store.append_to_stream("s", 0, _events(1, 20))
    iterator = store.stream_forward("s", batch_size=4)
    assert [next(iterator).event_number for _ in range(2)] == [1, 2]  # one page read ahead
    store.close()

    del iterator
    gc.collect()

    assert [hook.exc_value for hook in unraisable] == []


def test_sync_close_is_idempotent(databases: Databases) -> None:
    url = databases.new()
    store = EventStore(url)
    store.open()
    store.append_to_stream("s", 0, _events(1, 1))

    store.close()
    store.close()
    with EventStore(url) as again:
        assert [e.event_number for e in again.read_stream_forward("s")] == [1]
    again.close()


def test_sync_closed_store_refuses_calls_and_leaves_no_threads(databases: Databases) -> None:
    before = set(threading.enumerate())
    with EventStore(databases.new()) as store:
        store.append_to_stream("s", 0, _events(1, 1))

    with pytest.raises(RuntimeError, match="closed"):
        store.read_stream_forward("s")
    with pytest.raises(RuntimeError, match="closed"):
        store.open()
    assert set(threading.enumerate()) - before == set()


def test_sync_first_calls_from_many_threads_open_one_loop(databases: Databases) -> None:
    with EventStore(databases.new()) as setup:
        setup.append_to_stream("s", 0, _events(1, 1))
    before = set(threading.enumerate())
    store = EventStore(setup.url)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: store.read_stream_forward("s"), range(8)))
    loops = [t for t in set(threading.enumerate()) - before if t.name == "evstore-sync"]
    store.close()
    assert all(len(events) == 1 for events in results)
    assert len(loops) == 1


def test_sync_lifecycle_classmethods(databases: Databases) -> None:
    url = databases.new()

    for action in (EventStore.create, EventStore.init, EventStore.migrate):
        message = action(url)
        assert isinstance(message, str)
        assert message
    with EventStore(url, auto_init=False) as store:
        store.append_to_stream("s", 0, _events(1, 2))
        store.record_snapshot(SnapshotData("agg", 1, "Agg", {}))

    assert isinstance(EventStore.reset(url), str)
    with EventStore(url, auto_init=False) as store:
        assert store.read_all_streams_forward() == []
        assert store.stream_info("$all").stream_version == 0
        with pytest.raises(evstore.SnapshotNotFoundError):
            store.read_snapshot("agg")
        store.append_to_stream("s", 0, _events(1, 1))

    assert isinstance(EventStore.drop(url), str)
    # Opening initialises the dropped database again, empty.
    with EventStore(url) as store, pytest.raises(StreamNotFoundError):
        store.read_stream_forward("s")


async def test_sync_lifecycle_classmethods_inside_a_running_loop(databases: Databases) -> None:
    url = databases.new()

    assert isinstance(EventStore.init(url), str)
    with EventStore(url, auto_init=False) as store:
        store.append_to_stream("s", 0, _events(1, 1))
    async with AsyncEventStore(url) as async_store:
        assert len(await async_store.read_stream_forward("s")) == 1
    assert isinstance(EventStore.drop(url), str)


def test_sync_persistent_subscription_iterates_acks_and_resumes(databases: Databases) -> None:
    url = databases.new()
    with EventStore(url) as store:
        store.append_to_stream("s", 0, _events(1, 5))
        sub = store.subscribe_to_stream("s", "sync-sub", buffer_size=3)
        assert isinstance(sub, evstore.SyncSubscription)
        sub.wait_subscribed(5)
        assert sub.subscribed
        seen: list[int] = []
        for batch in sub:  # an iterator of batches, each acknowledged by a blocking call
            seen += [e.event_number for e in batch]
            sub.ack(batch)
            if seen[-1] == 3:
                break
        assert seen == [1, 2, 3]
        assert sub.checkpoint == 3
        batch = sub.receive(timeout=5)
        assert batch is not None and [e.event_number for e in batch] == [4, 5]
        sub.nack(batch[1], "park")
        sub.ack(batch[0])
        with pytest.raises(evstore.EventStoreTimeoutError):
            sub.receive(timeout=0.1)
        sub.close()
        assert sub.receive(timeout=1) is None
        assert [e.event_number for e in store.parked_events("s", "sync-sub")] == [5]
        [info] = store.list_subscriptions()
        assert (info.stream_id, info.subscription_name, info.checkpoint) == ("s", "sync-sub", 5)

        store.append_to_stream("s", 5, _events(6, 1))
        with store.subscribe_to_stream("s", "sync-sub") as again:
            batch = again.receive(timeout=5)
            assert batch is not None and [e.event_number for e in batch] == [6]
            again.ack(batch)


def test_sync_transient_subscription_and_errors(databases: Databases) -> None:
    with EventStore(databases.new()) as store:
        store.append_to_stream("s", 0, _events(1, 1))  # before subscribing: not delivered
        with store.subscribe("$all") as sub:
            assert isinstance(sub, evstore.SyncTransientSubscription)
            store.append_to_stream("s", 1, _events(2, 2))
            batch = next(iter(sub))
            assert [e.event_id for e in batch] == [uuid.UUID(int=2), uuid.UUID(int=3)]
        with pytest.raises(evstore.InvalidArgumentError):
            store.subscribe_to_all_streams("x", buffer_size=0)
        first = store.subscribe_to_all_streams("one")
        with pytest.raises(evstore.SubscriptionAlreadyExistsError):
            store.subscribe_to_all_streams("one")
        first.close()
        store.delete_all_streams_subscription("one")
        assert store.list_subscriptions() == []


class _Interrupted(Exception):
    """Stands in for KeyboardInterrupt (raised by a timer signal in the main thread)."""


def test_sync_receive_interrupted_in_the_caller_loses_no_batch(databases: Databases) -> None:
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise _Interrupted

    with EventStore(databases.new()) as store:
        sub = store.subscribe_to_stream("s", "interrupted", buffer_size=5)
        previous = signal.signal(signal.SIGALRM, interrupt)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            with pytest.raises(_Interrupted):
                sub.receive()  # blocks: nothing appended yet
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        # The cancellation reaches the loop before this append does (both go through its
        # thread-safe queue, in order).
        store.append_to_stream("s", 0, _events(1, 2))
        # The interrupted wait must not have taken this batch on the loop thread.
        batch = sub.receive(timeout=5)
        assert batch is not None and [e.event_number for e in batch] == [1, 2]
        sub.close()
