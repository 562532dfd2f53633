"""Regenerate the measured parts of docs/benchmarks.md from a run.

The document marks each generated block with ``<!-- bench:NAME -->`` …
``<!-- /bench:NAME -->``; :func:`update_document` replaces what lies between (blocks
``machine``, ``results`` and ``targets``) and leaves the prose alone.
"""

from __future__ import annotations

import re
from typing import Any

from evstore.bench._report import render, run_tables
from evstore.bench._results import Run

__all__ = ["markdown_blocks", "update_document"]

TARGETS_TITLE = "Targets (ratios in the same run)"


def _machine(run: Run) -> str:
    meta: dict[str, Any] = run.meta
    machine = meta.get("machine", {})
    pg = meta.get("postgres")
    lite = meta.get("sqlite")
    settings = meta.get("settings", {})
    versions = machine.get("versions", {})
    rows = [
        ("date", machine.get("date")),
        ("CPUs (`nproc`)", f"{machine.get('nproc')} ({machine.get('cpu')})"),
        ("memory", f"{machine.get('memory_gb')} GB"),
        ("disk", machine.get("disk")),
        ("OS", machine.get("platform")),
        ("Python", machine.get("python")),
        (
            "load average (1, 5, 15 min) at start / end",
            f"{machine.get('load_average_at_start')} / {machine.get('load_average_at_end')}",
        ),
        ("evstore revision", machine.get("evstore_revision")),
        (
            "libraries",
            ", ".join(f"{name} {version}" for name, version in versions.items() if version),
        ),
    ]
    if pg:
        rows.append(("PostgreSQL", pg.get("server_version")))
        rows.append(
            (
                "PostgreSQL settings",
                ", ".join(f"{k}={v}" for k, v in pg.items() if k != "server_version"),
            )
        )
    if lite:
        rows.append(
            (
                "SQLite",
                f"{lite.get('sqlite_version')}; a default connection's synchronous: "
                f"{lite.get('default_synchronous')}",
            )
        )
    rows.append(
        (
            "settings",
            f"{settings.get('seconds')} s measured after {settings.get('warmup')} s warm-up per "
            f"cell; writers {settings.get('writers')}; readers {settings.get('readers')}; W3 "
            f"{settings.get('processes')} processes x {settings.get('process_writers')} writers; "
            f"W5 {settings.get('scan_events'):,} events, memory {settings.get('memory_events'):,}",
        )
    )
    lines = ["| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines) + "\n"


def markdown_blocks(run: Run) -> dict[str, str]:
    """The generated blocks of the document, by name."""
    tables = run_tables(run)
    results = [render(t, markdown=True) for t in tables if t.title != TARGETS_TITLE]
    targets = [render(t, markdown=True) for t in tables if t.title == TARGETS_TITLE]
    notes = "".join(f"\nNote: {note}\n" for note in run.notes)
    return {
        "machine": _machine(run),
        "results": "\n".join(results) + notes,
        "targets": "\n".join(targets) or "No target was measured.\n",
    }


def update_document(text: str, run: Run) -> str:
    """``text`` with every marked block replaced by ``run``'s figures.

    Raises:
        ValueError: a block's markers are missing.
    """
    for name, body in markdown_blocks(run).items():
        pattern = re.compile(
            rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", flags=re.DOTALL
        )
        found = pattern.search(text)
        if found is None:
            raise ValueError(f"the document has no <!-- bench:{name} --> block")
        text = text[: found.end(1)] + "\n" + body + "\n" + text[found.start(2) :]
    return text
