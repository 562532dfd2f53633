"""Fresh event ids: random version-4 UUIDs, never repeated across threads or a fork."""

from __future__ import annotations

import os
import threading
import uuid

from evstore import EventData
from evstore._ids import new_uuid4, uuid_from_bytes


def test_ids_are_random_version_4_uuids() -> None:
    ids = [new_uuid4() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:1000]:
        assert isinstance(value, uuid.UUID)
        assert (value.version, value.variant) == (4, uuid.RFC_4122)
        assert uuid.UUID(str(value)) == value  # an ordinary UUID in every respect
        assert hash(uuid.UUID(bytes=value.bytes)) == hash(value)
    # Every one of the 122 random bits varies.
    varying = 0
    for value in ids:
        varying |= value.int ^ ids[0].int
    assert bin(varying).count("1") == 122


def test_ids_default_event_ids_are_fresh() -> None:
    events = [EventData("E", {}) for _ in range(1000)]
    assert len({event.event_id for event in events}) == 1000
    assert all(event.event_id.version == 4 for event in events)


def test_ids_threads_never_share_an_id() -> None:
    made: list[list[uuid.UUID]] = [[] for _ in range(8)]

    def make(into: list[uuid.UUID]) -> None:
        for _ in range(20_000):
            into.append(new_uuid4())

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for into in made for value in into]
    assert len(set(everything)) == len(everything) == 160_000


def test_ids_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_uuid4()  # the parent holds a batch of unused values now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids, then leave at once
        os.close(read)
        os.write(write, b"".join(new_uuid4().bytes for _ in range(100)))
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    child = {uuid.UUID(bytes=data[i : i + 16]) for i in range(0, len(data), 16)}
    parent = {new_uuid4() for _ in range(100)}
    assert len(child) == 100
    assert child.isdisjoint(parent)


def test_ids_uuid_from_bytes_is_the_uuid_of_those_bytes() -> None:
    for value in [uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), new_uuid4()]:
        rebuilt = uuid_from_bytes(value.bytes)
        assert rebuilt == value and str(rebuilt) == str(value) and hash(rebuilt) == hash(value)
        assert isinstance(rebuilt, uuid.UUID)
