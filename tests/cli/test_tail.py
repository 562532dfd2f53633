"""evstore tail: a real process following a real store while the test appends to it.

The tail runs as ``python -m evstore.cli``; the test appends through the library and reads
the process's stdout with a deadline (select on the pipe, no sleeps). Before appending
"live" events the test waits for the ``following …`` line on stderr, which tail prints
once its start position is fixed, so an append can never race the subscription.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from evstore import ANY_VERSION, NO_STREAM, EventData, EventStore

from .conftest import Invoke, assert_one_line_error, cli_command, needs_sqlite, subprocess_env

pytestmark = needs_sqlite

TIMEOUT = 30.0


class TailProcess:
    """``evstore --url URL tail ARGS`` in a child process, its output read line by line."""

    def __init__(self, url: str, *args: str) -> None:
        env = subprocess_env()
        # Block-buffered stdout, as in a real pipe: lines must come from tail's own flushes.
        env.pop("PYTHONUNBUFFERED", None)
        self.process = subprocess.Popen(
            cli_command("--url", url, "tail", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.stdout = self.process.stdout
        self._buffers = {self.stdout.fileno(): b"", self.process.stderr.fileno(): b""}
        self.stderr_seen: list[str] = []

    def _line(self, fd: int, timeout: float) -> str | None:
        """The next line on ``fd``; None at end of file. Fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffers[fd]:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0))
            if not ready:
                raise AssertionError(
                    f"no line within {timeout} s; stderr so far: {self.stderr_seen}"
                )
            chunk = os.read(fd, 65536)
            if not chunk:
                rest, self._buffers[fd] = self._buffers[fd], b""
                return rest.decode() or None
            self._buffers[fd] += chunk
        line, _, self._buffers[fd] = self._buffers[fd].partition(b"\n")
        return line.decode()

    def line(self, timeout: float = TIMEOUT) -> str:
        """The next line on stdout (it must come)."""
        line = self._line(self.stdout.fileno(), timeout)
        assert line is not None, f"tail ended early: {self.rest_of_stderr()}"
        return line

    def lines(self, count: int, timeout: float = TIMEOUT) -> list[str]:
        return [self.line(timeout) for _ in range(count)]

    def wait_following(self, timeout: float = TIMEOUT) -> str:
        """Wait for the ``following …`` line on stderr: from then on appends are shown."""
        assert self.process.stderr is not None
        while True:
            line = self._line(self.process.stderr.fileno(), timeout)
            assert line is not None, f"tail ended: {self.stderr_seen}"
            self.stderr_seen.append(line)
            if line.startswith("following "):
                return line

    def rest_of_stderr(self) -> str:
        assert self.process.stderr is not None
        fd = self.process.stderr.fileno()
        lines = list(self.stderr_seen)
        while (line := self._line(fd, TIMEOUT)) is not None:
            lines.append(line)
        return "\n".join(lines)

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Send ``signum``; the exit status (it must exit within the timeout)."""
        self.process.send_signal(signum)
        return self.process.wait(timeout=TIMEOUT)

    def end_of_output(self) -> bool:
        """True when stdout holds no more lines (the process ended without printing more)."""
        return self._line(self.stdout.fileno(), TIMEOUT) is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def start_tail() -> Iterator[Callable[..., TailProcess]]:
    started: list[TailProcess] = []

    def start(url: str, *args: str) -> TailProcess:
        tail = TailProcess(url, *args)
        started.append(tail)
        return tail

    yield start
    for tail in started:
        tail.kill()


def append(url: str, stream: str, *events: tuple[str, object]) -> None:
    with EventStore(url) as store:
        store.append_to_stream(stream, ANY_VERSION, [EventData(t, data) for t, data in events])


def assert_clean_stop(tail: TailProcess, signum: int = signal.SIGINT) -> None:
    assert tail.stop(signum) == 0, tail.rest_of_stderr()
    assert tail.end_of_output()
    stderr = tail.rest_of_stderr()
    assert "Traceback" not in stderr and "error" not in stderr.lower(), stderr


def test_from_origin_prints_history_then_live_events(
    store_url: str, start_tail: Callable[..., TailProcess]
) -> None:
    append(store_url, "order-1", ("Placed", {"total": 10}), ("Paid", {"amount": 10}))
    append(store_url, "order-2", ("Placed", {"total": 99}))
    tail = start_tail(store_url, "order-1", "--from", "origin")
    assert tail.wait_following() == "following 'order-1' after event 0; Ctrl-C to stop"
    assert tail.lines(2) == [
        '1 order-1@1 Placed {"total":10}',
        '2 order-1@2 Paid {"amount":10}',
    ]
    # Live: an event of another stream in between must not show.
    append(store_url, "order-2", ("Paid", {"amount": 99}))
    append(store_url, "order-1", ("Shipped", {"to": "Zürich", "items": [1, 2]}))
    assert tail.line() == '5 order-1@3 Shipped {"to":"Zürich","items":[1,2]}'
    append(store_url, "order-1", ("Closed", None), ("Archived", "x"))
    assert tail.lines(2) == ["6 order-1@4 Closed null", '7 order-1@5 Archived "x"']
    assert_clean_stop(tail, signal.SIGINT)


def test_default_is_all_streams_from_current_and_sigterm_stops_cleanly(
    store_url: str, start_tail: Callable[..., TailProcess]
) -> None:
    append(store_url, "a", ("Old", {"n": 1}), ("Old", {"n": 2}))
    tail = start_tail(store_url)
    assert tail.wait_following() == "following '$all' after position 2; Ctrl-C to stop"
    append(store_url, "b", ("New", {"n": 3}))
    append(store_url, "a", ("New", {"n": 4}))
    # The history (positions 1 and 2) is not printed: the first line is the first new event.
    assert tail.lines(2) == ['3 b@1 New {"n":3}', '4 a@3 New {"n":4}']
    assert_clean_stop(tail, signal.SIGTERM)


def test_from_n_and_json_lines(store_url: str, start_tail: Callable[..., TailProcess]) -> None:
    append(store_url, "other", ("X", {}))
    append(store_url, "s", *[("E", {"n": n}) for n in range(1, 5)])  # s@1..4 = positions 2..5
    by_version = start_tail(store_url, "s", "--from", "2", "--json")
    by_position = start_tail(store_url, "$all", "--from", "4", "--json")
    assert by_version.wait_following().startswith("following 's' after event 2;")
    assert by_position.wait_following().startswith("following '$all' after position 4;")
    history = [json.loads(line) for line in by_version.lines(2)]
    assert [(e["stream_version"], e["data"]) for e in history] == [(3, {"n": 3}), (4, {"n": 4})]
    assert set(history[0]) >= {"event_id", "event_number", "position", "event_type", "created_at"}
    assert json.loads(by_position.line())["position"] == 5
    append(store_url, "s", ("E", {"n": 5}))
    live = json.loads(by_version.line())
    assert (live["event_number"], live["stream_version"], live["position"]) == (5, 5, 6)
    live_all = json.loads(by_position.line())
    assert (live_all["event_number"], live_all["position"]) == (6, 6)
    assert_clean_stop(by_version)
    assert_clean_stop(by_position)


def test_history_longer_than_a_page_has_no_gap_before_live(
    store_url: str, start_tail: Callable[..., TailProcess]
) -> None:
    # More than tail's read size (1000) and batch size (100): pages and batches join up.
    with EventStore(store_url) as store:
        for chunk in range(5):
            events = [EventData("E", {"n": chunk * 500 + n}) for n in range(500)]
            store.append_to_stream("big", ANY_VERSION, events)
    tail = start_tail(store_url, "big", "--from", "origin")
    tail.wait_following()
    history = tail.lines(2500)
    assert [int(line.split(" ")[0]) for line in history] == list(range(1, 2501))
    append(store_url, "big", ("Live", {"n": 2500}))
    assert tail.line() == '2501 big@2501 Live {"n":2500}'
    assert_clean_stop(tail)


def test_a_missing_stream_is_waited_for(
    store_url: str, start_tail: Callable[..., TailProcess]
) -> None:
    append(store_url, "unrelated", ("X", {}))
    tail = start_tail(store_url, "later")
    assert "'later' does not exist yet" in tail.wait_following()
    append(store_url, "later", ("Created", {"ok": True}))
    assert tail.line() == '2 later@1 Created {"ok":true}'
    assert_clean_stop(tail)


def test_a_deleted_stream_is_a_one_line_error(invoke: Invoke, store_url: str) -> None:
    with EventStore(store_url) as store:
        store.append_to_stream("gone", NO_STREAM, [EventData("E", {})])
        store.delete_stream("gone", 1)
    for start in ("current", "origin", "0"):
        result = invoke("tail", "gone", "--from", start)
        assert_one_line_error(result, "'gone'", "deleted")
        assert result.stdout == ""


def test_a_stream_deleted_while_followed_ends_with_one_error_line(
    store_url: str, start_tail: Callable[..., TailProcess]
) -> None:
    append(store_url, "doomed", ("E", {"n": 1}))
    tail = start_tail(store_url, "doomed", "--from", "origin")
    tail.wait_following()
    assert tail.line() == '1 doomed@1 E {"n":1}'
    with EventStore(store_url) as store:
        store.delete_stream("doomed", 1)
    assert tail.process.wait(timeout=TIMEOUT) == 1
    stderr = tail.rest_of_stderr()
    # The engine logs the failure with a traceback; tail shows only its own error line.
    assert "Traceback" not in stderr, stderr
    assert stderr.splitlines()[-1] == "error: stream 'doomed' is deleted", stderr


def test_bad_from_is_a_usage_error(invoke: Invoke) -> None:
    invoke("init")
    for value in ("-1", "later", "1.5", "²"):
        result = invoke("tail", "s", "--from", value)
        assert result.exit_code == 2, (value, result.stderr)
        assert "--from" in result.stderr and "Traceback" not in result.stderr


def test_tail_on_a_database_without_a_store_is_an_error(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("tail", url=f"sqlite:///{tmp_path / 'nothing.db'}")
    assert_one_line_error(result, "holds no event store")


def test_a_reader_that_leaves_is_not_an_error(
    store_url: str, start_tail: Callable[..., TailProcess]
) -> None:
    append(store_url, "s", ("E", {"n": 1}))
    tail = start_tail(store_url, "s", "--from", "origin")
    tail.wait_following()
    assert tail.line() == '1 s@1 E {"n":1}'
    tail.stdout.close()  # like `evstore tail s | head -1`
    # The next write finds the pipe closed; tail must end quietly, not hang or trace back.
    append(store_url, "s", *[("E", {"pad": "x" * 1000}) for _ in range(100)])
    tail.process.wait(timeout=TIMEOUT)
    stderr = tail.rest_of_stderr()
    assert "Traceback" not in stderr and "error" not in stderr.lower(), stderr


def test_tail_on_postgres_sees_appends_of_another_process(
    postgres_url: str, start_tail: Callable[..., TailProcess]
) -> None:
    backend = pytest.importorskip("evstore.backends.postgres")
    if not hasattr(backend, "PostgresBackend"):
        pytest.skip("the PostgreSQL backend is not finished yet")
    append(postgres_url, "pg", ("Old", {"n": 1}))
    tail = start_tail(postgres_url, "pg", "--from", "origin")
    tail.wait_following()
    assert tail.line() == '1 pg@1 Old {"n":1}'
    for n in (2, 3):
        append(postgres_url, "pg", ("New", {"n": n}))
        assert tail.line() == f'{n} pg@{n} New {{"n":{n}}}'
    assert_clean_stop(tail)
