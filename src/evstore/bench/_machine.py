"""A description of the machine a run measured, for the results file and the docs."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["describe_machine", "source_revision", "version_of"]


def version_of(distribution: str) -> str | None:
    """An installed distribution's version, or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _first_line(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _disk_of(directory: str) -> str | None:
    """The device and filesystem type mounting ``directory`` (Linux), e.g. ``/dev/vda ext4``."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    best: list[str] | None = None
    resolved = os.path.realpath(directory)
    for fields in mounts:
        point = fields[1]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > len(best[1])):
            best = fields
    return f"{best[0]} {best[2]}" if best else None


def source_revision() -> str | None:
    """The git commit of the evstore source measured, ``+dirty`` when ``src/`` has
    uncommitted changes (which the figures then include), or None outside a checkout."""
    root = Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if changes else "")


def describe_machine(directory: str = ".") -> dict[str, Any]:
    """CPUs, memory, disk, Python and library versions, the time and the load average."""
    memory_kb = _first_line("/proc/meminfo", "MemTotal")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "nproc": os.cpu_count(),
        "cpu": _first_line("/proc/cpuinfo", "model name") or platform.processor(),
        "memory_gb": round(int(memory_kb.split()[0]) / 1024 / 1024, 1) if memory_kb else None,
        "disk": _disk_of(directory),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
        "evstore_revision": source_revision(),
        "versions": {
            name: version_of(name)
            for name in ("evstore", "asyncpg", "orjson", "eventsourcing", "psycopg")
        },
    }
