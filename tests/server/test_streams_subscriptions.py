"""Catch-up subscriptions (Streams.Read with ``subscription``) through the real clients:
confirmation, history after an exclusive start, caught-up, live events, filters with
checkpoints, tombstones, cancellation, and 200 subscriptions at once."""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from collections.abc import Callable
from typing import Any

import pytest
from kurrentdbclient import AsyncKurrentDBClient, KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.events import CaughtUp, Checkpoint
from kurrentdbclient.exceptions import ServiceUnavailableError, StreamIsDeletedError

from evstore.server.app import BackgroundServer

from .conftest import MakeAsyncClient, MakeClient, StartServer, connection_string

WAIT = 15.0


def event(kind: str = "Happened") -> NewEvent:
    return NewEvent(type=kind, data=b"{}")


def gauge(server: BackgroundServer) -> float:
    value = server.server.metrics.registry.get_sample_value("evstore_catch_up_subscriptions")
    return 0.0 if value is None else value


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def summary(item: Any) -> Any:
    if isinstance(item, CaughtUp):
        return "caught-up"
    if isinstance(item, Checkpoint):
        return ("checkpoint", item.commit_position)
    return (item.type, item.stream_position)


def test_stream_subscription(client: KurrentDBClient, server: BackgroundServer) -> None:
    client.append_to_stream(
        "s", events=[event("A"), event("B"), event("C")], current_version=StreamState.ANY
    )
    subscription = client.subscribe_to_stream("s", include_caught_up=True, timeout=WAIT)
    try:
        assert subscription.subscription_id
        got = [summary(next(subscription)) for _ in range(4)]
        assert got == [("A", 0), ("B", 1), ("C", 2), "caught-up"]
        assert gauge(server) == 1
        client.append_to_stream("other", events=event("X"), current_version=StreamState.ANY)
        client.append_to_stream("s", events=[event("D")], current_version=2)
        assert summary(next(subscription)) == ("D", 3)
    finally:
        subscription.stop()
    wait_until(lambda: gauge(server) == 0)
    # The start is exclusive; from_end only sees new events.
    after = client.subscribe_to_stream("s", stream_position=1, timeout=WAIT)
    try:
        assert [summary(next(after)) for _ in range(2)] == [("C", 2), ("D", 3)]
    finally:
        after.stop()
    from_end = client.subscribe_to_stream("s", from_end=True, include_caught_up=True, timeout=WAIT)
    try:
        assert summary(next(from_end)) == "caught-up"
        client.append_to_stream("s", events=event("E"), current_version=3)
        assert summary(next(from_end)) == ("E", 4)
    finally:
        from_end.stop()


def test_all_subscription_with_filter_and_checkpoints(client: KurrentDBClient) -> None:
    positions = [
        client.append_to_stream(
            f"s-{i}",
            events=event("Keep" if i % 3 == 0 else "Skip"),
            current_version=StreamState.ANY,
        )
        for i in range(9)
    ]
    subscription = client.subscribe_to_all(
        filter_include=["Keep"],
        include_checkpoints=True,
        include_caught_up=True,
        window_size=2,
        checkpoint_interval_multiplier=2,
        timeout=WAIT,
    )
    try:
        got = [summary(next(subscription)) for _ in range(7)]
        assert got == [
            ("Keep", 0),
            ("Keep", 0),
            ("checkpoint", positions[3]),  # every 2 x 2 events scanned
            ("Keep", 0),
            ("checkpoint", positions[7]),
            ("checkpoint", positions[8]),  # and where it caught up
            "caught-up",
        ]
        live = client.append_to_stream(
            "live", events=event("Keep"), current_version=StreamState.ANY
        )
        item = next(subscription)
        assert (item.type, item.commit_position) == ("Keep", live)
    finally:
        subscription.stop()
    # Exclusive start by position; the default filter hides system events.
    client.set_stream_metadata("s-0", metadata={"a": 1})
    after = client.subscribe_to_all(
        commit_position=positions[6], include_caught_up=True, timeout=WAIT
    )
    try:
        got = [summary(next(after)) for _ in range(4)]
        assert got == [("Skip", 0), ("Skip", 0), ("Keep", 0), "caught-up"]
    finally:
        after.stop()
    by_stream = client.subscribe_to_all(
        filter_include=["s-1", "s-2"],
        filter_by_stream_name=True,
        filter_by_prefix=True,
        timeout=WAIT,
    )
    try:
        assert [next(by_stream).stream_name for _ in range(2)] == ["s-1", "s-2"]
    finally:
        by_stream.stop()


