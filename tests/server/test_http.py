"""The HTTP side: /health/live, /health/ready (ready only while the store is open and gRPC
serves) and Prometheus /metrics counting what real clients do."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from prometheus_client.parser import text_string_to_metric_families

from evstore.server.app import BackgroundServer, EvstoreServer
from evstore.server.http import HttpServer
from evstore.server.metrics import ServerMetrics

from .conftest import MakeClient, StartServer


def _get(port: int | None, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _metrics(port: int | None) -> dict[str, float]:
    """Every sample of /metrics by name and labels, e.g. ``evstore_appends_total``."""
    status, headers, body = _get(port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def _eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_health_endpoints(server: BackgroundServer) -> None:
    assert _get(server.http_port, "/health/live")[0] == 200
    status, headers, body = _get(server.http_port, "/health/ready")
    assert (status, body) == (200, b"ready\n")
    assert headers["Cache-Control"] == "no-store"
    assert _get(server.http_port, "/health/ready/")[0] == 200
    assert _get(server.http_port, "/health/live?probe=1")[0] == 200


def test_other_requests(server: BackgroundServer) -> None:
    assert _get(server.http_port, "/")[0] == 404
    assert _get(server.http_port, "/health")[0] == 404
    assert _get(server.http_port, "/metrics", method="POST")[0] == 405
    status, headers, body = _get(server.http_port, "/health/live", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(b"live\n")


def test_a_garbage_request_gets_400_and_the_server_keeps_serving(server: BackgroundServer) -> None:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
    assert _get(server.http_port, "/health/live")[0] == 200


async def test_ready_follows_the_flag() -> None:
    ready = False
    http = HttpServer(ServerMetrics(), lambda: ready, "127.0.0.1", 0)
    await http.start()
    try:
        assert (await asyncio.to_thread(_get, http.port, "/health/ready"))[0] == 503
        assert (await asyncio.to_thread(_get, http.port, "/health/live"))[0] == 200
        ready = True
        assert (await asyncio.to_thread(_get, http.port, "/health/ready"))[0] == 200
    finally:
        await http.stop()


async def test_not_ready_while_shutting_down(tmp_path: Path) -> None:
    server = EvstoreServer(f"sqlite:///{tmp_path / 'h.db'}", port=0, http_port=0)
    await server.start()
    port = server.http_port
    assert (await asyncio.to_thread(_get, port, "/health/ready"))[0] == 200
    release = asyncio.Event()
    hook_running = asyncio.Event()

    async def slow_hook() -> None:
        hook_running.set()
        await release.wait()

    server.state.add_shutdown_hook(slow_hook)
    stopping = asyncio.ensure_future(server.stop())
    await asyncio.wait_for(hook_running.wait(), 10)
    # gRPC has stopped, the store is still open: live, but not ready.
    assert (await asyncio.to_thread(_get, port, "/health/ready"))[0] == 503
    assert (await asyncio.to_thread(_get, port, "/health/live"))[0] == 200
    release.set()
    await asyncio.wait_for(stopping, 10)
    with pytest.raises(OSError):
        await asyncio.to_thread(_get, port, "/health/live")


def test_metrics_count_appends_and_reads(
    any_server: BackgroundServer, make_client: MakeClient
) -> None:
    server, client = any_server, make_client(any_server)
    before = _metrics(server.http_port)
    assert before["evstore_appends_total"] == 0
    events = [NewEvent(type="Added", data=b"{}") for _ in range(3)]
    client.append_to_stream("cart-1", current_version=StreamState.NO_STREAM, events=events)
    single = NewEvent(type="Added", data=b"{}")
    client.append_to_stream("cart-2", current_version=StreamState.NO_STREAM, events=single)
    assert len(client.get_stream("cart-1")) == 3
    after = _metrics(server.http_port)
    assert after["evstore_appends_total"] == 2
    assert after["evstore_events_appended_total"] == 4
    assert after["evstore_reads_total"] >= 1
    assert after["evstore_events_read_total"] >= 3


def test_metrics_gauge_catch_up_subscriptions(
    server: BackgroundServer, client: KurrentDBClient
) -> None:
    assert _metrics(server.http_port)["evstore_catch_up_subscriptions"] == 0
    subscription = client.subscribe_to_all()
    _eventually(lambda: _metrics(server.http_port)["evstore_catch_up_subscriptions"] == 1)
    subscription.stop()
    _eventually(lambda: _metrics(server.http_port)["evstore_catch_up_subscriptions"] == 0)


def test_metrics_gauge_persistent_consumers_and_lag(
    server: BackgroundServer, client: KurrentDBClient
) -> None:
    events = [NewEvent(type="Added", data=b"{}") for _ in range(5)]
    client.append_to_stream("orders", current_version=StreamState.NO_STREAM, events=events)
    client.create_subscription_to_stream("workers", "orders", from_end=False)
    assert _metrics(server.http_port)["evstore_persistent_subscriptions"] == 0
    consumer = client.read_subscription_to_stream("workers", "orders")
    try:
        _eventually(lambda: _metrics(server.http_port)["evstore_persistent_subscriptions"] == 1)
        lag = "evstore_persistent_subscription_lag{group=workers,stream=orders}"
        _eventually(lambda: lag in _metrics(server.http_port))
    finally:
        consumer.stop()
    _eventually(lambda: _metrics(server.http_port)["evstore_persistent_subscriptions"] == 0)


def test_each_server_has_its_own_metrics(
    start_server: StartServer, tmp_path: Path, make_client: MakeClient
) -> None:
    first = start_server(f"sqlite:///{tmp_path / 'a.db'}")
    second = start_server(f"sqlite:///{tmp_path / 'b.db'}")
    make_client(first).append_to_stream(
        "s", current_version=StreamState.ANY, events=NewEvent(type="T", data=b"{}")
    )
    assert _metrics(first.http_port)["evstore_appends_total"] == 1
    assert _metrics(second.http_port)["evstore_appends_total"] == 0
