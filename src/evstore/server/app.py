"""Assembly of the server: the store, the gRPC services, security, the HTTP side, shutdown.

:class:`EvstoreServer` is the whole server as an async context manager (``evstore serve``
runs one; tests and benchmarks start their own)::

    async with EvstoreServer("sqlite:///events.db", port=0) as server:
        client = AsyncKurrentDBClient(f"kurrentdb://127.0.0.1:{server.port}?tls=false")

Services: Streams and PersistentSubscriptions (from ``evstore.server.streams`` and
``evstore.server.persistent``, registered when they import), Gossip and ServerFeatures.
Only the methods a servicer actually implements are registered; every other method, of
these or any other service, answers UNIMPLEMENTED with a message naming it.

Shutdown (:meth:`EvstoreServer.stop`, SIGTERM/SIGINT in ``evstore serve``): readiness
drops, ``state.stopping`` is set (subscriptions end), no new call is accepted, calls in
flight get the grace period to finish (an append either completes and is acknowledged or
is not acknowledged), then shutdown hooks run and the store closes.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import grpc
import grpc.aio
from google.protobuf import message_factory
from google.protobuf.message import DecodeError

from evstore import AsyncEventStore
from evstore.server import auth
from evstore.server._generated import (
    gossip_pb2_grpc,
    persistent_pb2_grpc,
    serverfeatures_pb2_grpc,
    streams_pb2_grpc,
)
from evstore.server._generated._pool import POOL
from evstore.server.auth import BasicAuthInterceptor, TlsFiles, is_loopback_host
from evstore.server.features import ServerFeaturesServicer
from evstore.server.gossip import GossipServicer
from evstore.server.http import HttpServer
from evstore.server.metrics import ServerMetrics
from evstore.server.state import ServerState

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "BackgroundServer",
    "EvstoreServer",
    "ServerConfigError",
    "parse_endpoint",
]

_log = logging.getLogger("evstore.server")

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2113
"""KurrentDB's port, which clients assume when a URL names none."""
DEFAULT_GRACE = 10.0
"""Seconds calls in flight get to finish at shutdown."""

_MAX_MESSAGE = 17 * 1024 * 1024  # what kurrentdbclient accepts; KurrentDB's event limit is 16 MiB
_GRPC_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    # gRPC's default SO_REUSEPORT would let a second server "bind" a port already in use.
    ("grpc.so_reuseport", 0),
    # KurrentDB clients send keepalive pings (every 10 s by default in the official ones),
    # also between calls: accept them instead of answering GOAWAY "too many pings".
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
    # Ping idle connections ourselves, so that a vanished client's subscriptions end.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]


class ServerConfigError(ValueError):
    """The server's options contradict each other or the security policy."""