def test_subscription_to_a_tombstoned_stream_ends(client: KurrentDBClient) -> None:
    client.append_to_stream("s", events=event(), current_version=StreamState.ANY)
    subscription = client.subscribe_to_stream("s", include_caught_up=True, timeout=WAIT)
    try:
        assert [summary(next(subscription)) for _ in range(2)] == [("Happened", 0), "caught-up"]
        client.tombstone_stream("s", current_version=0)
        with pytest.raises(StreamIsDeletedError):
            for _ in range(3):
                next(subscription)
    finally:
        subscription.stop()
    later = client.subscribe_to_stream("s", timeout=WAIT)
    with pytest.raises(StreamIsDeletedError):
        next(later)


def test_subscription_to_a_missing_stream_waits(client: KurrentDBClient) -> None:
    subscription = client.subscribe_to_stream("later", include_caught_up=True, timeout=WAIT)
    try:
        assert summary(next(subscription)) == "caught-up"
        client.append_to_stream(
            "later", events=event("First"), current_version=StreamState.NO_STREAM
        )
        assert summary(next(subscription)) == ("First", 0)
    finally:
        subscription.stop()


async def test_asyncio_subscriptions(
    async_client: AsyncKurrentDBClient, server: BackgroundServer
) -> None:
    await async_client.append_to_stream("a", events=[event("A1")], current_version=StreamState.ANY)
    to_all = await async_client.subscribe_to_all(include_caught_up=True)
    to_stream = await async_client.subscribe_to_stream("a", include_caught_up=True)
    try:
        assert summary(await asyncio.wait_for(anext(to_all), WAIT)) == ("A1", 0)
        assert summary(await asyncio.wait_for(anext(to_all), WAIT)) == "caught-up"
        assert summary(await asyncio.wait_for(anext(to_stream), WAIT)) == ("A1", 0)
        assert summary(await asyncio.wait_for(anext(to_stream), WAIT)) == "caught-up"
        await async_client.append_to_stream("a", events=[event("A2")], current_version=0)
        assert summary(await asyncio.wait_for(anext(to_all), WAIT)) == ("A2", 1)
        assert summary(await asyncio.wait_for(anext(to_stream), WAIT)) == ("A2", 1)
    finally:
        await to_all.stop()
        await to_stream.stop()
    await asyncio.to_thread(wait_until, lambda: gauge(server) == 0)


async def test_cancelled_subscriptions_release_their_resources(
    async_client: AsyncKurrentDBClient, server: BackgroundServer
) -> None:
    def server_tasks() -> int:
        async def count() -> int:
            return len(asyncio.all_tasks())

        return server.run(count)

    await async_client.append_to_stream("s", events=[event()], current_version=StreamState.ANY)
    idle_tasks = server_tasks()
    subscriptions = [await async_client.subscribe_to_all() for _ in range(20)]
    for subscription in subscriptions[:10]:
        await asyncio.wait_for(anext(subscription), WAIT)  # mid-stream
    await asyncio.to_thread(wait_until, lambda: gauge(server) == 20)
    assert server_tasks() >= idle_tasks + 20
    for subscription in subscriptions:
        await subscription.stop()
    await asyncio.to_thread(wait_until, lambda: gauge(server) == 0)
    # No call handler or follower task is left behind on the server's loop.
    await asyncio.to_thread(wait_until, lambda: server_tasks() <= idle_tasks)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


