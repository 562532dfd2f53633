"""Fixtures for the CLI tests: a store URL per test and a runner bound to it.

Stores are SQLite files in the test's tmp_path once the SQLite backend is importable, else
named ``memory://`` stores, which every store of that name in this process shares, so that
successive CliRunner invocations see each other's writes.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import evstore
from evstore.cli import cli

Invoke = Callable[..., Result]


def sqlite_available() -> bool:
    """True once the SQLite backend can be built (it is written in parallel)."""
    try:
        module = importlib.import_module("evstore.backends.sqlite")
    except ImportError:
        return False
    return hasattr(module, "SQLiteBackend")


# EVSTORE_CLI_TEST_STORE=memory runs the in-process tests on memory:// stores instead.
SQLITE = sqlite_available() and os.environ.get("EVSTORE_CLI_TEST_STORE") != "memory"
needs_sqlite = pytest.mark.skipif(not SQLITE, reason="the SQLite backend is not there yet")


def new_store_url(tmp_path: Path, name: str = "events") -> str:
    """A URL of a store no other test uses."""
    if SQLITE:
        return f"sqlite:///{tmp_path / f'{name}.db'}"
    return f"memory://cli-{name}-{uuid.uuid4().hex}"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return new_store_url(tmp_path)


@pytest.fixture
def runner() -> CliRunner:
    # click < 8.2 mixes stderr into stdout unless told not to; later versions keep them apart.
    if "mix_stderr" in inspect.signature(CliRunner).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner, store_url: str) -> Invoke:
    """Run ``evstore --url <store_url> ARGS``; ``url=`` picks another store."""

    def run(*args: str, input: str | bytes | None = None, url: str | None = None) -> Result:
        result = runner.invoke(cli, ["--url", url or store_url, *args], input=input)
        # Anything but a clean exit is a bug in the CLI, not a user error.
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run


def assert_one_line_error(result: Result, *fragments: str, exit_code: int = 1) -> None:
    """The failure contract: exit status, one ``error:`` line on stderr, no traceback."""
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for ``python -m evstore.cli``: this checkout's evstore first."""
    env = dict(os.environ)
    source = str(Path(evstore.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([source, *filter(None, [env.get("PYTHONPATH")])])
    env.pop("EVSTORE_URL", None)
    env.update(extra)
    return env


def cli_command(*args: str) -> Sequence[str]:
    return [sys.executable, "-m", "evstore.cli", *args]
