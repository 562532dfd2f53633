"""A short tour of evstore: ``python -m evstore.demo`` (or ``make run``).

It opens the store named by ``$EVSTORE_URL`` (default ``sqlite:///evstore.db``), appends to
a bank-account stream with optimistic concurrency, shows a conflicting writer being caught,
and reads the stream and the global ``$all`` log, saying what it does as it goes. Running it
again continues the same account: every step asks the store for the current version first,
so the demo works on a fresh store and on one it has already written to.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from evstore import (
    NO_STREAM,
    AsyncEventStore,
    EventData,
    RecordedEvent,
    StreamNotFoundError,
    WrongExpectedVersionError,
)

__all__ = ["main", "run_demo"]

ACCOUNT = "demo-account-1"


def _say(text: str) -> None:
    print(text)


def _describe(event: RecordedEvent) -> str:
    return (
        f"  #{event.event_number:<4} {event.stream_id}@{event.stream_version:<4} "
        f"{event.event_type:<15} {json.dumps(event.data)}  "
        f"({event.created_at:%Y-%m-%d %H:%M:%S} UTC)"
    )


async def _current_version(store: AsyncEventStore, stream_id: str) -> int:
    try:
        return (await store.stream_info(stream_id)).stream_version
    except StreamNotFoundError:
        return 0


async def run_demo(url: str | None = None) -> None:
    """Run the tour against ``url`` (default: ``$EVSTORE_URL`` or ``sqlite:///evstore.db``)."""
    async with AsyncEventStore(url) as store:
        _say(f"Opened the event store at {store.url}.")

        version = await _current_version(store, ACCOUNT)
        correlation = uuid.uuid4()
        if version == 0:
            _say(f"\nStream {ACCOUNT!r} does not exist yet: opening the account.")
            result = await store.append_to_stream(
                ACCOUNT,
                NO_STREAM,  # fails if someone else created the stream meanwhile
                [
                    EventData("AccountOpened", {"owner": "Ada"}, correlation_id=correlation),
                    EventData("MoneyDeposited", {"amount": 100}, correlation_id=correlation),
                ],
            )
        else:
            _say(f"\nStream {ACCOUNT!r} is at version {version} (from an earlier run).")
            result = await store.append_to_stream(
                ACCOUNT,
                version,  # "I have seen every event up to this version"
                [EventData("MoneyDeposited", {"amount": 100}, correlation_id=correlation)],
            )
        _say(
            f"Appended with an expected version: the stream is now at version "
            f"{result.stream_version}; the last event has global position {result.position}."
        )

        _say(
            f"\nA second writer still believes the stream is at version {version} "
            "and tries to withdraw money..."
        )
        try:
            await store.append_to_stream(
                ACCOUNT, version, [EventData("MoneyWithdrawn", {"amount": 30})]
            )
            _say("  ...and it succeeded, which should not happen.")
        except WrongExpectedVersionError as conflict:
            _say(
                f"  ...and is refused: WrongExpectedVersionError (expected "
                f"{conflict.expected_version}, actual {conflict.actual_version})."
            )

        latest = await _current_version(store, ACCOUNT)
        _say(f"It re-reads the version ({latest}), re-checks the balance and retries:")
        retry = await store.append_to_stream(
            ACCOUNT, latest, [EventData("MoneyWithdrawn", {"amount": 30})]
        )
        _say(f"  accepted; the stream is now at version {retry.stream_version}.")

        last_events = await store.read_stream_backward(ACCOUNT, count=5)
        _say(f"\nThe last {len(last_events)} events of {ACCOUNT!r}, oldest first:")
        for event in reversed(last_events):
            _say(_describe(event))
        balance = 0
        async for event in store.stream_forward(ACCOUNT):
            amount = event.data.get("amount", 0) if isinstance(event.data, dict) else 0
            if event.event_type == "MoneyDeposited":
                balance += amount
            elif event.event_type == "MoneyWithdrawn":
                balance -= amount
        _say(f"Replaying the whole stream gives a balance of {balance}.")

        _say(
            "\nA persistent subscription, 'balance-projector', catches up from its checkpoint "
            "(stored in the database, so a second run only sees the new events):"
        )
        handled = 0
        async with store.subscribe_to_stream(ACCOUNT, "balance-projector", buffer_size=100) as sub:
            while sub.checkpoint < retry.stream_version:
                batch = await sub.receive(timeout=10)
                if batch is None:
                    break
                handled += len(batch)
                await sub.ack(batch)
            checkpoint = sub.checkpoint
        _say(f"  it handled {handled} new event(s); its checkpoint is now version {checkpoint}.")

        all_events = await store.read_all_streams_backward(count=3)
        everything = await store.stream_info("$all")
        _say(
            f"\nThe global $all log has {everything.stream_version} position(s); "
            "its last three events:"
        )
        for event in reversed(all_events):
            _say(_describe(event))
        _say("\nRun it again: it continues the same account from where this run left it.")


def main() -> None:
    """Entry point of ``python -m evstore.demo``."""
    asyncio.run(run_demo())


if __name__ == "__main__":
    main()