@pytest.mark.slow
async def test_200_concurrent_subscriptions(
    server: BackgroundServer, make_async_client: MakeAsyncClient
) -> None:
    clients = [await make_async_client(server) for _ in range(4)]
    writer = clients[0]
    await writer.append_to_stream("seed", events=[event()], current_version=StreamState.ANY)
    subscriptions = [
        await clients[i % len(clients)].subscribe_to_all(include_caught_up=True) for i in range(200)
    ]
    received = [0] * len(subscriptions)

    async def drain(index: int, expected: int) -> None:
        subscription = subscriptions[index]
        while received[index] < expected:
            item = await subscription.__anext__()
            if not isinstance(item, CaughtUp):
                received[index] += 1

    try:
        await asyncio.wait_for(asyncio.gather(*(drain(i, 1) for i in range(200))), 60)
        assert gauge(server) == 200
        total = 1
        baseline = 0.0
        for wave in range(4):
            for _ in range(10):
                await writer.append_to_stream(
                    f"w{wave}",
                    events=[
                        NewEvent(type="Wave", data=b'{"pad": "%s"}' % (b"x" * 2000))
                        for _ in range(10)
                    ],
                    current_version=StreamState.ANY,
                )
            total += 100
            await asyncio.wait_for(asyncio.gather(*(drain(i, total) for i in range(200))), 120)
            gc.collect()
            if wave == 0:
                baseline = rss_mb()
        assert received == [total] * 200
        # After the baseline, 300 events of ~2 KB went to each of 200 subscribers (120 MB
        # sent): memory stays flat because nothing is buffered per subscriber.
        assert rss_mb() - baseline < 40
    finally:
        for subscription in subscriptions:
            await subscription.stop()
    await asyncio.to_thread(wait_until, lambda: gauge(server) == 0)


def test_a_disconnecting_client_releases_its_subscriptions(
    server: BackgroundServer, make_client: MakeClient
) -> None:
    client = make_client(server)
    client.append_to_stream("s", events=event(), current_version=StreamState.ANY)
    subscriptions = [client.subscribe_to_all(timeout=WAIT) for _ in range(5)]
    assert next(subscriptions[0]).type == "Happened"
    wait_until(lambda: gauge(server) == 5)
    client.close()  # the channel goes away without stopping the subscriptions first
    wait_until(lambda: gauge(server) == 0)


def test_shutdown_ends_subscriptions(start_server: StartServer, sqlite_url: str) -> None:
    server = start_server(sqlite_url, grace=30.0)
    client = KurrentDBClient(connection_string(server))
    try:
        subscription = client.subscribe_to_all(include_caught_up=True, timeout=60)
        assert isinstance(next(subscription), CaughtUp)
        started = time.monotonic()
        server.stop()
        # The subscription ends at once (not when the 30 s grace period runs out), with an
        # error a client can reconnect on.
        assert time.monotonic() - started < 10
        with pytest.raises(ServiceUnavailableError, match="Server Is Shutting Down"):
            next(subscription)
    finally:
        client.close()


def test_postgres_subscriptions(pg_server: BackgroundServer, make_client: MakeClient) -> None:
    client = make_client(pg_server)
    client.append_to_stream("p", events=event("Old"), current_version=StreamState.NO_STREAM)
    to_all = client.subscribe_to_all(include_caught_up=True, timeout=WAIT)
    to_stream = client.subscribe_to_stream(
        "p", stream_position=0, include_caught_up=True, timeout=WAIT
    )
    try:
        assert [summary(next(to_all)) for _ in range(2)] == [("Old", 0), "caught-up"]
        assert summary(next(to_stream)) == "caught-up"
        client.append_to_stream("p", events=[event("New")], current_version=0)
        assert summary(next(to_all)) == ("New", 1)
        assert summary(next(to_stream)) == ("New", 1)
    finally:
        to_all.stop()
        to_stream.stop()
    wait_until(lambda: gauge(pg_server) == 0)
