"""PersistentSubscriptions.Read with the real kurrentdbclient: delivery, acks, nacks,
retries, parking and replay, message timeouts, competing consumers, drops, restarts and
filtered ``$all`` groups."""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

import pytest
from kurrentdbclient import KurrentDBClient, NewEvent, RecordedEvent, StreamState
from kurrentdbclient.exceptions import (
    CancelledError,
    GrpcDeadlineExceededError,
    MaximumSubscriptionsReachedError,
    NotFoundError,
)
from kurrentdbclient.persistent import PersistentSubscription

from evstore.server.app import BackgroundServer
from tests.server.conftest import MakeClient, StartServer


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def append(client: KurrentDBClient, stream: str, *types: str) -> list[NewEvent]:
    events = [NewEvent(type=t, data=f'{{"type": "{t}"}}'.encode()) for t in types]
    client.append_events(stream, current_version=StreamState.ANY, events=events)
    return events


def take(sub: PersistentSubscription, count: int) -> list[RecordedEvent]:
    """The next ``count`` events, not acknowledged."""
    return [next(sub) for _ in range(count)]


def drain(sub: PersistentSubscription, *, ack: bool = True) -> list[RecordedEvent]:
    """Every event until the subscription's deadline passes."""
    events = []
    with pytest.raises(GrpcDeadlineExceededError):
        for event in sub:
            events.append(event)
            if ack:
                sub.ack(event)
    return events


def test_read_with_ack_from_start_revision_and_end(client: KurrentDBClient) -> None:
    first = append(client, "orders", "A", "B", "C")
    client.create_subscription_to_stream("start", "orders")
    client.create_subscription_to_stream("from-1", "orders", stream_position=1)
    client.create_subscription_to_stream("end", "orders", from_end=True)
    later = append(client, "orders", "D")  # after Create, before any consumer

    sub = client.read_subscription_to_stream("start", "orders", timeout=3)
    events = drain(sub)
    assert [e.id for e in events] == [e.id for e in first + later]
    assert [e.stream_position for e in events] == [0, 1, 2, 3]
    assert all(e.retry_count == 0 for e in events)
    assert [e.type for e in events] == ["A", "B", "C", "D"]
    assert events[0].data == b'{"type": "A"}'  # the bytes appended, as appended

    # A start revision is inclusive.
    sub = client.read_subscription_to_stream("from-1", "orders", timeout=3)
    assert [e.stream_position for e in drain(sub)] == [1, 2, 3]
    # "end" means after what the stream held when the group was created.
    sub = client.read_subscription_to_stream("end", "orders", timeout=3)
    assert [e.id for e in drain(sub)] == [later[0].id]


def test_acks_are_per_event_and_checkpoint_moves(client: KurrentDBClient) -> None:
    client.create_subscription_to_stream("g", "s", min_checkpoint_count=1, message_timeout=1)
    append(client, "s", "A", "B", "C")
    sub = client.read_subscription_to_stream("g", "s", event_buffer_size=10, timeout=8)
    a, b, c = take(sub, 3)
    # Acking later events does not acknowledge an earlier one (KurrentDB acks by id).
    sub.ack(b)
    sub.ack(c)
    again = next(sub)  # A times out and comes back
    assert (again.id, again.retry_count) == (a.id, 1)
    sub.ack(again)
    wait_for(lambda: client.get_subscription_info("g", "s").last_checkpointed_event_position == "2")
    info = client.get_subscription_info("g", "s")
    assert info.total_in_flight_messages == 0
    [connection] = info.connections
    assert connection.in_flight_messages == 0 and connection.total_items == 4
    assert connection.available_slots == 10
    sub.stop()


def test_nack_retry_and_unknown_increase_the_retry_count(client: KurrentDBClient) -> None:
    client.create_subscription_to_all("g", from_end=True)
    [event] = append(client, "s", "A")
    sub = client.read_subscription_to_all("g", timeout=10)
    counts = []
    for received in sub:
        assert received.id == event.id
        counts.append(received.retry_count)
        if len(counts) == 4:
            sub.ack(received)
            break
        sub.nack(received, action="retry" if len(counts) % 2 else "unknown")
    assert counts == [0, 1, 2, 3]
    sub.stop()


