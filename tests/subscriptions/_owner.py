"""A subscriber process for the takeover test (run by it, not collected).

    python _owner.py URL NAME STOP_ACKING_AFTER LOG

Subscribes to the all-streams subscription NAME, writes "active" to LOG once it owns it,
then one line per delivered event ("<position>") and "acked <position>" after each ack.
It acks every batch until it has received STOP_ACKING_AFTER events, then keeps the rest
unacknowledged and waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys

from evstore import AsyncEventStore


async def main(url: str, name: str, stop_after: int, path: str) -> None:
    with open(path, "a", buffering=1) as log:
        async with AsyncEventStore(url) as store:
            sub = await store.subscribe_to_all_streams(name, buffer_size=7, retry_interval=0.2)
            await sub.wait_subscribed(30)
            log.write("active\n")
            received = 0
            async for batch in sub:
                for event in batch:
                    log.write(f"{event.position}\n")
                received += len(batch)
                if received > stop_after:
                    await asyncio.Event().wait()  # hold these unacked until killed
                await sub.ack(batch)
                log.write(f"acked {batch[-1].position}\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
