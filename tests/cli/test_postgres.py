"""The CLI against a real PostgreSQL database."""

from __future__ import annotations

import json

import pytest

from .conftest import Invoke

_backend = pytest.importorskip("evstore.backends.postgres")
if not hasattr(_backend, "PostgresBackend"):  # the package exists while it is being written
    pytest.skip("the PostgreSQL backend is not finished yet", allow_module_level=True)


def test_init_append_read_on_postgres(invoke: Invoke, postgres_url: str) -> None:
    init = invoke("init", url=postgres_url)
    assert init.exit_code == 0, init.stderr
    appended = invoke("append", "pg-1", "Created", '{"on": "postgres"}', url=postgres_url)
    assert appended.exit_code == 0, appended.stderr
    assert json.loads(appended.stdout)["stream_version"] == 1
    read = invoke("read", "pg-1", url=postgres_url)
    assert read.exit_code == 0, read.stderr
    [event] = [json.loads(line) for line in read.stdout.splitlines()]
    assert (event["event_type"], event["data"]) == ("Created", {"on": "postgres"})
    assert json.loads(invoke("info", "$all", url=postgres_url).stdout)["stream_version"] == 1
