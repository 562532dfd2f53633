"""Measured cells and whole runs, as written to and read from the results JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

from evstore.bench._timing import LoadResult

__all__ = ["Cell", "Run"]


@dataclass
class Cell:
    """One system at one concurrency in one workload on one backend."""

    backend: str
    workload: str
    system: str
    role: str
    concurrency: int
    events_per_op: int
    ops: int
    seconds: float
    ops_per_s: float
    events_per_s: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_load(
        cls,
        load: LoadResult,
        *,
        backend: str,
        workload: str,
        system: str,
        role: str,
        concurrency: int,
        events_per_op: int,
    ) -> Cell:
        return cls(
            backend=backend,
            workload=workload,
            system=system,
            role=role,
            concurrency=concurrency,
            events_per_op=events_per_op,
            ops=load.ops,
            seconds=round(load.elapsed, 3),
            ops_per_s=round(load.ops_per_s, 1),
            events_per_s=round(load.ops_per_s * events_per_op, 1),
            p50_ms=round(load.p50_ms, 3),
            p99_ms=round(load.p99_ms, 3),
        )


CellT = TypeVar("CellT")


@dataclass
class RunRecord(Generic[CellT]):
    """A whole run of one benchmark script: its cells, where and how it ran, and notes;
    saved as JSON and read back to redraw tables. Subclasses name their cell class."""

    cell_class: ClassVar[type[Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    cells: list[CellT] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "notes": self.notes,
            "cells": [asdict(cast(Any, c)) for c in self.cells],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            meta=dict(data.get("meta", {})),
            cells=[cls.cell_class(**cell) for cell in data.get("cells", [])],
            notes=list(data.get("notes", [])),
        )


@dataclass
class Run(RunRecord[Cell]):
    """A run of the storage suite (benchmarks/run.py)."""

    cell_class = Cell

    def find(
        self, backend: str, workload: str, system: str, concurrency: int | None = None
    ) -> Cell | None:
        """The first cell matching (any concurrency when ``concurrency`` is None)."""
        for cell in self.cells:
            if (cell.backend, cell.workload, cell.system) == (backend, workload, system) and (
                concurrency is None or cell.concurrency == concurrency
            ):
                return cell
        return None
