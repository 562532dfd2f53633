"""The subscriptions running in one store, by (stream, name), and the store-level calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from evstore._types import ALL_STREAM, RecordedEvent
from evstore.backends.base import StorageBackend
from evstore.errors import StreamNotFoundError, SubscriptionAlreadyExistsError
from evstore.subscriptions._engine import PersistentEngine, ReadEvents, read_parked
from evstore.subscriptions._handles import Subscription, SubscriptionInfo, TransientSubscription
from evstore.subscriptions._options import SubscriptionOptions
from evstore.subscriptions._transient import TransientFeed

__all__ = ["SubscriptionRegistry"]

StreamVersion = Callable[[str], Awaitable[int]]
"""``version(stream_id)``: the stream's version (``$all``: its highest position)."""


class SubscriptionRegistry:
    """Starts, finds and stops the subscriptions of one store."""

    def __init__(
        self, backend: StorageBackend, read: ReadEvents, stream_version: StreamVersion
    ) -> None:
        self._backend = backend
        self._read = read
        self._stream_version = stream_version
        self._engines: dict[tuple[str, str], PersistentEngine] = {}
        self._stopping: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._feeds: set[TransientFeed] = set()

    async def _start_position(self, stream_id: str, start_from: Any) -> int:
        if start_from == "origin":
            return 0
        if start_from == "current":
            try:
                return await self._stream_version(stream_id)
            except StreamNotFoundError:
                return 0
        position: int = start_from
        return position

    async def subscribe(
        self,
        stream_id: str,
        name: str,
        options: SubscriptionOptions,
        identity: Hashable | None,
    ) -> Subscription:
        key = (stream_id, name)
        start: int | None = None
        while True:
            stopping = self._stopping.get(key)
            if stopping is not None:
                await asyncio.shield(stopping)  # the previous run is still releasing the name
                continue
            engine = self._engines.get(key)
            if engine is not None and engine.stopping:
                await engine.stop()  # its last subscriber just left: let it finish
                continue
            if engine is not None:
                if options.concurrency_limit is None:
                    raise SubscriptionAlreadyExistsError(
                        f"subscription {name!r} on {stream_id!r} is already running in this "
                        "store (give concurrency_limit to add competing subscribers)",
                        stream_id=stream_id,
                        subscription_name=name,
                    )
                break
            if start is None:
                start = await self._start_position(stream_id, options.start_from)
                continue  # look again: the await let other tasks run
            engine = PersistentEngine(
                stream_id=stream_id,
                name=name,
                options=options,
                start_from=start,
                backend=self._backend,
                read=self._read,
                on_stopped=self._stopped,
            )
            self._engines[key] = engine
            break
        consumer = engine.connect(
            object() if identity is None else identity,
            options.buffer_size,
            options.concurrency_limit,
        )
        return Subscription(engine, consumer)

    def _stopped(self, engine: PersistentEngine) -> None:
        key = (engine.stream_id, engine.name)
        if self._engines.get(key) is engine:
            del self._engines[key]

    async def subscribe_transient(
        self,
        stream_id: str,
        selector: Callable[[RecordedEvent], Any] | None,
        mapper: Callable[[RecordedEvent], Any] | None,
    ) -> TransientSubscription:
        head = await self._stream_version(ALL_STREAM)
        feed = TransientFeed(
            stream_id=stream_id,
            selector=selector,
            mapper=mapper,
            after_position=head,
            backend=self._backend,
            read=self._read,
            on_stopped=self._feeds.discard,
        )
        self._feeds.add(feed)
        return TransientSubscription(feed)

    async def stop(self, stream_id: str, name: str) -> None:
        """Stop the named subscription if it runs here; it is released when this returns."""
        key = (stream_id, name)
        engine = self._engines.pop(key, None)
        if engine is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stopping[key] = done
        try:
            await engine.stop()
        finally:
            done.set_result(None)
            if self._stopping.get(key) is done:
                del self._stopping[key]

    async def delete(self, stream_id: str, name: str) -> None:
        await self.stop(stream_id, name)
        await self._backend.delete_subscription(stream_id, name)

    async def parked_events(self, stream_id: str, name: str) -> list[RecordedEvent]:
        events: list[RecordedEvent] = []
        for entry in await self._backend.parked(stream_id, name):
            event = await read_parked(self._read, entry)
            if event is not None:  # else hard deleted since it was parked
                events.append(event)
        return events

    async def replay_parked(self, stream_id: str, name: str) -> None:
        await self._backend.request_replay(stream_id, name)
        engine = self._engines.get((stream_id, name))
        if engine is not None:
            engine.request_replay()

    async def list(self) -> list[SubscriptionInfo]:
        return [
            SubscriptionInfo(
                r.stream_id, r.subscription_name, r.last_seen, r.created_at, r.parked_count
            )
            for r in await self._backend.list_subscriptions()
        ]

    async def close(self) -> None:
        """Stop every subscription of the store (checkpoints flushed)."""
        for stream_id, name in list(self._engines):
            await self.stop(stream_id, name)
        for feed in list(self._feeds):
            await feed.stop()
