"""The real command, run as a separate process: python -m evstore.cli and the console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evstore import EventData, EventStore

from .conftest import cli_command, needs_sqlite, subprocess_env


def run(*args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*args),
        input=input,
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=120,
    )


def test_version_and_help() -> None:
    version = run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("evstore, version ")
    assert "export" in run("--help").stdout


def test_one_process_appends_and_prints_json() -> None:
    result = run("--url", "memory://solo", "append", "s", "A", '{"x": 1}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "stream_id": "s",
        "events": 1,
        "stream_version": 1,
        "position": 1,
    }


def test_errors_are_one_line_without_traceback() -> None:
    for args in (
        ["--url", "memory://e", "read", "missing"],
        ["--url", "nosuch://x", "read", "s"],
        ["--url", "memory://e", "append", "$all", "T"],
        ["--url", "memory://e", "append", "s", "T", "--event-id", "not-a-uuid"],
        ["--url", "memory://e", "import", "/definitely/not/here.jsonl"],
    ):
        result = run(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), (
            args,
            result.stderr,
        )


@needs_sqlite
def test_processes_share_a_sqlite_store_through_env_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    assert run("init", EVSTORE_URL=url).returncode == 0
    assert run("append", "s", "A", '{"n": 1}', "-e", "no_stream", EVSTORE_URL=url).returncode == 0
    stdin = '{"event_type": "B", "data": {"n": 2}}\n{"event_type": "C", "data": {"n": 3}}\n'
    assert run("append", "s", "--stdin", "-e", "1", input=stdin, EVSTORE_URL=url).returncode == 0
    read = run("read", "s", EVSTORE_URL=url)
    assert read.returncode == 0, read.stderr
    assert [json.loads(line)["data"]["n"] for line in read.stdout.splitlines()] == [1, 2, 3]
    # --url after the command wins over EVSTORE_URL.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert run("init", "--url", other, EVSTORE_URL=url).returncode == 0
    assert run("read", "s", "--url", other, EVSTORE_URL=url).returncode == 1


@needs_sqlite
def test_export_pipes_into_import(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    target = f"sqlite:///{tmp_path / 'target.db'}"
    for n in range(3):
        run("--url", source, "append", f"s{n % 2}", "E", json.dumps({"n": n}))
    exported = run("--url", source, "export")
    assert exported.returncode == 0, exported.stderr
    imported = run("--url", target, "import", "-", input=exported.stdout)
    assert imported.returncode == 0, imported.stderr
    assert run("--url", target, "export").stdout == exported.stdout


def test_console_script_when_installed() -> None:
    script = shutil.which("evstore", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the evstore console script is not installed in this environment")
    result = subprocess.run(
        [script, "--url", "memory://script", "info", "$all"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stream_id"] == "$all"


@needs_sqlite
def test_a_reader_that_leaves_early_is_not_an_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    with EventStore(url) as store:
        # About 1 MB of JSON lines: far more than a pipe buffers, so the writer sees EPIPE.
        store.append_to_stream("s", 0, [EventData("E", {"pad": "x" * 200}) for _ in range(5000)])
    for command in (["read", "s"], ["export"]):
        process = subprocess.Popen(
            cli_command("--url", url, *command),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=subprocess_env(),
        )
        assert process.stdout is not None and process.stderr is not None
        assert json.loads(process.stdout.readline())["stream_id"] == "s"
        process.stdout.close()  # like `| head -1`
        stderr = process.stderr.read().decode()
        process.wait(timeout=120)
        assert "Traceback" not in stderr and "error" not in stderr.lower(), stderr