def test_nack_park_then_replay_delivers_parked_events_first(client: KurrentDBClient) -> None:
    client.create_subscription_to_stream("g", "s")
    parked = append(client, "s", "A", "B", "C")
    sub = client.read_subscription_to_stream("g", "s", timeout=10)
    for received in take(sub, 3):
        sub.nack(received, action="park")
    wait_for(lambda: client.get_subscription_info("g", "s").parked_message_count == 3)
    sub.stop()

    newer = append(client, "s", "D", "E")
    client.replay_parked_events("g", "s")
    sub = client.read_subscription_to_stream("g", "s", timeout=3)
    events = drain(sub)
    assert [e.id for e in events] == [e.id for e in parked + newer]
    wait_for(lambda: client.get_subscription_info("g", "s").parked_message_count == 0)


def test_replay_while_connected(client: KurrentDBClient) -> None:
    client.create_subscription_to_all("g", from_end=True)
    events = append(client, "s", "A", "B", "C")
    sub = client.read_subscription_to_all("g", timeout=10)
    for received in take(sub, 3):
        sub.nack(received, action="park")
    wait_for(lambda: client.get_subscription_info("g").parked_message_count == 3)
    client.replay_parked_events("g")
    replayed = take(sub, 3)
    assert [e.id for e in replayed] == [e.id for e in events]
    for received in replayed:
        sub.ack(received)
    wait_for(lambda: client.get_subscription_info("g").parked_message_count == 0)
    sub.stop()


def test_nack_skip_and_stop(client: KurrentDBClient) -> None:
    client.create_subscription_to_stream("g", "s", min_checkpoint_count=1)
    append(client, "s", "A", "B", "C")
    sub = client.read_subscription_to_stream("g", "s", timeout=4)
    # Connected second: DispatchToSingle gives it nothing while the first has room.
    other = client.read_subscription_to_stream("g", "s", timeout=10)
    a, b, c = take(sub, 3)
    sub.nack(a, action="skip")
    sub.nack(b, action="stop")  # a no-op in KurrentDB: B stays in flight, C keeps coming
    sub.ack(c)
    wait_for(lambda: client.get_subscription_info("g", "s").total_in_flight_messages == 1)
    assert drain(sub) == []  # nothing is delivered again
    # B was never handled: when its consumer is gone, the other one gets it, and only it.
    again = next(other)
    assert (again.id, again.type) == (b.id, "B")
    other.ack(again)
    wait_for(lambda: client.get_subscription_info("g", "s").last_checkpointed_event_position == "2")
    other.stop()


def test_message_timeout_redelivers(client: KurrentDBClient) -> None:
    client.create_subscription_to_all("g", from_end=True, message_timeout=1)
    a, b, c = append(client, "s", "A", "B", "C")

    # buffer 1: A, unacked, blocks the others until it times out and comes back.
    sub = client.read_subscription_to_all("g", event_buffer_size=1, max_ack_batch_size=1)
    seen = []
    for event in sub:
        seen.append((event.id, event.retry_count))
        if event.id == a.id and event.retry_count == 0:
            continue
        sub.ack(event)
        if len(seen) == 4:
            break
    sub.stop()
    assert seen == [(a.id, 0), (a.id, 1), (b.id, 0), (c.id, 0)]


def test_parked_after_max_retry_count(client: KurrentDBClient) -> None:
    client.create_subscription_to_all("g", from_end=True, message_timeout=0.1, max_retry_count=3)
    a, b, c = append(client, "s", "A", "B", "C")
    sub = client.read_subscription_to_all("g", event_buffer_size=1)
    seen = []
    for event in sub:
        seen.append((event.id, event.retry_count))
        if event.id != a.id:
            sub.ack(event)
        if len(seen) == 6:
            break
    sub.stop()
    assert seen == [(a.id, 0), (a.id, 1), (a.id, 2), (a.id, 3), (b.id, 0), (c.id, 0)]
    wait_for(lambda: client.get_subscription_info("g").parked_message_count == 1)


def test_maximum_subscribers(client: KurrentDBClient) -> None:
    client.create_subscription_to_all("g", max_subscriber_count=2, from_end=True)
    first = client.read_subscription_to_all("g")
    second = client.read_subscription_to_all("g")
    with pytest.raises(MaximumSubscriptionsReachedError, match="Maximum subscriptions reached"):
        client.read_subscription_to_all("g")
    first.stop()
    # A slot is free again once a consumer left.
    wait_for(lambda: len(client.get_subscription_info("g").connections) == 1)
    third = client.read_subscription_to_all("g")
    second.stop()
    third.stop()

    client.create_subscription_to_all("unlimited", max_subscriber_count=0, from_end=True)
    many = [client.read_subscription_to_all("unlimited") for _ in range(8)]
    assert len(client.get_subscription_info("unlimited").connections) == 8
    for sub in many:
        sub.stop()


