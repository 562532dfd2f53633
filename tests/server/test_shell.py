"""``evstore serve`` as a real process: it starts, answers kurrentdbclient, and on SIGTERM
or SIGINT stops gracefully (exit 0, appends it acknowledged are in the store, the store is
closed cleanly); the security policy refuses a plaintext non-loopback address."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import KurrentDBClientError

from evstore import EventStore
from evstore.server.app import BackgroundServer, EvstoreServer, ServerConfigError

STARTUP_TIMEOUT = 30.0
GRPC_LINE = re.compile(r"^gRPC on (\S+):(\d+) ")
HTTP_LINE = re.compile(r"^HTTP on (\S+):(\d+) ")


@dataclass
class ServeProcess:
    """A running ``evstore serve`` and the lines of its stderr."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    port: int = 0
    http_port: int | None = None

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern.pattern!r}: {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"serve exited ({self.process.poll()}): {self.seen}")
            self.seen.append(line)
            if match := pattern.search(line):
                return match

    def wait_exit(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        while (line := self.lines.get(timeout=5)) is not None:
            self.seen.append(line)
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(self.seen)


Serve = Callable[..., ServeProcess]


def _serve_command(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "evstore.cli", "--url", url, "serve", *args]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(url, *args)``: a started ``evstore serve`` process (killed if left running)."""
    started: list[ServeProcess] = []

    def start(url: str, *args: str, env: dict[str, str] | None = None) -> ServeProcess:
        process = subprocess.Popen(
            _serve_command(url, "--port", "0", *args),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
        )
        proc = ServeProcess(process)
        started.append(proc)
        threading.Thread(target=proc._pump, daemon=True).start()
        match = proc.wait_for_line(GRPC_LINE, STARTUP_TIMEOUT)
        proc.port = int(match.group(2))
        if "--http-port" in args:
            proc.http_port = int(proc.wait_for_line(HTTP_LINE, 5).group(2))
        return proc

    yield start
    for proc in started:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.process.wait(10)


def _client(port: int) -> KurrentDBClient:
    return KurrentDBClient(f"kurrentdb://127.0.0.1:{port}?tls=false")


def _http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _stored_ids(url: str, stream: str) -> list[uuid.UUID]:
    with EventStore(url) as store:
        return [event.event_id for event in store.read_stream_forward(stream)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_answers_then_stops_cleanly(
    serve: Serve, tmp_path: Path, signum: signal.Signals
) -> None:
    db = tmp_path / "served.db"
    url = f"sqlite:///{db}"
    proc = serve(url, "--http-port", "0")
    assert "Traceback" not in proc.stderr
    client = _client(proc.port)
    try:
        [member] = client.read_gossip()
        assert (member.address, member.port) == ("127.0.0.1", proc.port)
        events = [NewEvent(type="Placed", data=b'{"n": %d}' % n) for n in range(3)]
        client.append_to_stream("order-1", current_version=StreamState.NO_STREAM, events=events)
        assert _http_status(proc.http_port, "/health/ready") == 200
    finally:
        client.close()

    proc.process.send_signal(signum)
    assert proc.wait_exit(timeout=30) == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.seen[-1] == "stopped"
    # Closed cleanly: SQLite removes the write-ahead log when the last connection closes.
    assert not Path(f"{db}-wal").exists()
    assert _stored_ids(url, "order-1") == [event.id for event in events]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigterm_keeps_every_acknowledged_append(
    serve: Serve, tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    """Appends racing a SIGTERM: each one the server acknowledged is in the store."""
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'race.db'}"
    proc = serve(url, "--grace", "10")
    acknowledged: dict[str, list[uuid.UUID]] = {}
    first_round = threading.Barrier(9)

    def writer(stream: str) -> None:
        client = _client(proc.port)
        ids = acknowledged.setdefault(stream, [])
        try:
            for n in range(10_000):
                event = NewEvent(type="Tick", data=b'{"n": %d}' % n)
                try:
                    # A deadline: once the server is gone, the client waits for it to come
                    # back (a call that never ends would keep the test run alive).
                    client.append_to_stream(
                        stream, current_version=StreamState.ANY, events=[event], timeout=10
                    )
                except KurrentDBClientError:
                    return  # the server is going away: this one was not acknowledged
                ids.append(event.id)
                if n == 0:
                    first_round.wait(30)
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(f"w-{i}",), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    first_round.wait(30)  # every writer has had an append acknowledged
    time.sleep(0.2)  # and more are in flight (not synchronisation: load before the signal)
    proc.process.send_signal(signal.SIGTERM)
    assert proc.wait_exit(timeout=60) == 0, proc.stderr
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    assert not [thread for thread in threads if thread.is_alive()], "a writer never returned"
    assert sum(len(ids) for ids in acknowledged.values()) >= 8
    for stream, ids in acknowledged.items():
        stored = _stored_ids(url, stream)
        # The server may have written an append whose answer was lost, never the reverse.
        assert stored[: len(ids)] == ids, stream


def test_open_subscription_does_not_hold_up_shutdown(serve: Serve, tmp_path: Path) -> None:
    proc = serve(f"sqlite:///{tmp_path / 'sub.db'}", "--grace", "60")
    client = _client(proc.port)
    try:
        subscription = client.subscribe_to_all()
        started = time.monotonic()
        proc.process.send_signal(signal.SIGTERM)
        assert proc.wait_exit(timeout=30) == 0, proc.stderr
        # Well within the 60 s grace: the subscription ended when shutdown began.
        assert time.monotonic() - started < 20
        subscription.stop()
    finally:
        client.close()


def test_plaintext_on_a_non_loopback_address_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'refused.db'}"
    result = subprocess.run(
        _serve_command(url, "--host", "0.0.0.0", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: refusing to serve plaintext on 0.0.0.0")
    assert "--insecure" in line
    assert not (tmp_path / "refused.db").exists()  # refused before touching the store
    for host in ("0.0.0.0", "::", "192.0.2.1", ""):
        with pytest.raises(ServerConfigError, match="--insecure"):
            EvstoreServer(url, host=host, port=0)
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        EvstoreServer(url, host=host, port=0)  # loopback: allowed


def test_insecure_allows_any_address(serve: Serve, tmp_path: Path) -> None:
    proc = serve(f"sqlite:///{tmp_path / 'open.db'}", "--host", "0.0.0.0", "--insecure")
    client = _client(proc.port)
    try:
        [member] = client.read_gossip()
        # A wildcard address is no endpoint: gossip names the machine instead.
        assert member.address not in ("0.0.0.0", "")
        assert member.port == proc.port
    finally:
        client.close()
    proc.process.send_signal(signal.SIGTERM)
    assert proc.wait_exit(timeout=30) == 0


def test_a_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    with BackgroundServer(f"sqlite:///{tmp_path / 'first.db'}", port=0) as first:
        result = subprocess.run(
            _serve_command(f"sqlite:///{tmp_path / 'second.db'}", "--port", str(first.port)),
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
        )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()[-1:]
    assert line.startswith("error: cannot listen on 127.0.0.1:"), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--users-file", "USERS"], 1, "--users-file needs --tls-cert and --tls-key"),
        (["--tls-cert", "USERS"], 2, "--tls-cert and --tls-key go together"),
        (["--insecure", "--tls-cert", "USERS", "--tls-key", "USERS"], 2, "exclude each other"),
        (["--advertise", "host:port"], 1, "the port must be a number"),
    ],
)
def test_bad_option_combinations(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    users = tmp_path / "users"
    users.write_text("ops:secret\n")
    args = [str(users) if a == "USERS" else a for a in args]
    result = subprocess.run(
        _serve_command(f"sqlite:///{tmp_path / 'x.db'}", "--port", "0", *args),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
    )
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
