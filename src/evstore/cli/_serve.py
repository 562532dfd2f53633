"""``evstore serve``: run the KurrentDB-compatible gRPC server on the store.

The server itself lives in :mod:`evstore.server` and needs the ``server`` extra; it is
imported only when the command runs, so the rest of the CLI works without it.

SIGTERM and SIGINT stop it gracefully (no new calls, calls in flight get the grace period,
then the store closes), exit status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from evstore.cli._app import AppContext, CliError, pass_app, run, store_options

__all__ = ["COMMANDS"]

_SERVER_EXTRA = {"grpc", "google", "google.protobuf", "prometheus_client"}


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (a graceful shutdown) instead of killing the process."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or Windows: Ctrl-C comes as KeyboardInterrupt
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


@contextlib.contextmanager
def _server_logs(level: str) -> Iterator[None]:
    """evstore's log records (the server's included) as lines on stderr while serving."""
    logger = logging.getLogger("evstore")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]


def _server_class() -> Any:
    try:
        from evstore.server.app import EvstoreServer
    except ModuleNotFoundError as exc:
        if exc.name not in _SERVER_EXTRA and not (exc.name or "").startswith("google"):
            raise
        raise CliError(f"evstore serve needs {exc.name}: pip install 'evstore[server]'") from None
    return EvstoreServer


def _announce(server: Any, display_url: str) -> None:
    # On stderr, one fact per line: the actual ports (also when 0 asked for a free one)
    # are what scripts and tests wait for.
    address = f"[{server.host}]" if ":" in server.host else server.host
    if server.tls:
        grpc_line = f"gRPC on {address}:{server.port} (TLS, HTTP Basic authentication)"
    else:
        grpc_line = (
            f"gRPC on {address}:{server.port} (plaintext, no authentication; "
            f"kurrentdb://{address}:{server.port}?tls=false)"
        )
    click.echo(f"serving {display_url}", err=True)
    click.echo(grpc_line, err=True)
    if server.http_port is not None:
        scheme = "https" if server.tls else "http"
        click.echo(
            f"HTTP on {address}:{server.http_port} "
            f"({scheme}: /health/live, /health/ready, /metrics)",
            err=True,
        )
    click.echo("SIGTERM or Ctrl-C stops the server", err=True)


async def _serve(app: AppContext, options: dict[str, Any], log_level: str) -> None:
    server_class = _server_class()
    from evstore.server.auth import load_users

    users_file: Path | None = options.pop("users_file")
    tls = options["tls_cert"] is not None or options["tls_key"] is not None
    if users_file is not None and not tls:
        raise CliError(
            "--users-file needs --tls-cert and --tls-key: credentials travel only over TLS"
        )
    users = load_users(users_file) if tls else None
    stop = asyncio.Event()
    with _server_logs(log_level), _stop_on_signals(stop):
        server = server_class(app.url, users=users, store_options=app.options(), **options)
        await server.start()
        try:
            _announce(server, app.display_url)
            await stop.wait()
            click.echo("stopping: calls in flight may finish", err=True)
        finally:
            await server.stop()
    click.echo("stopped", err=True)


@click.command(short_help="Run the KurrentDB-compatible gRPC server.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="EVSTORE_HOST",
    show_envvar=True,
    help="Address to listen on. Without TLS only a loopback address is allowed, unless --insecure.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=2113,
    show_default=True,
    envvar="EVSTORE_PORT",
    show_envvar=True,
    help="gRPC port (0: any free port, printed on start).",
)
@click.option(
    "--advertise",
    metavar="HOST:PORT",
    envvar="EVSTORE_ADVERTISE",
    show_envvar=True,
    help="Endpoint clients are told to connect to (gossip); default the listening one.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow plaintext (no TLS, no authentication) on a non-loopback address.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="EVSTORE_TLS_CERT",
    show_envvar=True,
    help="PEM certificate chain: serve TLS only, and require HTTP Basic credentials.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="EVSTORE_TLS_KEY",
    show_envvar=True,
    help="PEM private key of --tls-cert.",
)
@click.option(
    "--users-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="EVSTORE_USERS_FILE",
    show_envvar=True,
    help="Users allowed with TLS: user:password lines, or a JSON object. The admin user's "
    "password comes from EVSTORE_ADMIN_PASSWORD; there is no default password.",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    envvar="EVSTORE_HTTP_PORT",
    show_envvar=True,
    help="Serve /health/live, /health/ready and Prometheus /metrics on this port "
    "(0: any free port). Default: no HTTP side.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds calls in flight get to finish on SIGTERM/SIGINT.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="Level of the server's log lines on stderr.",
)
@store_options
@pass_app
def serve(
    app: AppContext,
    host: str,
    port: int,
    advertise: str | None,
    insecure: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    users_file: Path | None,
    http_port: int | None,
    grace: float,
    log_level: str,
) -> None:
    """Serve the store to KurrentDB clients over gRPC (the KurrentDB v1 client protocol).

    Streams (reads, $all, filters, catch-up subscriptions, appends, deletes), persistent
    subscriptions, gossip and server features; any other method answers UNIMPLEMENTED.
    The store is named by --url (or EVSTORE_URL; default sqlite:///evstore.db).

    Without TLS the server accepts anyone, so it listens only on loopback addresses unless
    --insecure. With --tls-cert and --tls-key every call needs HTTP Basic credentials of a
    configured user (admin with EVSTORE_ADMIN_PASSWORD, and/or --users-file).

    \b
    Examples:
      evstore serve
      evstore --url postgresql://localhost/events serve --host 0.0.0.0 \\
          --tls-cert server.pem --tls-key server.key --http-port 2114
    """
    if insecure and (tls_cert is not None or tls_key is not None):
        raise click.UsageError("--insecure and --tls-cert/--tls-key exclude each other")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "advertise": advertise,
        "insecure": insecure,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "users_file": users_file,
        "http_port": http_port,
        "grace": grace,
    }
    # Where the loop cannot take over SIGINT, Ctrl-C arrives as KeyboardInterrupt: the
    # server has then been stopped by the finally clauses on the way out.
    with contextlib.suppress(KeyboardInterrupt):
        run(_serve(app, options, log_level))


COMMANDS = [serve]
