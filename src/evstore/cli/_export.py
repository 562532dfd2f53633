"""Writing a whole store as an export file: the events of ``$all``, then the stream state.

The cut is ``$all`` as it is when the export starts: later events are left out, and so is
each stream's tail from its first entry whose event came after the cut, so every link in
the file names an event in the file even while others write. Streams are listed page by
page; a stream created, or hard-deleted, while the export runs may be missed or listed
twice, so export a store nobody writes to for an exact copy.

What the API cannot read is not exported: the links of soft-deleted streams (reads of them
raise ``StreamDeletedError``), links to hard-deleted events, and links hidden by stream
metadata (``$tb``, ``$maxCount``, ``$maxAge``). The file keeps their place (the ``deleted``
and ``version`` records), so stream versions and event numbers still come out the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

from evstore import AsyncEventStore, StreamDeletedError, StreamInfo, StreamNotFoundError
from evstore.cli._output import JsonLines, progress_bar
from evstore.cli._records import event_record
from evstore.cli._stream_records import deleted_record, link_record, version_record

__all__ = ["BATCH", "PAGE_SIZE", "ExportCounts", "export_store"]

BATCH = 1000
"""Events per read."""

PAGE_SIZE = 500
"""Streams per listing page."""

_ALL = "$all"


@dataclass
class ExportCounts:
    """What an export wrote, and what it could not."""

    events: int = 0
    links: int = 0
    deleted: int = 0
    unexported: int = 0
    """Entries of soft-deleted streams that are not their own events: their links."""
    unreadable: int = 0
    """Live streams with entries no read returns (kept as empty slots)."""

    def summary(self, source: str) -> str:
        """One line for stderr; ``source`` names the store."""
        line = (
            f"exported {self.events:,} events, {self.links:,} links, "
            f"{self.deleted:,} deleted streams from {source}"
        )
        if self.unexported:
            line += (
                f"; not exported: {self.unexported:,} links of deleted streams (links of deleted "
                "streams are not exportable; import keeps their places)"
            )
        if self.unreadable:
            line += (
                f"; {self.unreadable:,} streams have unreadable entries (links to hard-deleted "
                "events, or hidden by $tb/$maxCount/$maxAge), kept as empty slots"
            )
        return line + "."


async def _listing(store: AsyncEventStore) -> AsyncIterator[StreamInfo]:
    """Every stream but ``$all``, oldest first, a page at a time."""
    page_number = 1
    while True:
        page = await store.paginate_streams(page_size=PAGE_SIZE, page_number=page_number)
        for info in page.entries:
            if info.stream_id != _ALL:
                yield info
        if page_number >= page.total_pages:
            return
        page_number += 1


async def _export_stream(
    store: AsyncEventStore, writer: JsonLines, info: StreamInfo, last: int, counts: ExportCounts
) -> None:
    """Write the links of a live stream, and its version if some entries are unreadable."""
    stream_id = info.stream_id
    previous = 0
    gaps = False
    end: int | None = None
    try:
        async for entry in store.stream_forward(stream_id, batch_size=BATCH):
            if entry.position > last:
                # Written after the cut, and so is everything after it in this stream.
                end = entry.event_number - 1
                break
            gaps = gaps or entry.event_number != previous + 1
            previous = entry.event_number
            if entry.stream_id != stream_id or entry.stream_version != entry.event_number:
                writer.write(link_record(stream_id, entry))
                counts.links += 1
    except (StreamDeletedError, StreamNotFoundError):
        return  # deleted since it was listed: it is no longer part of the store
    version = max(info.stream_version, previous) if end is None else end
    if gaps or version > previous:
        writer.write(version_record(stream_id, version))
        counts.unreadable += 1


async def export_store(store: AsyncEventStore, writer: JsonLines, progress: bool) -> ExportCounts:
    """Write every event of ``$all``, then the links, deletions and versions of the streams."""
    counts = ExportCounts()
    # Export up to the end as it is now: a well-defined cut even while others append.
    last = (await store.stream_info(_ALL)).stream_version
    deleted = {info.stream_id async for info in _listing(store) if info.status == "deleted"}
    own_events: Counter[str] = Counter()
    with progress_bar("exporting", last, enabled=progress) as update:
        async for event in store.stream_all_forward(0, batch_size=BATCH):
            if event.position > last:
                break
            writer.write(event_record(event))
            counts.events += 1
            if event.stream_id in deleted:
                own_events[event.stream_id] += 1
            if counts.events % BATCH == 0:
                update(event.position)
    async for info in _listing(store):
        if info.status == "deleted":
            writer.write(deleted_record(info))
            counts.deleted += 1
            counts.unexported += max(0, info.stream_version - own_events[info.stream_id])
        else:
            await _export_stream(store, writer, info, last, counts)
    return counts
