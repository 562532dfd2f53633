"""The expected-version table (reference §1.2.1), every row by every column, for appends,
links and deletes.

Reference behaviours: 4, 5, 6, 8, 37, 43, 44, 50, 51, 69 (its public equivalent: a second
``NO_STREAM`` append). The table's "exists with version 0" row is not reachable through the
public API: an empty append or link is a checked no-op that creates no stream (API.md), so
no stream can exist without events. Its behaviour equals the "does not exist" row except
for ``STREAM_EXISTS``, which no public call can observe.
"""

from __future__ import annotations

from typing import Any

import pytest

from evstore import (
    ANY_VERSION,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    AsyncEventStore,
    ConcurrencyError,
    EventStoreError,
    ExpectedVersion,
    StreamDeletedError,
    StreamExistsError,
    StreamNotFoundError,
    WrongExpectedVersionError,
)
from evstore.testing._support import (
    StoreFactory,
    SuiteBase,
    append_events,
    assert_usable,
    fingerprint,
    make_events,
    versions,
)

OK = None
Deleted = StreamDeletedError
NotFound = StreamNotFoundError
Exists = StreamExistsError
Wrong = WrongExpectedVersionError

EXISTING_VERSION = 3
COLUMNS: tuple[ExpectedVersion | int, ...] = (ANY_VERSION, NO_STREAM, STREAM_EXISTS, 0, 1, 3, 4)

# Rows are stream states, columns the expectations above (reference §1.2.1, in order of
# evaluation: a soft-deleted stream refuses everything first).
APPEND_TABLE: dict[str, tuple[type[EventStoreError] | None, ...]] = {
    "soft_deleted": (Deleted, Deleted, Deleted, Deleted, Deleted, Deleted, Deleted),
    "missing": (OK, OK, NotFound, OK, Wrong, Wrong, Wrong),
    "hard_deleted": (OK, OK, NotFound, OK, Wrong, Wrong, Wrong),
    "existing": (OK, Exists, OK, Wrong, Wrong, OK, Wrong),
}

# Deletes apply the same table, then need the stream to exist (reference §1.6).
DELETE_TABLE: dict[str, tuple[type[EventStoreError] | None, ...]] = {
    "soft_deleted": (Deleted, Deleted, Deleted, Deleted, Deleted, Deleted, Deleted),
    "missing": (NotFound, NotFound, NotFound, NotFound, Wrong, Wrong, Wrong),
    "hard_deleted": (NotFound, NotFound, NotFound, NotFound, Wrong, Wrong, Wrong),
    "existing": (OK, Exists, OK, Wrong, Wrong, OK, Wrong),
}


def _cases(table: dict[str, tuple[type[EventStoreError] | None, ...]]) -> list[Any]:
    return [
        pytest.param(
            state,
            expected,
            outcome,
            id=f"{state}-{expected.name if isinstance(expected, ExpectedVersion) else expected}",
        )
        for state, outcomes in table.items()
        for expected, outcome in zip(COLUMNS, outcomes, strict=True)
    ]


async def _prepare(store_factory: StoreFactory, state: str) -> tuple[AsyncEventStore, int]:
    """A store whose stream ``target`` is in ``state``; returns it and the stream's version.

    A stream ``source`` with two events is always there, to link from.
    """
    store = await store_factory(enable_hard_deletes=True)
    await append_events(store, "source", 2)
    if state == "missing":
        return store, 0
    await append_events(store, "target", EXISTING_VERSION)
    if state == "soft_deleted":
        await store.delete_stream("target", ANY_VERSION)
    elif state == "hard_deleted":
        await store.delete_stream("target", ANY_VERSION, hard=True)
        return store, 0
    return store, EXISTING_VERSION


def _check_error(
    error: BaseException, outcome: type[EventStoreError], expected: object, version: int
) -> None:
    assert type(error) is outcome, f"expected {outcome.__name__}, got {error!r}"
    assert getattr(error, "stream_id", None) == "target"
    if isinstance(error, ConcurrencyError):
        assert error.expected_version == expected
        assert error.actual_version in (version, None)


