"""The server's HTTP side: ``/health/live``, ``/health/ready`` and ``/metrics``.

A deliberately tiny HTTP/1.1 responder on asyncio streams (one request per connection, GET
and HEAD only): three read-only endpoints for probes and Prometheus do not justify a web
framework. It serves HTTPS when the gRPC side uses TLS.

- ``/health/live``: 200 while the process serves HTTP at all.
- ``/health/ready``: 200 once the store is open and gRPC serves, 503 before and while
  shutting down.
- ``/metrics``: the server's metrics in Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

from evstore.server.metrics import CONTENT_TYPE, ServerMetrics

__all__ = ["HttpServer"]

_log = logging.getLogger("evstore.server.http")

_REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request head
_MAX_HEADER_LINES = 100
_TEXT = "text/plain; charset=utf-8"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class HttpServer:
    """Health and metrics endpoints of one evstore server.

    Args:
        metrics: rendered at ``/metrics``.
        is_ready: answers ``/health/ready``.
        host: address to listen on.
        port: port to listen on (0 for any free port; see :attr:`port`).
        ssl_context: serve HTTPS with it.
    """

    def __init__(
        self,
        metrics: ServerMetrics,
        is_ready: Callable[[], bool],
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._metrics = metrics
        self._is_ready = is_ready
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port listened on (the actual one when 0 was asked for)."""
        return self._port

    async def start(self) -> None:
        """Listen.

        Raises:
            OSError: the address cannot be listened on.
        """
        self._server = await asyncio.start_server(
            self._handle, self._host.strip("[]") or None, self._port, ssl=self._ssl
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=5)

    def _respond(self, method: str, target: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, _TEXT, b"method not allowed\n"
        path = urlsplit(target).path.rstrip("/") or "/"
        if path == "/health/live":
            return 200, _TEXT, b"live\n"
        if path == "/health/ready":
            if self._is_ready():
                return 200, _TEXT, b"ready\n"
            return 503, _TEXT, b"not ready\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE, self._metrics.render()
        return 404, _TEXT, b"not found\n"

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[str, str] | None:
        request_line = await reader.readline()
        parts = request_line.decode("latin-1").split()
        for _ in range(_MAX_HEADER_LINES):
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
        else:
            return None
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return None
        return parts[0].upper(), parts[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(_REQUEST_TIMEOUT):
                    head = await self._read_head(reader)
            except (TimeoutError, ValueError, ConnectionError, ssl.SSLError):
                return  # a slow, oversized or broken request: just hang up
            if head is None:
                status, content_type, body = 400, _TEXT, b"bad request\n"
                method = "GET"
            else:
                method, target = head
                status, content_type, body = self._respond(method, target)
            head_bytes = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            ).encode("latin-1")
            writer.write(head_bytes if method == "HEAD" else head_bytes + body)
            await writer.drain()
        except (ConnectionError, ssl.SSLError) as exc:
            _log.debug("HTTP connection failed: %s", exc)
        except Exception:
            _log.exception("HTTP request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
