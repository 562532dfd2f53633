"""A subscriber's inbox: batches handed over by the engine, taken by the consumer's code."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from evstore.errors import EventStoreTimeoutError

__all__ = ["Inbox"]


class Inbox:
    """Batches waiting for one consumer.

    Taking a batch never loses one: :meth:`get` removes a batch only when it returns it, so
    a caller cancelled while waiting (``asyncio.wait_for``, a task group) leaves the inbox
    as it was.
    """

    __slots__ = ("_batches", "_closed", "_error", "_ready", "on_take")

    def __init__(self) -> None:
        self._batches: deque[list[Any]] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None
        self.on_take: Any = None
        """Called (no arguments) after a batch was taken: lets a feed refill."""

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def closed(self) -> bool:
        """No batch will be added any more."""
        return self._closed

    def put(self, batch: list[Any]) -> None:
        """Hand a non-empty batch to the consumer (ignored once closed)."""
        if not self._closed:
            self._batches.append(batch)
            self._ready.set()

    def purge(self) -> None:
        """Drop the batches not yet taken (they will be delivered again)."""
        self._batches.clear()

    def close(self, error: BaseException | None = None) -> None:
        """End the inbox: the consumer gets ``None`` (or ``error``) from now on.

        Batches not taken yet are dropped: their events were not acknowledged, so the
        engine hands them to another subscriber or delivers them again after a restart;
        keeping them would deliver them twice.
        """
        if not self._closed:
            self._closed = True
            self._error = error
            self._batches.clear()
            self._ready.set()

    async def get(self, timeout: float | None = None) -> list[Any] | None:
        """The next batch; ``None`` once closed and empty.

        Raises:
            EventStoreTimeoutError: nothing arrived within ``timeout`` seconds.
            Exception: the error the subscription ended with.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._batches:
                batch = self._batches.popleft()
                if self.on_take is not None:
                    self.on_take()
                return batch
            if self._error is not None:
                raise self._error
            if self._closed:
                return None
            self._ready.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise EventStoreTimeoutError(f"no events arrived within {timeout} s")
            try:
                async with asyncio.timeout(remaining):
                    await self._ready.wait()
            except TimeoutError:
                if not self._batches and not self._closed:
                    raise EventStoreTimeoutError(f"no events arrived within {timeout} s") from None
