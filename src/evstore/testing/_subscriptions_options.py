"""Bad subscription options and arguments: refused before anything runs, naming the option.

Every case checks that the call raises an ``InvalidArgumentError`` (a ``ValueError``) or an
``InvalidArgumentTypeError`` (a ``TypeError``) whose ``argument`` is the option, that no
subscription row was created, and that the same name can then be subscribed properly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from evstore import (
    AsyncEventStore,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StreamDeletedError,
)
from evstore.testing._subscriptions_support import (
    RECEIVE_TIMEOUT,
    next_batch,
    next_numbers,
    unique_name,
)
from evstore.testing._support import SuiteBase, append_events


@dataclass(frozen=True)
class BadOption:
    """One refused option: its value, the error it must raise."""

    option: str
    value: Any
    error: type[InvalidArgumentError]


BAD_OPTIONS = [
    BadOption("buffer_size", 0, InvalidArgumentError),
    BadOption("buffer_size", -1, InvalidArgumentError),
    BadOption("buffer_size", "3", InvalidArgumentTypeError),
    BadOption("buffer_size", 2.5, InvalidArgumentTypeError),
    BadOption("max_size", 0, InvalidArgumentError),
    BadOption("concurrency_limit", 0, InvalidArgumentError),
    BadOption("concurrency_limit", "2", InvalidArgumentTypeError),
    BadOption("checkpoint_threshold", 0, InvalidArgumentError),
    BadOption("checkpoint_after", -1, InvalidArgumentError),
    BadOption("checkpoint_after", "soon", InvalidArgumentTypeError),
    BadOption("start_from", -1, InvalidArgumentError),
    BadOption("start_from", "later", InvalidArgumentError),
    BadOption("start_from", 1.5, InvalidArgumentTypeError),
    BadOption("strategy", "nope", InvalidArgumentError),
    BadOption("strategy", 1, InvalidArgumentTypeError),
    BadOption("selector", 42, InvalidArgumentTypeError),
    BadOption("mapper", "event_number", InvalidArgumentTypeError),
    BadOption("partition_by", 1, InvalidArgumentTypeError),
    BadOption("message_timeout", -1, InvalidArgumentError),
    BadOption("message_timeout", "1s", InvalidArgumentTypeError),
    BadOption("max_retry_count", -1, InvalidArgumentError),
    BadOption("retry_interval", -1, InvalidArgumentError),
]


def _case_id(case: BadOption) -> str:
    return f"{case.option}={case.value!r}"


def _to_all(store: AsyncEventStore, name: str, options: dict[str, Any]) -> Any:
    return store.subscribe_to_all_streams(name, **options)


def _to_stream(store: AsyncEventStore, name: str, options: dict[str, Any]) -> Any:
    return store.subscribe_to_stream("stream-1", name, **options)


class SubscriptionOptionTests(SuiteBase):
    """Option and argument checks of the subscribe calls and handles."""

    async def test_subscription_options_refused(self, store: AsyncEventStore) -> None:
        # One test for every case: each would otherwise cost a fresh database.
        await append_events(store, "stream-1", 1)
        for case in BAD_OPTIONS:
            for subscribe in (_to_all, _to_stream):
                name = unique_name()
                with pytest.raises(case.error) as raised:
                    await subscribe(store, name, {case.option: case.value})
                assert raised.value.argument == case.option, _case_id(case)
                assert case.option in str(raised.value), _case_id(case)
        assert await store.list_subscriptions() == []

        # Nothing was left registered: a refused name works.
        async with await _to_all(store, name, {}) as sub:
            assert await next_numbers(sub) == [1]

    async def test_subscription_options_bad_arguments(self, store: AsyncEventStore) -> None:
        calls: list[tuple[str, Callable[[Any], Any], str, type[InvalidArgumentError]]] = [
            (
                "empty stream id",
                lambda s: s.subscribe_to_stream("", "sub"),
                "stream_id",
                InvalidArgumentError,
            ),
            (
                "int stream id",
                lambda s: s.subscribe_to_stream(42, "sub"),
                "stream_id",
                InvalidArgumentTypeError,
            ),
            (
                "empty name",
                lambda s: s.subscribe_to_stream("stream-1", ""),
                "subscription_name",
                InvalidArgumentError,
            ),
            (
                "None name",
                lambda s: s.subscribe_to_all_streams(None),
                "subscription_name",
                InvalidArgumentTypeError,
            ),
            (
                "transient, empty stream id",
                lambda s: s.subscribe(""),
                "stream_id",
                InvalidArgumentError,
            ),
            (
                "transient, selector not callable",
                lambda s: s.subscribe("stream-1", selector=42),
                "selector",
                InvalidArgumentTypeError,
            ),
            (
                "transient, mapper not callable",
                lambda s: s.subscribe("stream-1", mapper="x"),
                "mapper",
                InvalidArgumentTypeError,
            ),
        ]
        for what, call, argument, error in calls:
            with pytest.raises(error) as raised:
                await call(store)
            assert raised.value.argument == argument, what
        assert await store.list_subscriptions() == []

    async def test_subscription_options_ack_argument_checked(self, store: AsyncEventStore) -> None:
        await append_events(store, "stream-1", 1)
        async with await store.subscribe_to_stream("stream-1", "sub") as sub:
            [event] = await next_batch(sub)
            with pytest.raises(InvalidArgumentError) as raised:
                await sub.ack([])
            assert raised.value.argument == "ack"
            not_an_event: Any = "1"
            with pytest.raises(InvalidArgumentTypeError) as typed:
                await sub.ack(not_an_event)
            assert typed.value.argument == "ack"
            await sub.ack(event)

    async def test_subscription_options_current_on_soft_deleted_stream(
        self, store: AsyncEventStore
    ) -> None:
        await append_events(store, "stream-1", 1)
        await store.delete_stream("stream-1", 1)

        with pytest.raises(StreamDeletedError) as raised:
            await store.subscribe_to_stream("stream-1", "sub", start_from="current")
        assert raised.value.stream_id == "stream-1"
        # Refused before registering: the name is free for another stream.
        async with await store.subscribe_to_stream("stream-2", "sub") as sub:
            await sub.wait_subscribed(RECEIVE_TIMEOUT)