class ExpectedVersionTests(SuiteBase):
    """Expected versions for ``append_to_stream``, ``link_to_stream`` and ``delete_stream``."""

    @pytest.mark.parametrize(("state", "expected", "outcome"), _cases(APPEND_TABLE))
    async def test_expected_version_append_table(
        self,
        store_factory: StoreFactory,
        state: str,
        expected: ExpectedVersion | int,
        outcome: type[EventStoreError] | None,
    ) -> None:
        store, version = await _prepare(store_factory, state)
        before = await fingerprint(store)

        try:
            result = await store.append_to_stream("target", expected, make_events(2))
        except EventStoreError as error:
            assert outcome is not None, f"unexpected {error!r}"
            _check_error(error, outcome, expected, version)
            assert await fingerprint(store) == before
            await assert_usable(store)
            return
        assert outcome is None, f"expected {outcome.__name__}"
        assert result == AppendResult(version + 2, before.all_version + 2)
        events = await store.read_stream_forward("target")
        assert versions(events) == list(range(1, version + 3))

    @pytest.mark.parametrize(("state", "expected", "outcome"), _cases(APPEND_TABLE))
    async def test_expected_version_link_table(
        self,
        store_factory: StoreFactory,
        state: str,
        expected: ExpectedVersion | int,
        outcome: type[EventStoreError] | None,
    ) -> None:
        store, version = await _prepare(store_factory, state)
        source = await store.read_stream_forward("source")
        before = await fingerprint(store)

        try:
            result = await store.link_to_stream("target", expected, source)
        except EventStoreError as error:
            assert outcome is not None, f"unexpected {error!r}"
            _check_error(error, outcome, expected, version)
            assert await fingerprint(store) == before
            return
        assert outcome is None, f"expected {outcome.__name__}"
        assert result.stream_version == version + 2
        linked = await store.read_stream_forward("target", version + 1)
        assert [e.event_id for e in linked] == [e.event_id for e in source]
        assert (await store.stream_info("$all")).stream_version == before.all_version

    @pytest.mark.parametrize(("state", "expected", "outcome"), _cases(DELETE_TABLE))
    @pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
    async def test_expected_version_delete_table(
        self,
        store_factory: StoreFactory,
        state: str,
        expected: ExpectedVersion | int,
        outcome: type[EventStoreError] | None,
        hard: bool,
    ) -> None:
        store, version = await _prepare(store_factory, state)
        before = await fingerprint(store)

        try:
            await store.delete_stream("target", expected, hard=hard)
        except EventStoreError as error:
            assert outcome is not None, f"unexpected {error!r}"
            _check_error(error, outcome, expected, version)
            assert await fingerprint(store) == before
            return
        assert outcome is None, f"expected {outcome.__name__}"
        with pytest.raises(NotFound if hard else Deleted):
            await store.read_stream_forward("target")

    async def test_expected_version_no_stream_twice_is_stream_exists(
        self, store: AsyncEventStore
    ) -> None:
        await store.append_to_stream("stream-1", NO_STREAM, make_events(3))

        with pytest.raises(StreamExistsError) as raised:
            await store.append_to_stream("stream-1", NO_STREAM, make_events(1))

        assert raised.value.actual_version in (3, None)
        assert raised.value.expected_version is NO_STREAM

    async def test_expected_version_zero_after_events_is_wrong(
        self, store: AsyncEventStore
    ) -> None:
        await store.append_to_stream("stream-1", 0, make_events(3))
        await store.append_to_stream("stream-1", 3, make_events(1))

        with pytest.raises(WrongExpectedVersionError) as raised:
            await store.append_to_stream("stream-1", 0, make_events(1))

        assert raised.value.actual_version in (4, None)
        assert versions(await store.read_stream_forward("stream-1")) == [1, 2, 3, 4]

    async def test_expected_version_sequence_of_appends(self, store: AsyncEventStore) -> None:
        assert (await store.append_to_stream("s", 0, make_events(3))).stream_version == 3
        assert (await store.append_to_stream("s", 3, make_events(1))).stream_version == 4
        assert (
            await store.append_to_stream("s", STREAM_EXISTS, make_events(2))
        ).stream_version == 6
        assert (await store.append_to_stream("s", ANY_VERSION, make_events(1))).stream_version == 7
        assert versions(await store.read_stream_forward("s")) == list(range(1, 8))