def test_read_of_a_missing_group(client: KurrentDBClient) -> None:
    with pytest.raises(NotFoundError):
        client.read_subscription_to_all("missing")
    with pytest.raises(NotFoundError):
        client.read_subscription_to_stream("missing", "s")


def test_a_consumer_that_leaves_hands_its_events_to_another(
    client: KurrentDBClient, make_client: MakeClient, server: BackgroundServer
) -> None:
    client.create_subscription_to_stream("g", "s")
    events = append(client, "s", "A", "B", "C")
    leaver = make_client(server)
    sub = leaver.read_subscription_to_stream("g", "s", event_buffer_size=10)
    assert [e.id for e in take(sub, 3)] == [e.id for e in events]
    other = client.read_subscription_to_stream("g", "s", timeout=10)
    # The other consumer gets nothing while the first holds everything in flight.
    assert client.get_subscription_info("g", "s").total_in_flight_messages == 3
    leaver.close()  # the connection goes away without acking
    received = take(other, 3)
    assert sorted(e.id for e in received) == sorted(e.id for e in events)
    for event in received:
        other.ack(event)
    other.stop()


def test_competing_consumers_round_robin(client: KurrentDBClient) -> None:
    client.create_subscription_to_all("g", consumer_strategy="RoundRobin", from_end=True)
    one = client.read_subscription_to_all("g", timeout=10)
    two = client.read_subscription_to_all("g", timeout=10)
    events = append(client, "s1", "A", "B", "C") + append(client, "s2", "D", "E", "F")
    seen: dict[UUID, int] = {}
    while len(seen) < len(events):
        for index, sub in enumerate((one, two)):
            event = next(sub)
            sub.ack(event)
            seen[event.id] = index
    assert set(seen) == {e.id for e in events}
    assert sorted(list(seen.values()).count(i) for i in (0, 1)) == [3, 3]
    one.stop()
    two.stop()


def test_update_and_delete_drop_consumers(client: KurrentDBClient) -> None:
    client.create_subscription_to_stream("g", "s")
    append(client, "s", "A")
    sub = client.read_subscription_to_stream("g", "s", timeout=10)
    next(sub)
    client.update_subscription_to_stream("g", "s", max_retry_count=2)
    with pytest.raises(CancelledError, match="Subscription group g on stream s was dropped"):
        next(sub)
    # Reconnected, the unacked event comes again, under the new settings.
    sub = client.read_subscription_to_stream("g", "s", timeout=10)
    assert next(sub).type == "A"
    client.delete_subscription("g", "s")
    with pytest.raises(CancelledError, match="was dropped"):
        next(sub)
    with pytest.raises(NotFoundError):
        client.read_subscription_to_stream("g", "s")


def test_filtered_all_group(client: KurrentDBClient) -> None:
    client.create_subscription_to_all("types", filter_include=["Wanted.*"], min_checkpoint_count=1)
    client.create_subscription_to_all(
        "streams", filter_include=["keep-.*"], filter_by_stream_name=True
    )
    append(client, "keep-1", "Wanted1", "Other")
    append(client, "drop-1", "Other", "Wanted2")
    tail = append(client, "drop-2", "Other", "Other")

    sub = client.read_subscription_to_all("types", timeout=3)
    assert [e.type for e in drain(sub)] == ["Wanted1", "Wanted2"]
    # Events the filter skipped count as handled: the checkpoint passes them.
    last = client.read_all(backwards=True, limit=1, filter_exclude=[])
    last_position = next(iter(last)).commit_position
    assert next(iter(client.read_all(backwards=True, limit=1))).id == tail[-1].id
    wait_for(
        lambda: (
            client.get_subscription_info("types").last_checkpointed_event_position
            == f"C:{last_position}/P:{last_position}"
        )
    )

    sub = client.read_subscription_to_all("streams", timeout=3)
    assert [(e.stream_name, e.type) for e in drain(sub)] == [
        ("keep-1", "Wanted1"),
        ("keep-1", "Other"),
    ]


