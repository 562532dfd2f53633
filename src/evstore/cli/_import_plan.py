"""Checking an export file in full before import writes anything, and what it will do.

Two passes over the file. The first parses every line and gathers the stream state (links,
deletions, versions), which the export writes after the events. The second walks the events
in file order, as the import will replay them, and settles every entry number of every
stream: an own event, a link (whose event must come earlier in the file than the stream's
next own event, since the replay links it just before appending that event), or an entry
the file could not hold. Those are allowed only in streams the file says more about:

* a soft-deleted stream's unexportable links become links to other events of the store,
  which no one can read (the stream refuses reads): the check makes sure enough other
  events come first;
* a live stream's unreadable entries (a ``version`` record) become empty slots, made by
  linking a scratch event and hard-deleting it, which costs one ``$all`` position each.

Memory grows with the links and streams of the file, not with its events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO
from uuid import UUID

from evstore.cli._records import ImportedEvent, loads_object
from evstore.cli._stream_records import (
    DeletedRecord,
    LinkRecord,
    Record,
    VersionRecord,
    parse_record,
)

__all__ = ["ImportPlan", "StreamPlan", "check_file", "read_records"]


@dataclass
class StreamPlan:
    """What the file holds for one stream, and how the replay rebuilds it."""

    links: dict[int, UUID] = field(default_factory=dict)
    """Event number -> linked event id."""
    link_lines: dict[int, int] = field(default_factory=dict)
    last_own: int = 0
    """Version of the stream's last own event in the file (0: none)."""
    declared: int = 0
    """Version named by a ``deleted`` or ``version`` record (0: none)."""
    deleted: bool = False
    fillers: int = 0
    """Unexportable entries of a deleted stream, recreated as unreadable links."""
    slots: int = 0
    """Unreadable entries of a live stream, recreated as empty slots."""

    @property
    def final(self) -> int:
        """The version the stream must end at."""
        return max(self.last_own, max(self.links, default=0), self.declared)


@dataclass
class ImportPlan:
    """A checked file: counts for messages and progress, and every stream's plan."""

    events: int = 0
    streams: dict[str, StreamPlan] = field(default_factory=dict)
    """In order of first appearance in the file (the replay creates streams in this order)."""

    def count(self, what: str) -> int:
        """Sum of a ``StreamPlan`` counter over the streams: ``fillers`` or ``slots``."""
        return sum(getattr(plan, what) for plan in self.streams.values())

    @property
    def links(self) -> int:
        return sum(len(plan.links) for plan in self.streams.values())

    @property
    def deleted(self) -> int:
        return sum(plan.deleted for plan in self.streams.values())

    @property
    def operations(self) -> int:
        """Entries the replay writes: events, links, fillers and slots."""
        return self.events + self.links + self.count("fillers") + self.count("slots")


def read_records(source: IO[bytes]) -> Iterator[tuple[int, Record]]:
    """Every record of the file with its line number, from the start."""
    source.seek(0)
    for number, line in enumerate(source, start=1):
        if line.strip():
            yield number, parse_record(line, f"line {number}")


def _events(source: IO[bytes]) -> Iterator[tuple[str, int, UUID]]:
    """Stream, version and id of each event, in file order (the file is already checked)."""
    source.seek(0)
    for line in source:
        if line.strip():
            record = loads_object(line, "")
            if "kind" not in record:
                yield record["stream_id"], record["stream_version"], UUID(record["event_id"])


