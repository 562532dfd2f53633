"""create, init, migrate, drop and reset, and the confirmation that guards the last two."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from evstore import EventData, EventStore

from .conftest import SQLITE, Invoke, assert_one_line_error, cli_command, subprocess_env


def test_create_init_migrate_print_the_store_message(invoke: Invoke) -> None:
    for command in ("create", "init", "migrate", "init", "migrate"):
        result = invoke(command)
        assert result.exit_code == 0, (command, result.stderr)
        assert len(result.stdout.strip().splitlines()) == 1, result.stdout
    assert invoke("streams").exit_code == 0


def test_reset_with_yes_empties_the_store(invoke: Invoke) -> None:
    invoke("append", "s", "A")
    result = invoke("reset", "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip()
    assert_one_line_error(invoke("read", "s"), "does not exist")
    assert json.loads(invoke("info", "$all").stdout)["stream_version"] == 0


def test_drop_with_yes_removes_the_store(invoke: Invoke) -> None:
    invoke("append", "s", "A")
    result = invoke("drop", "-y")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip()
    # The events are gone: reading finds no stream (memory) or no store at all (SQLite).
    assert invoke("read", "s").exit_code == 1


@pytest.mark.parametrize("command", ["drop", "reset"])
def test_destructive_commands_refuse_without_a_terminal(invoke: Invoke, command: str) -> None:
    invoke("append", "s", "A")
    # CliRunner's stdin is not a TTY: even a "y" on stdin must not count as consent.
    result = invoke(command, input="y\n")
    assert_one_line_error(result, "without confirmation", "--yes")
    assert len(invoke("read", "s").stdout.splitlines()) == 1


def _talk_through_a_terminal(
    args: list[str], answer: bytes, env: dict[str, str]
) -> tuple[int, str]:
    """Run the CLI on a real pseudo-terminal, answer its prompt, return status and output."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        cli_command(*args), stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"Continue? [y/N]" in output:
                os.write(leader, answer)
                answered = True
        status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert answered, output.decode(errors="replace")
    return status, output.decode(errors="replace")


@pytest.mark.parametrize("command", ["drop", "reset"])
def test_destructive_commands_ask_on_a_terminal(tmp_path: Path, command: str) -> None:
    # A separate process needs a store it can see: a SQLite file, else its own memory store.
    url = f"sqlite:///{tmp_path / 'events.db'}" if SQLITE else "memory://pty"
    if SQLITE:
        with EventStore(url) as store:
            store.append_to_stream("s", 0, [EventData("A", {})])
    env = subprocess_env()

    status, output = _talk_through_a_terminal(["--url", url, command], b"n\n", env)
    assert status == 1, output
    assert "Aborted" in output and "Traceback" not in output
    if SQLITE:
        with EventStore(url) as store:
            assert len(store.read_stream_forward("s")) == 1

    status, output = _talk_through_a_terminal(["--url", url, command], b"y\n", env)
    assert status == 0, output
    assert "Traceback" not in output
    if SQLITE and command == "reset":
        with EventStore(url) as store:
            assert store.read_all_streams_forward() == []
