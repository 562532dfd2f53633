"""evstore subscriptions: list, parked, replay-parked and delete on state made by the library.

The subscriptions are real ones: subscribed, acknowledged and parked through
:class:`evstore.EventStore`, so the CLI reads what a running application would have left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evstore import NO_STREAM, EventData, EventStore, RecordedEvent, SyncSubscription

from .conftest import Invoke, assert_one_line_error, needs_sqlite, subprocess_env
from .test_lifecycle import _talk_through_a_terminal
from .test_streams import lines

TIMEOUT = 30.0


def receive_at_least(sub: SyncSubscription, count: int) -> list[RecordedEvent]:
    """Batches until ``count`` events arrived (the engine may split them)."""
    events: list[RecordedEvent] = []
    while len(events) < count:
        batch = sub.receive(timeout=TIMEOUT)
        assert batch is not None
        events += batch
    return events


def make_state(url: str) -> None:
    """Four subscriptions in the states the list must tell apart.

    Positions: order-1@1..5 are 1..5, gone@1..2 are 6..7.
    - ``projector`` on order-1: acked 1-2, parked 3, acked 4 -> checkpoint 4, lag 1, 1 parked
    - ``audit`` on $all: acked positions 1-2 -> checkpoint 2, lag 5
    - ``waiting`` on the missing stream ``later`` -> checkpoint 0, lag 0
    - ``old`` on ``gone``, soft-deleted after it acked 1 -> lag unknown
    """
    with EventStore(url) as store:
        events = [EventData("Step", {"n": n}) for n in range(1, 6)]
        store.append_to_stream("order-1", NO_STREAM, events)
        store.append_to_stream("gone", NO_STREAM, [EventData("G", {}), EventData("G", {})])
        with store.subscribe_to_stream("order-1", "projector", buffer_size=10) as sub:
            got = receive_at_least(sub, 4)
            sub.ack(got[1])
            sub.nack(got[2], "park")
            sub.ack(got[3])
            assert sub.checkpoint == 4
        with store.subscribe_to_all_streams("audit", buffer_size=10) as sub:
            sub.ack(receive_at_least(sub, 2)[1])
        with store.subscribe_to_stream("later", "waiting") as sub:
            sub.wait_subscribed(timeout=TIMEOUT)
        with store.subscribe_to_stream("gone", "old") as sub:
            sub.ack(receive_at_least(sub, 1)[0])
        store.delete_stream("gone", 2)


def listed(invoke: Invoke, *args: str, url: str | None = None) -> list[dict[str, Any]]:
    result = invoke("subscriptions", *args, url=url)
    assert result.exit_code == 0, result.stderr
    return lines(result.stdout)


def by_name(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record["subscription_name"]: record for record in records}


def test_list_shows_checkpoint_lag_and_parked_count(invoke: Invoke, store_url: str) -> None:
    make_state(store_url)
    records = listed(invoke, "list", "--json")
    assert [(r["stream_id"], r["subscription_name"]) for r in records] == [
        ("$all", "audit"),
        ("gone", "old"),
        ("later", "waiting"),
        ("order-1", "projector"),
    ]
    summary = {
        name: (r["checkpoint"], r["lag"], r["parked_count"]) for name, r in by_name(records).items()
    }
    assert summary == {
        "projector": (4, 1, 1),
        "audit": (2, 5, 0),
        "waiting": (0, 0, 0),
        "old": (1, None, 0),
    }
    assert all(r["created_at"].endswith("+00:00") for r in records)
    # The bare group lists too, and the group's --json is the list's.
    assert listed(invoke) == records
    assert listed(invoke, "--json") == records
    assert listed(invoke, "--format", "jsonl", "list") == records


def test_list_lag_follows_new_events(invoke: Invoke, store_url: str) -> None:
    make_state(store_url)
    with EventStore(store_url) as store:
        store.append_to_stream("order-1", 5, [EventData("Step", {"n": 6})])
        store.append_to_stream("later", NO_STREAM, [EventData("Now", {}), EventData("Now", {})])
    summary = {name: r["lag"] for name, r in by_name(listed(invoke, "--json")).items()}
    assert summary == {"projector": 2, "audit": 8, "waiting": 2, "old": None}


def test_list_as_a_table(invoke: Invoke, store_url: str) -> None:
    make_state(store_url)
    result = invoke("subscriptions", "--format", "table")
    assert result.exit_code == 0, result.stderr
    for text in ("stream", "checkpoint", "lag", "parked", "projector", "audit", "$all"):
        assert text in result.stdout, result.stdout
    assert "4 persistent subscriptions" in result.stdout
    # old's lag cannot be known: its stream is deleted.
    [old_row] = [row for row in result.stdout.splitlines() if "old" in row]
    assert "?" in old_row and "lag ? = stream deleted" in result.stdout
    [projector_row] = [row for row in result.stdout.splitlines() if "projector" in row]
    cells = [cell.strip() for cell in projector_row.strip("│ ").split("│")]
    assert cells[:5] == ["order-1", "projector", "4", "1", "1"], cells


def test_empty_store_lists_nothing(invoke: Invoke) -> None:
    invoke("init")
    assert listed(invoke) == []
    table = invoke("subscriptions", "list", "--format", "table")
    assert "0 persistent subscriptions" in table.stdout


def test_parked_lists_the_parked_events(invoke: Invoke, store_url: str) -> None:
    make_state(store_url)
    [event] = listed(invoke, "parked", "order-1", "projector", "--json")
    assert (event["event_number"], event["stream_id"], event["stream_version"]) == (
        3,
        "order-1",
        3,
    )
    assert event["data"] == {"n": 3}
    # The group's --json reaches the subcommand; a subscription without parked events.
    assert listed(invoke, "--json", "parked", "$all", "audit") == []
    table = invoke("subscriptions", "parked", "order-1", "projector", "--format", "table")
    assert table.exit_code == 0, table.stderr
    assert "parked events of 'projector' on 'order-1'" in table.stdout
    assert "order-1@3" in table.stdout


def test_replay_parked_redelivers_and_empties_the_list(invoke: Invoke, store_url: str) -> None:
    make_state(store_url)
    result = invoke("subscriptions", "replay-parked", "order-1", "projector")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "replay of 1 parked event of 'projector' on 'order-1' requested\n"
    with EventStore(store_url) as store, store.subscribe_to_stream("order-1", "projector") as sub:
        # The parked event comes first, ahead of event 5 (the checkpoint is 4).
        [replayed] = sub.receive(timeout=TIMEOUT) or []
        assert (replayed.event_number, replayed.data) == (3, {"n": 3})
        sub.ack(replayed)
        [new] = sub.receive(timeout=TIMEOUT) or []
        assert new.event_number == 5
        sub.ack(new)
    assert listed(invoke, "parked", "order-1", "projector", "--json") == []
    projector = by_name(listed(invoke, "--json"))["projector"]
    assert (projector["checkpoint"], projector["lag"], projector["parked_count"]) == (5, 0, 0)


def test_delete_needs_confirmation_then_forgets_everything(invoke: Invoke, store_url: str) -> None:
    make_state(store_url)
    # CliRunner's stdin is not a terminal: without --yes nothing is deleted.
    refused = invoke("subscriptions", "delete", "order-1", "projector", input="y\n")
    assert_one_line_error(refused, "without confirmation", "--yes")
    assert "projector" in by_name(listed(invoke, "--json"))

    deleted = invoke("subscriptions", "delete", "order-1", "projector", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert deleted.stdout == (
        "deleted subscription 'projector' on 'order-1' (checkpoint 4, 1 parked event)\n"
    )
    assert set(by_name(listed(invoke, "--json"))) == {"audit", "waiting", "old"}
    assert_one_line_error(
        invoke("subscriptions", "parked", "order-1", "projector"), "no subscription"
    )
    # Subscribing again starts afresh: from the origin, with nothing parked.
    with EventStore(store_url) as store:
        assert store.parked_events("order-1", "projector") == []
        with store.subscribe_to_stream("order-1", "projector") as sub:
            assert [e.event_number for e in sub.receive(timeout=TIMEOUT) or []] == [1]

    all_streams = invoke("subscriptions", "delete", "$all", "audit", "-y")
    assert all_streams.exit_code == 0, all_streams.stderr
    assert "audit" not in by_name(listed(invoke, "--json"))


@pytest.mark.parametrize(
    "command",
    [
        ["parked", "order-1", "nope"],
        ["replay-parked", "order-1", "nope"],
        ["delete", "order-1", "nope", "--yes"],
        ["parked", "nope", "projector"],
    ],
)
def test_an_unknown_subscription_is_a_one_line_error(
    invoke: Invoke, store_url: str, command: list[str]
) -> None:
    make_state(store_url)
    assert_one_line_error(invoke("subscriptions", *command), "no subscription")


def test_contradicting_formats_are_a_usage_error(invoke: Invoke) -> None:
    invoke("init")
    result = invoke("subscriptions", "list", "--json", "--format", "table")
    assert result.exit_code == 2 and "contradict" in result.stderr


@needs_sqlite
def test_a_database_without_a_store_is_a_one_line_error(invoke: Invoke, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert_one_line_error(invoke("subscriptions", url=url), "holds no event store")


@needs_sqlite
def test_delete_asks_on_a_terminal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    make_state(url)
    args = ["--url", url, "subscriptions", "delete", "order-1", "projector"]
    status, output = _talk_through_a_terminal(args, b"n\n", subprocess_env())
    assert status == 1 and "Aborted" in output, output
    with EventStore(url) as store:
        assert len(store.parked_events("order-1", "projector")) == 1
    status, output = _talk_through_a_terminal(args, b"y\n", subprocess_env())
    assert status == 0 and "deleted subscription 'projector'" in output, output
    with EventStore(url) as store:
        names = {info.subscription_name for info in store.list_subscriptions()}
    assert names == {"audit", "waiting", "old"}


def test_subscriptions_on_postgres(invoke: Invoke, postgres_url: str) -> None:
    backend = pytest.importorskip("evstore.backends.postgres")
    if not hasattr(backend, "PostgresBackend"):
        pytest.skip("the PostgreSQL backend is not finished yet")
    make_state(postgres_url)
    summary = {
        name: (r["checkpoint"], r["lag"], r["parked_count"])
        for name, r in by_name(listed(invoke, "--json", url=postgres_url)).items()
    }
    assert summary == {
        "projector": (4, 1, 1),
        "audit": (2, 5, 0),
        "waiting": (0, 0, 0),
        "old": (1, None, 0),
    }
    [event] = listed(invoke, "parked", "order-1", "projector", "--json", url=postgres_url)
    assert event["event_number"] == 3
    replay = invoke("subscriptions", "replay-parked", "order-1", "projector", url=postgres_url)
    assert replay.exit_code == 0, replay.stderr
    deleted = invoke("subscriptions", "delete", "$all", "audit", "--yes", url=postgres_url)
    assert deleted.exit_code == 0, deleted.stderr
    remaining = by_name(listed(invoke, "--json", url=postgres_url))
    assert set(remaining) == {"projector", "waiting", "old"}
