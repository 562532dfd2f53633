"""The server benchmarks' machinery: ``evstore serve`` as a child process, CPU clocks,
and py-spy profiles of a measured window.

The server runs as ``python -m evstore.cli --url URL [--schema S] serve --port 0`` (the
same interpreter, the same evstore source as the benchmark unless ``server_src`` puts
another first on its ``PYTHONPATH``), so that it has a GIL of its own: the clients and
the server compete for the machine's cores, not for one interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import evstore

__all__ = [
    "ProfileSummary",
    "Profiler",
    "ServerProcess",
    "cores",
    "cpu_per_op",
    "names",
    "process_cpu_seconds",
    "py_spy",
    "serve_command",
    "server_process",
    "summarise_profile",
]

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_LISTENING = re.compile(r"gRPC on \[?([^\]\s]+?)\]?:(\d+) ")


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid``, every thread (Linux ``/proc``), or
    None where ``/proc`` is not there."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its ")".
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_command(url: str, schema: str | None = None) -> list[str]:
    """The command line that serves ``url`` on a free loopback port, plaintext."""
    command = [sys.executable, "-m", "evstore.cli", "--url", url]
    if schema is not None:
        command += ["--schema", schema]
    command += ["serve", "--host", "127.0.0.1", "--port", "0", "--log-level", "warning"]
    return command


def _environment(server_src: str | None) -> dict[str, str]:
    # The evstore the benchmark imports (a checkout's src/ when run from benchmarks/), so
    # that the server measured is the code under test, not some installed copy.
    paths = [str(Path(evstore.__file__).resolve().parents[1])]
    if server_src is not None:
        paths.insert(0, str(Path(server_src).resolve()))
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@dataclass
class ServerProcess:
    """A running ``evstore serve`` child: its process, port and what it printed."""

    process: asyncio.subprocess.Process
    port: int
    command: list[str]
    lines: list[str] = field(default_factory=list)
    _drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def uri(self) -> str:
        """The KurrentDB connection string of the server."""
        return f"kurrentdb://127.0.0.1:{self.port}?tls=false"

    def cpu_seconds(self) -> float | None:
        """CPU seconds the server process has used so far."""
        return process_cpu_seconds(self.pid)

    async def stop(self) -> int:
        """SIGTERM (a graceful stop), then wait; the exit status (killed after a timeout)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        assert self.process.returncode is not None
        return self.process.returncode


async def _read_until_listening(process: asyncio.subprocess.Process, lines: list[str]) -> int:
    assert process.stderr is not None
    while True:
        raw = await process.stderr.readline()
        if not raw:
            raise RuntimeError("evstore serve exited before listening:\n" + "".join(lines[-20:]))
        line = raw.decode(errors="replace")
        lines.append(line)
        found = _LISTENING.search(line)
        if found:
            return int(found.group(2))


async def _drain(process: asyncio.subprocess.Process, lines: list[str]) -> None:
    # The server keeps logging (warnings) to stderr: read it so that the pipe never fills
    # and blocks the server, and keep the tail for error messages.
    assert process.stderr is not None
    while raw := await process.stderr.readline():
        lines.append(raw.decode(errors="replace"))
        del lines[:-200]


@asynccontextmanager
async def server_process(
    url: str, schema: str | None = None, *, server_src: str | None = None
) -> AsyncIterator[ServerProcess]:
    """``evstore serve`` on ``url`` in a child process, stopped (SIGTERM) on exit.

    Raises:
        RuntimeError: the server exited before listening, or did not exit 0 at the end.
        TimeoutError: it did not listen within a minute.
    """
    command = serve_command(url, schema)
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=_environment(server_src),
    )
    lines: list[str] = []
    try:
        port = await asyncio.wait_for(_read_until_listening(process, lines), START_TIMEOUT)
    except BaseException:
        if process.returncode is None:
            process.kill()
        await process.wait()
        raise
    server = ServerProcess(process, port, command, lines)
    server._drain = asyncio.ensure_future(_drain(process, lines))
    failed = False
    try:
        yield server
    except BaseException:
        failed = True
        raise
    finally:
        status = await server.stop()
        if status != 0 and not failed:
            raise RuntimeError(
                f"evstore serve exited with status {status}:\n" + "".join(lines[-20:])
            )


# -- profiles -------------------------------------------------------------------------