class _Checker:
    def __init__(self) -> None:
        self.plan = ImportPlan()
        self.link_lines: dict[UUID, int] = {}
        """Every linked event id -> the line of the first link to it."""
        self.origins: dict[UUID, str] = {}
        """Linked event ids met so far in the second pass -> their stream."""
        self.cursor: dict[str, int] = {}
        self.own_seen: dict[str, int] = {}

    def stream(self, stream_id: str) -> StreamPlan:
        return self.plan.streams.setdefault(stream_id, StreamPlan())

    # -- first pass ------------------------------------------------------------------

    def gather(self, line: int, record: Record) -> None:
        plan = self.stream(record.stream_id)
        if isinstance(record, ImportedEvent):
            self.plan.events += 1
            if record.stream_version <= plan.last_own:
                raise ValueError(
                    f"line {line} ({record.event.event_id}): stream {record.stream_id!r} goes "
                    f"from version {plan.last_own} back to {record.stream_version}"
                )
            plan.last_own = record.stream_version
        elif isinstance(record, LinkRecord):
            self._gather_link(line, record, plan)
        else:
            self._gather_version(line, record, plan)

    def _gather_link(self, line: int, record: LinkRecord, plan: StreamPlan) -> None:
        where = f"line {line}: link {record.stream_id}@{record.event_number}"
        if record.event_number in plan.links:
            earlier = plan.link_lines[record.event_number]
            raise ValueError(f"{where} is already given on line {earlier}")
        if record.event_id in plan.links.values():
            raise ValueError(f"{where}: event {record.event_id} is linked twice in the stream")
        plan.links[record.event_number] = record.event_id
        plan.link_lines[record.event_number] = line
        self.link_lines.setdefault(record.event_id, line)

    def _gather_version(
        self, line: int, record: DeletedRecord | VersionRecord, plan: StreamPlan
    ) -> None:
        kind = "deleted" if isinstance(record, DeletedRecord) else "version"
        if (plan.deleted and kind == "deleted") or (plan.declared and kind == "version"):
            raise ValueError(f"line {line}: a second {kind} record for {record.stream_id!r}")
        plan.deleted = plan.deleted or kind == "deleted"
        plan.declared = max(plan.declared, record.stream_version)

    def check_versions(self) -> None:
        for stream_id, plan in self.plan.streams.items():
            entries = max(plan.last_own, max(plan.links, default=0))
            if plan.declared and plan.declared < entries:
                raise ValueError(
                    f"stream {stream_id!r}: the file gives it version {plan.declared}, "
                    f"but has entries up to {entries}"
                )

    # -- second pass -----------------------------------------------------------------

    def walk(self, stream_id: str, version: int, event_id: UUID, ordinal: int) -> None:
        plan = self.plan.streams[stream_id]
        if version in plan.links:
            raise ValueError(
                f"event {ordinal} ({event_id}) is {stream_id}@{version}, but line "
                f"{plan.link_lines[version]} makes that entry a link"
            )
        self.settle(stream_id, version - 1, version, ordinal - 1)
        self.cursor[stream_id] = version
        self.own_seen[stream_id] = self.own_seen.get(stream_id, 0) + 1
        if event_id in self.link_lines:
            self.origins[event_id] = stream_id

    def settle(self, stream_id: str, upto: int, next_version: int, imported: int) -> None:
        """Check entries after the stream's cursor up to ``upto``, given ``imported`` events."""
        plan = self.plan.streams[stream_id]
        for number in range(self.cursor.get(stream_id, 0) + 1, upto + 1):
            target = plan.links.get(number)
            if target is not None:
                self._check_link(stream_id, number, target, next_version)
            elif plan.deleted:
                others = imported - self.own_seen.get(stream_id, 0) - len(plan.links)
                if others <= plan.fillers:
                    raise ValueError(
                        f"deleted stream {stream_id!r} has more unexported entries by version "
                        f"{number} than the file has other events before it to stand in"
                    )
                plan.fillers += 1
            elif plan.declared:
                plan.slots += 1
            else:
                raise ValueError(
                    f"stream {stream_id!r} goes from version {number - 1} to {next_version}; "
                    "events in between are missing from the file (without link, version or "
                    "deleted records the stream versions cannot be reproduced)"
                )
        self.cursor[stream_id] = max(upto, self.cursor.get(stream_id, 0))

    def _check_link(self, stream_id: str, number: int, target: UUID, next_version: int) -> None:
        where = f"line {self.plan.streams[stream_id].link_lines[number]}: link"
        origin = self.origins.get(target)
        if origin is None:
            raise ValueError(
                f"{where} {stream_id}@{number} points to event {target}, which is not in the "
                f"file before {stream_id}@{next_version}"
            )
        if origin == stream_id:
            raise ValueError(f"{where} {stream_id}@{number} links the stream's own event")

    def finish(self) -> None:
        for stream_id, plan in self.plan.streams.items():
            self.settle(stream_id, plan.final, plan.final, self.plan.events)


def check_file(source: IO[bytes]) -> ImportPlan:
    """Read the whole file: every record well-formed, every stream reproducible.

    Raises:
        ValueError: the first problem, naming its line or event.
    """
    checker = _Checker()
    for line, record in read_records(source):
        checker.gather(line, record)
    checker.check_versions()
    for ordinal, (stream_id, version, event_id) in enumerate(_events(source), start=1):
        checker.walk(stream_id, version, event_id, ordinal)
    missing = sorted(
        (line, event_id)
        for event_id, line in checker.link_lines.items()
        if event_id not in checker.origins
    )
    if missing:
        line, event_id = missing[0]
        raise ValueError(f"line {line}: link to event {event_id}, which is not in the file")
    checker.finish()
    return checker.plan