def parse_endpoint(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:2113"`` for IPv6) as ``(host, port)``.

    Raises:
        ServerConfigError: no host, or a port that is not a number in 1..65535 (a missing
            port is one only when ``default_port`` is None).
    """
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        port_text = rest[1:] if bracket and rest.startswith(":") else ""
        if not bracket or (rest and not rest.startswith(":")):
            raise ServerConfigError(f"{text!r} is not HOST:PORT")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ServerConfigError(f"{text!r} names no host")
    if not port_text:
        if default_port is None:
            raise ServerConfigError(f"{text!r} names no port")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ServerConfigError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def _address(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class _ServiceSpec:
    name: str  # full service name, e.g. event_store.client.streams.Streams
    base: type  # the generated servicer base class


_STREAMS = _ServiceSpec("event_store.client.streams.Streams", streams_pb2_grpc.StreamsServicer)
_PERSISTENT = _ServiceSpec(
    "event_store.client.persistent_subscriptions.PersistentSubscriptions",
    persistent_pb2_grpc.PersistentSubscriptionsServicer,
)
_GOSSIP = _ServiceSpec("event_store.client.gossip.Gossip", gossip_pb2_grpc.GossipServicer)
_FEATURES = _ServiceSpec(
    "event_store.client.server_features.ServerFeatures",
    serverfeatures_pb2_grpc.ServerFeaturesServicer,
)

# Servicers written in their own modules: (module, class, service). A module that does not
# import leaves its service unregistered, i.e. UNIMPLEMENTED.
_OPTIONAL_SERVICERS = (
    ("evstore.server.streams", "StreamsServicer", _STREAMS),
    ("evstore.server.persistent", "PersistentSubscriptionsServicer", _PERSISTENT),
)

_HANDLER_FACTORIES: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _method_handlers(
    spec: _ServiceSpec, servicer: object
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """Handlers of the methods ``servicer`` implements (overrides of the generated base)."""
    descriptor = POOL.FindServiceByName(spec.name)
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in descriptor.methods:
        if getattr(type(servicer), method.name, None) is getattr(spec.base, method.name, None):
            continue  # the generated stub: leave it to the UNIMPLEMENTED fallback
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        factory = _HANDLER_FACTORIES[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = factory(
            _decoding(getattr(servicer, method.name), request, method),
            response_serializer=response.SerializeToString,
        )
    return handlers


async def _bad_request(context: grpc.aio.ServicerContext[Any, Any], method: Any) -> NoReturn:
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"the request of {method.full_name} is not a valid {method.input_type.full_name}",
    )
    raise AssertionError("abort returns only by raising")  # pragma: no cover


def _decoding(handler: Callable[..., Any], request: Any, method: Any) -> Callable[..., Any]:
    """``handler`` taking raw request bytes: bytes that do not decode get INVALID_ARGUMENT.

    grpc's own deserializer would fail before any servicer code runs and answer UNKNOWN.
    """

    async def decode(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return request.FromString(raw)
        except DecodeError:
            await _bad_request(context, method)

    async def decode_all(
        raws: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async for raw in raws:
            yield await decode(raw, context)

    if method.client_streaming:
        if method.server_streaming:

            async def stream_stream(raws: Any, context: Any) -> AsyncIterator[Any]:
                async for response in handler(decode_all(raws, context), context):
                    yield response

            return stream_stream

        async def stream_unary(raws: Any, context: Any) -> Any:
            return await handler(decode_all(raws, context), context)

        return stream_unary
    if method.server_streaming:

        async def unary_stream(raw: bytes, context: Any) -> AsyncIterator[Any]:
            async for response in handler(await decode(raw, context), context):
                yield response

        return unary_stream

    async def unary_unary(raw: bytes, context: Any) -> Any:
        return await handler(await decode(raw, context), context)

    return unary_unary


class _Unimplemented(grpc.GenericRpcHandler):
    """Answers any method no service registered with UNIMPLEMENTED, naming it."""

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        message = f"Method {method} is not implemented by this server (evstore)"

        async def unimplemented(
            _requests: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

        # Streaming both ways fits any call shape; the request is never read.
        return grpc.stream_stream_rpc_method_handler(unimplemented)


def _load_optional_servicer(module_name: str, class_name: str) -> type | None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            _log.debug("%s is not there: its service is not served", module_name)
            return None
        _log.warning("%s does not import: its service is not served", module_name, exc_info=True)
        return None
    except Exception:
        _log.warning("%s does not import: its service is not served", module_name, exc_info=True)
        return None
    servicer = getattr(module, class_name, None)
    if not isinstance(servicer, type):
        _log.warning("%s has no %s: its service is not served", module_name, class_name)
        return None
    return servicer


class EvstoreServer:
    """The KurrentDB-compatible gRPC server over one evstore store.

    Args:
        url: the store (default ``$EVSTORE_URL`` or ``sqlite:///evstore.db``).
        host: address to listen on (default 127.0.0.1).
        port: gRPC port (default 2113; 0 picks a free one, see :attr:`port`).
        advertise: ``"host:port"`` (or ``"host"``) Gossip tells clients to connect to;
            default the listening host (this machine's name when it is a wildcard address)
            and port.
        http_port: serve ``/health/*`` and ``/metrics`` on this port of ``host`` (0: a free
            one, see :attr:`http_port`); default None, no HTTP side.
        tls_cert: PEM certificate chain; with ``tls_key``, the server speaks TLS only and
            requires HTTP Basic credentials on every call.
        tls_key: PEM private key of ``tls_cert``.
        users: ``{name: password}`` allowed with TLS; default ``admin`` with
            ``$EVSTORE_ADMIN_PASSWORD`` (see :func:`evstore.server.auth.load_users`).
        insecure: allow plaintext on a non-loopback address (no TLS, no authentication).
        grace: seconds calls in flight get to finish at shutdown (default 10).
        store_options: keyword options of :class:`evstore.AsyncEventStore`.

    Raises:
        ServerConfigError: contradictory options, TLS without any user, or plaintext on a
            non-loopback address without ``insecure``.
        OSError, ssl.SSLError: the TLS files cannot be read or do not match.
    """

    def __init__(
        self,
        url: str | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        advertise: str | None = None,
        http_port: int | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        users: Mapping[str, str] | None = None,
        insecure: bool = False,
        grace: float = DEFAULT_GRACE,
        store_options: Mapping[str, Any] | None = None,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ServerConfigError("TLS needs both a certificate and its key")
        if not 0 <= port < 65536 or (http_port is not None and not 0 <= http_port < 65536):
            raise ServerConfigError("ports must be numbers from 0 to 65535")
        if grace < 0:
            raise ServerConfigError("the grace period cannot be negative")
        self._tls: TlsFiles | None = None
        self._users: dict[str, str] = {}
        if tls_cert is not None and tls_key is not None:
            if insecure:
                raise ServerConfigError("--insecure and TLS exclude each other")
            self._tls = TlsFiles(tls_cert, tls_key)
            self._users = dict(auth.load_users() if users is None else users)
            if not self._users:
                raise ServerConfigError(
                    "TLS requires credentials on every call, but no user is configured: "
                    f"set {auth.ADMIN_PASSWORD_ENV} or give a users file"
                )
        else:
            if users:
                raise ServerConfigError(
                    "users need TLS: KurrentDB clients send credentials only over TLS"
                )
            if not insecure and not is_loopback_host(host):
                raise ServerConfigError(
                    f"refusing to serve plaintext on {host}, which is not a loopback address: "
                    "give a TLS certificate and key, or --insecure to serve without TLS "
                    "and without authentication"
                )
        self._advertise = parse_endpoint(advertise, default_port=0) if advertise else None
        self._url = url
        self._host = host
        self._port = port
        self._http_port = http_port
        self._grace = grace
        self._store_options = dict(store_options or {})
        self.metrics = ServerMetrics()
        self._store: AsyncEventStore | None = None
        self._grpc: grpc.aio.Server | None = None
        self._http: HttpServer | None = None
        self._state: ServerState | None = None
        self._methods: list[tuple[str, str]] = []
        self._stopped: asyncio.Event | None = None
        self._stop_task: asyncio.Task[None] | None = None

    # -- what a running server exposes ---------------------------------------------------

    @property
    def state(self) -> ServerState:
        """The shared state (store, metrics, endpoint); only once started."""
        if self._state is None:
            raise RuntimeError("the server is not started")
        return self._state

    @property
    def store(self) -> AsyncEventStore:
        """The store served; only once started."""
        return self.state.store

    @property
    def host(self) -> str:
        """The address listened on."""
        return self._host

    @property
    def port(self) -> int:
        """The gRPC port listened on (the actual one once started with port 0)."""
        return self._port

    @property
    def http_port(self) -> int | None:
        """The HTTP port listened on, or None without an HTTP side."""
        return self._http.port if self._http is not None else self._http_port

    @property
    def tls(self) -> bool:
        """True when the server speaks TLS (and requires credentials)."""
        return self._tls is not None

    @property
    def ready(self) -> bool:
        """True while the store is open and gRPC serves."""
        return self._state is not None and self._state.ready

    @property
    def methods(self) -> list[tuple[str, str]]:
        """``(service, method)`` of every method served (ServerFeatures lists them)."""
        return list(self._methods)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and start serving.

        Raises:
            OSError: an address cannot be listened on (in use, not available).
            EventStoreError: the store cannot be opened.
        """
        if self._grpc is not None:
            raise RuntimeError("the server is already started")
        self._stopped = asyncio.Event()
        try:
            await self._start()
        except BaseException:
            await self._shutdown(grace=0)
            raise

    async def _start(self) -> None:
        if self._http_port is not None:
            # First, so that probes see "live, not ready" while the store opens.
            self._http = HttpServer(
                self.metrics,
                lambda: self.ready,
                self._host,
                self._http_port,
                self._tls.ssl_context() if self._tls is not None else None,
            )
            await self._http.start()
        store = AsyncEventStore(self._url, **self._store_options)
        await store.open()
        self._store = store

        interceptors = [BasicAuthInterceptor(self._users)] if self._tls is not None else []
        server = grpc.aio.server(interceptors=interceptors, options=_GRPC_OPTIONS)
        self._grpc = server
        address = _address(self._host, self._port)
        try:
            if self._tls is not None:
                bound = server.add_secure_port(address, self._tls.grpc_credentials())
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc raises it when it cannot bind
            raise OSError(f"cannot listen on {address}: {exc}") from None
        if not bound:
            raise OSError(f"cannot listen on {address}: address in use or not available")
        self._port = bound

        self._state = ServerState(
            store=store,
            metrics=self.metrics,
            advertise_host=self._advertise_host(),
            advertise_port=(self._advertise[1] if self._advertise else 0) or bound,
        )
        self._register(server, self._state)
        await server.start()
        self._state.ready = True
        _log.info(
            "serving %s on %s (%s)",
            _redact(store.url),
            _address(self._host, self._port),
            "TLS" if self._tls is not None else "plaintext",
        )

    def _advertise_host(self) -> str:
        if self._advertise is not None:
            return self._advertise[0]
        host = self._host.strip("[]")
        # A wildcard address is no place to connect to: name this machine instead.
        return socket.gethostname() if _is_wildcard(host) else host

    def _register(self, server: grpc.aio.Server, state: ServerState) -> None:
        servicers: list[tuple[_ServiceSpec, object]] = []
        for module_name, class_name, spec in _OPTIONAL_SERVICERS:
            servicer_class = _load_optional_servicer(module_name, class_name)
            if servicer_class is not None:
                servicers.append((spec, servicer_class(state)))
        servicers.append((_GOSSIP, GossipServicer(state)))
        # Reads self._methods at each call, so it lists itself and everything above.
        servicers.append((_FEATURES, ServerFeaturesServicer(self._methods)))
        for spec, servicer in servicers:
            handlers = _method_handlers(spec, servicer)
            if not handlers:
                continue
            server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(spec.name, handlers),)
            )
            server.add_registered_method_handlers(spec.name, handlers)
            self._methods.extend((spec.name, name) for name in handlers)
        # Last: generic handlers are asked in order, and this one takes every method.
        server.add_generic_rpc_handlers((_Unimplemented(),))

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully (idempotent; concurrent calls wait for the same shutdown).

        Args:
            grace: seconds calls in flight get to finish (default: the server's grace).
        """
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(
                self._shutdown(self._grace if grace is None else grace)
            )
        await asyncio.shield(self._stop_task)

    async def _shutdown(self, grace: float) -> None:
        state = self._state
        if state is not None:
            state.ready = False
            state.stopping.set()
        try:
            if self._grpc is not None:
                _log.info("stopping: calls in flight get %.3g s to finish", grace)
                await self._grpc.stop(grace)
            if state is not None:
                await state.run_shutdown_hooks()
        finally:
            try:
                if self._store is not None:
                    await self._store.close()
            finally:
                if self._http is not None:
                    await self._http.stop()
                if self._stopped is not None:
                    self._stopped.set()
                _log.info("stopped")

    async def wait_stopped(self) -> None:
        """Return once the server has stopped (by :meth:`stop`)."""
        if self._stopped is None:
            raise RuntimeError("the server is not started")
        await self._stopped.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class BackgroundServer:
    """An :class:`EvstoreServer` on an event loop of its own, in a thread of its own.

    For code that is not asyncio (the sync KurrentDB client blocks its thread), and for
    tests and benchmarks that want the server out of their own event loop. Takes the
    arguments of :class:`EvstoreServer`::

        with BackgroundServer("sqlite:///events.db", port=0) as background:
            client = KurrentDBClient(f"kurrentdb://127.0.0.1:{background.port}?tls=false")
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.server = EvstoreServer(*args, **kwargs)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._grace: float | None = None

    @property
    def port(self) -> int:
        """The gRPC port listened on."""
        return self.server.port

    @property
    def http_port(self) -> int | None:
        """The HTTP port listened on, or None."""
        return self.server.http_port

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop (its store belongs to it)."""
        if self._loop is None:
            raise RuntimeError("the server is not started")
        return self._loop

    def start(self, timeout: float = 60.0) -> Self:
        """Start the thread and return once the server serves.

        Raises:
            whatever :meth:`EvstoreServer.start` raised; TimeoutError when it takes longer
            than ``timeout`` seconds.
        """
        self._thread = threading.Thread(target=self._main, name="evstore-server", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"the server did not start within {timeout} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error
        return self

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        await self._stop.wait()
        await self.server.stop(self._grace)

    def run(self, coroutine: Callable[[], Awaitable[T]], timeout: float | None = 60.0) -> T:
        """Run ``coroutine()`` on the server's loop (e.g. to use its store); its result."""

        async def call() -> T:
            return await coroutine()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def stop(self, grace: float | None = None, timeout: float = 60.0) -> None:
        """Stop the server gracefully and wait for its thread (idempotent)."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        self._grace = grace
        if thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"the server did not stop within {timeout} s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