def py_spy() -> str | None:
    """The py-spy executable (beside the interpreter, or on PATH), or None."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


@dataclass(frozen=True)
class ProfileSummary:
    """Where a process spent its samples: per thread, per function (self and inclusive),
    as fractions of all samples; ``samples`` is the total."""

    samples: int
    threads: list[tuple[str, float]]
    self_time: list[tuple[str, float]]
    inclusive: list[tuple[str, float]]

    def as_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "threads": [[name, round(share, 4)] for name, share in self.threads],
            "self": [[name, round(share, 4)] for name, share in self.self_time],
            "inclusive": [[name, round(share, 4)] for name, share in self.inclusive],
        }


_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _function_of(frame: str) -> str:
    """``"Handle._run (asyncio/events.py:80)"`` -> ``"Handle._run (asyncio/events.py)"``."""
    found = _FRAME.match(frame)
    if found is None:
        return frame
    path = found.group("file")
    # Keep the package and module (evstore/server/streams.py), not the whole site-packages path.
    parts = path.replace("\\", "/").split("/")
    return f"{found.group('function')} ({'/'.join(parts[-2:])})"


def summarise_profile(collapsed: str, top: int = 60) -> ProfileSummary:
    """Summarise py-spy's ``--format raw`` output (collapsed stacks: ``thread;frame;...;
    frame COUNT`` per line, outermost first)."""
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        threads[re.sub(r"\s*\(\d+\)", "", frames[0])] += count
        functions = [_function_of(frame) for frame in frames[1:]]
        if functions:
            self_time[functions[-1]] += count
        for function in dict.fromkeys(functions):  # once per sample, outermost first
            inclusive[function] += count
    if total == 0:
        return ProfileSummary(0, [], [], [])

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, count / total) for name, count in counter.most_common(top)]

    return ProfileSummary(total, shares(threads), shares(self_time), shares(inclusive))


class Profiler:
    """py-spy records of processes over one measured window, into ``directory``.

    ``start(name, pid, seconds)`` launches ``py-spy record`` (non-blocking sampling, so the
    process runs at full speed; ``gil``: only samples holding the GIL); ``finish()`` waits
    for every record and returns their summaries by name. py-spy needs ptrace rights on the
    process (root, or ``kernel.yama.ptrace_scope`` 0).
    """

    def __init__(self, directory: Path, *, gil: bool = False, rate: int = 200) -> None:
        executable = py_spy()
        if executable is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.executable = executable
        self.directory = directory
        self.gil = gil
        self.rate = rate
        self._running: list[tuple[str, Path, asyncio.subprocess.Process]] = []
        directory.mkdir(parents=True, exist_ok=True)

    async def start(self, name: str, pid: int, seconds: float) -> None:
        """Record ``pid`` for ``seconds`` (rounded up to whole seconds) from now."""
        output = self.directory / f"{name}.txt"
        command = [
            self.executable,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds + 0.999))),
            "--rate",
            str(self.rate),
            "--format",
            "raw",
            "--output",
            str(output),
            "--nonblocking",
            "--threads",
        ]
        if self.gil:
            command.append("--gil")
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self._running.append((name, output, process))

    async def finish(self) -> dict[str, dict[str, Any]]:
        """Wait for every record started; ``{name: summary JSON}`` of those that wrote one."""
        summaries: dict[str, dict[str, Any]] = {}
        running, self._running = self._running, []
        for name, output, process in running:
            try:
                await asyncio.wait_for(process.wait(), 120)
            except TimeoutError:
                process.kill()
                await process.wait()
            if output.exists():
                summary = summarise_profile(output.read_text(errors="replace"))
                summaries[name] = {"file": str(output), **summary.as_json()}
        return summaries


def cpu_per_op(before: float | None, after: float | None, operations: int) -> float | None:
    """CPU microseconds per operation between two CPU readings (None when unknown)."""
    if before is None or after is None or operations <= 0:
        return None
    return round((after - before) / operations * 1e6, 1)


def cores(before: float | None, after: float | None, elapsed: float) -> float | None:
    """Cores used on average between two CPU readings ``elapsed`` seconds apart."""
    if before is None or after is None or elapsed <= 0:
        return None
    return round((after - before) / elapsed, 3)


def names(values: Sequence[str]) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (lower case, blanks dropped)."""
    return [part.strip().lower() for value in values for part in value.split(",") if part.strip()]