def test_links_in_a_stream_group(client: KurrentDBClient, server: BackgroundServer) -> None:
    originals = append(client, "source", "A", "B")
    server.run(lambda: server.server.store.link_to_stream("links", 0, [e.id for e in originals]))
    client.create_subscription_to_stream("plain", "links")
    client.create_subscription_to_stream("resolved", "links", resolve_links=True)

    sub = client.read_subscription_to_stream("plain", "links", timeout=3)
    plain = drain(sub)
    assert [(e.type, e.data) for e in plain] == [("$>", b"0@source"), ("$>", b"1@source")]
    sub = client.read_subscription_to_stream("resolved", "links", timeout=3)
    resolved = drain(sub)
    assert [e.id for e in resolved] == [e.id for e in originals]
    assert all(e.link is not None and e.ack_id == e.link.id for e in resolved)
    # Acked by the link id, nothing stays in flight.
    wait_for(
        lambda: (
            client.get_subscription_info("resolved", "links").last_checkpointed_event_position
            == "1"
        )
    )


def test_restart_resumes_after_the_checkpoint(
    start_server: StartServer, sqlite_url: str, make_client: MakeClient
) -> None:
    first = start_server(sqlite_url)
    client = make_client(first)
    client.create_subscription_to_stream("g", "s", min_checkpoint_count=1)
    events = append(client, "s", *(f"E{i}" for i in range(6)))
    sub = client.read_subscription_to_stream("g", "s", event_buffer_size=10, timeout=20)
    for event in take(sub, 3):
        sub.ack(event)
    take(sub, 3)  # delivered, never acked
    wait_for(lambda: client.get_subscription_info("g", "s").last_checkpointed_event_position == "2")
    first.stop()  # the consumer is still connected

    second = start_server(sqlite_url)
    client = make_client(second)
    sub = client.read_subscription_to_stream("g", "s", timeout=3)
    assert [e.id for e in drain(sub)] == [e.id for e in events[3:]]


def test_postgres_group_resumes_after_restart(
    start_server: StartServer, postgres_url: str, make_client: MakeClient
) -> None:
    first = start_server(postgres_url)
    client = make_client(first)
    client.create_subscription_to_all("g", filter_include=["P.*"])
    events = append(client, "s", "P1", "P2", "Q", "P3")
    sub = client.read_subscription_to_all("g", timeout=20)
    first_two = take(sub, 2)
    for event in first_two:
        sub.ack(event)
    sub.stop()  # the last consumer leaving flushes the checkpoint
    first.stop()

    second = start_server(postgres_url)
    client = make_client(second)
    sub = client.read_subscription_to_all("g", timeout=3)
    assert [e.id for e in drain(sub)] == [events[3].id]


def test_groups_across_two_servers_on_one_database(
    start_server: StartServer, sqlite_url: str, make_client: MakeClient
) -> None:
    one, two = start_server(sqlite_url), start_server(sqlite_url)
    a, b = make_client(one), make_client(two)
    a.create_subscription_to_stream("g", "s", min_checkpoint_count=1)
    events = append(a, "s", "A", "B", "C")
    first = a.read_subscription_to_stream("g", "s", timeout=20)
    event = next(first)
    first.ack(event)
    wait_for(lambda: a.get_subscription_info("g", "s").last_checkpointed_event_position == "0")
    # Server two's consumer waits as a standby while server one delivers the group...
    second = b.read_subscription_to_stream("g", "s", timeout=20)
    assert a.get_subscription_info("g", "s").total_in_flight_messages == 2
    # ... and takes it over, from the checkpoint, once server one lets it go.
    first.stop()
    taken = take(second, 2)
    assert [e.id for e in taken] == [e.id for e in events[1:]]
    # An update made through server one drops server two's consumer too.
    a.update_subscription_to_stream("g", "s", max_retry_count=3)
    with pytest.raises(CancelledError, match="was dropped"):
        for _ in second:
            pass


def test_metrics(client: KurrentDBClient, server: BackgroundServer) -> None:
    client.create_subscription_to_stream("g", "s", min_checkpoint_count=1)
    append(client, "s", "A", "B", "C")
    sub = client.read_subscription_to_stream("g", "s", timeout=10)
    sub.ack(next(sub))
    metrics = server.server.metrics
    assert metrics.persistent_subscriptions._value.get() == 1

    def lag() -> float | None:
        return metrics.registry.get_sample_value(
            "evstore_persistent_subscription_lag", {"stream": "s", "group": "g"}
        )

    wait_for(lambda: client.get_subscription_info("g", "s").last_checkpointed_event_position == "0")
    client.get_subscription_info("g", "s")  # refreshes the lag
    assert lag() == 2
    sub.stop()
    wait_for(lambda: metrics.persistent_subscriptions._value.get() == 0)
    client.delete_subscription("g", "s")
    assert lag() is None
