"""TLS and HTTP Basic authentication: with a certificate the server speaks TLS only and every
call needs the credentials of a configured user, else UNAUTHENTICATED. The certificate is
self-signed, made by the test."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kurrentdbclient import AsyncKurrentDBClient, KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import ServiceUnavailableError, UnauthenticatedError

from evstore.server._generated import gossip_pb2_grpc, shared_pb2, streams_pb2
from evstore.server.app import BackgroundServer, EvstoreServer, ServerConfigError
from evstore.server.auth import BasicAuthInterceptor, load_users

from .conftest import StartServer
from .test_shell import GRPC_LINE, ServeProcess

ADMIN_PASSWORD = "correct horse battery staple"

TlsClient = Callable[[BackgroundServer, str, str], KurrentDBClient]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (PEM files)."""
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evstore test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        # Its own CA, so that clients can trust it as the root (TlsCaFile).
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_server(
    start_server: StartServer,
    sqlite_url: str,
    tls_files: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> BackgroundServer:
    """A TLS server whose one user is admin, password from EVSTORE_ADMIN_PASSWORD."""
    monkeypatch.setenv("EVSTORE_ADMIN_PASSWORD", ADMIN_PASSWORD)
    cert, key = tls_files
    return start_server(sqlite_url, tls_cert=cert, tls_key=key)


def _url(server: BackgroundServer, ca: Path, user: str, password: str) -> str:
    return f"kurrentdb://{user}:{password}@127.0.0.1:{server.port}?tls=true&TlsCaFile={ca}"


@pytest.fixture
def tls_client(tls_files: tuple[Path, Path]) -> Iterator[TlsClient]:
    clients: list[KurrentDBClient] = []

    def make(server: BackgroundServer, user: str, password: str) -> KurrentDBClient:
        client = KurrentDBClient(_url(server, tls_files[0], user, password))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _secure_channel(server: BackgroundServer, ca: Path) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{server.port}", credentials)


def _basic(user: str, password: str) -> tuple[tuple[str, str]]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return (("authorization", f"Basic {token}"),)


def test_right_credentials_work(tls_server: BackgroundServer, tls_client: TlsClient) -> None:
    client = tls_client(tls_server, "admin", ADMIN_PASSWORD)
    assert client.read_gossip()[0].port == tls_server.port
    event = NewEvent(type="Opened", data=b"{}")
    client.append_to_stream("account-1", current_version=StreamState.NO_STREAM, events=[event])
    assert [e.id for e in client.get_stream("account-1")] == [event.id]


async def test_right_credentials_work_asyncio(
    tls_server: BackgroundServer, tls_files: tuple[Path, Path]
) -> None:
    client = AsyncKurrentDBClient(_url(tls_server, tls_files[0], "admin", ADMIN_PASSWORD))
    await client.connect()
    try:
        event = NewEvent(type="Opened", data=b"{}")
        await client.append_to_stream("a-1", current_version=StreamState.NO_STREAM, events=[event])
        assert [e.id async for e in await client.read_stream("a-1")] == [event.id]
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("admin", "wrong"),
        ("admin", ADMIN_PASSWORD + "x"),
        ("nobody", ADMIN_PASSWORD),
        ("Admin", ADMIN_PASSWORD),
    ],
)
def test_wrong_credentials_are_unauthenticated(
    tls_server: BackgroundServer, tls_client: TlsClient, user: str, password: str
) -> None:
    client = tls_client(tls_server, user, password)
    with pytest.raises(UnauthenticatedError):
        client.read_gossip()
    with pytest.raises(UnauthenticatedError):
        client.append_to_stream("x", current_version=StreamState.ANY, events=[NewEvent("T", b"")])


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer abc"),),
        (("authorization", "Basic !!!not-base64"),),
        (("authorization", "Basic " + base64.b64encode(b"admin").decode()),),
    ],
    ids=["none", "bearer", "garbage", "no-colon"],
)
def test_missing_or_malformed_credentials_are_unauthenticated(
    tls_server: BackgroundServer, tls_files: tuple[Path, Path], metadata: tuple[object, ...]
) -> None:
    with _secure_channel(tls_server, tls_files[0]) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            gossip_pb2_grpc.GossipStub(channel).Read(
                shared_pb2.Empty(), metadata=metadata, timeout=10
            )
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # A server-streaming method, and a method nobody implements: authentication first.
        read = channel.unary_stream(
            "/event_store.client.streams.Streams/Read",
            request_serializer=streams_pb2.ReadReq.SerializeToString,
        )
        with pytest.raises(grpc.RpcError) as raised:
            list(read(streams_pb2.ReadReq(), metadata=metadata, timeout=10))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        unknown = channel.unary_unary("/event_store.client.users.Users/Create")
        with pytest.raises(grpc.RpcError) as raised:
            unknown(b"", metadata=metadata, timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # With credentials, the same channel works.
        answer = gossip_pb2_grpc.GossipStub(channel).Read(
            shared_pb2.Empty(), metadata=_basic("admin", ADMIN_PASSWORD), timeout=10
        )
        assert answer.members[0].is_alive


def test_plaintext_client_cannot_talk_to_a_tls_server(tls_server: BackgroundServer) -> None:
    client = KurrentDBClient(f"kurrentdb://127.0.0.1:{tls_server.port}?tls=false")
    try:
        with pytest.raises(ServiceUnavailableError):
            client.read_gossip(timeout=5)
    finally:
        client.close()


def test_users_file_users_and_admin(
    start_server: StartServer,
    sqlite_url: str,
    tls_files: tuple[Path, Path],
    tls_client: TlsClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVSTORE_ADMIN_PASSWORD", ADMIN_PASSWORD)
    users_file = tmp_path / "users.txt"
    users_file.write_text("# operators\nops:s3cret:with:colons\n\nreader: spaced \n")
    cert, key = tls_files
    server = start_server(sqlite_url, tls_cert=cert, tls_key=key, users=load_users(users_file))
    for user, password in [
        ("ops", "s3cret:with:colons"),
        ("reader", " spaced "),
        ("admin", ADMIN_PASSWORD),
    ]:
        assert tls_client(server, user, password).read_gossip()
    with pytest.raises(UnauthenticatedError):
        tls_client(server, "ops", "s3cret").read_gossip()


def test_load_users() -> None:
    assert load_users(environ={}) == {}
    assert load_users(environ={"EVSTORE_ADMIN_PASSWORD": ""}) == {}
    assert load_users(environ={"EVSTORE_ADMIN_PASSWORD": "pw"}) == {"admin": "pw"}


def test_load_users_json_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text('{"ops": "one", "admin": "from-file"}')
    env = {"EVSTORE_ADMIN_PASSWORD": "from-env"}
    assert load_users(path, environ=env) == {"ops": "one", "admin": "from-env"}
    for text, message in [
        ('{"ops": 1}', "map user names to password strings"),
        ("{not json", "not valid JSON"),
        ("just-a-password-line\n", "line 1: expected user:password"),
        ("ops:\n", "empty password"),
        (":pw\n", "non-empty"),
    ]:
        path.write_text(text)
        with pytest.raises(ValueError, match=message) as raised:
            load_users(path, environ={})
        assert "just-a-password-line" not in str(raised.value)  # never echo a secret


def test_tls_needs_a_user(
    tls_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVSTORE_ADMIN_PASSWORD", raising=False)
    cert, key = tls_files
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ServerConfigError, match="no user is configured"):
        EvstoreServer(url, port=0, tls_cert=cert, tls_key=key)
    with pytest.raises(ServerConfigError, match="both a certificate and its key"):
        EvstoreServer(url, port=0, tls_cert=cert)
    with pytest.raises(ServerConfigError, match="exclude each other"):
        EvstoreServer(url, port=0, tls_cert=cert, tls_key=key, users={"a": "b"}, insecure=True)
    with pytest.raises(ServerConfigError, match="users need TLS"):
        EvstoreServer(url, port=0, users={"a": "b"})
    with pytest.raises(ssl.SSLError):
        EvstoreServer(url, port=0, tls_cert=key, tls_key=cert, users={"a": "b"})
    # With TLS any address is allowed: authentication guards it.
    EvstoreServer(url, host="0.0.0.0", port=0, tls_cert=cert, tls_key=key, users={"a": "b"})


def test_interceptor_needs_users() -> None:
    with pytest.raises(ValueError, match="at least one user"):
        BasicAuthInterceptor({})


def test_https_health(tls_server: BackgroundServer, tls_files: tuple[Path, Path]) -> None:
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    url = f"https://127.0.0.1:{tls_server.http_port}/health/ready"
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        assert response.status == 200


def test_serve_with_tls_as_a_process(tls_files: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = tls_files
    users = tmp_path / "users"
    users.write_text("ops:pw\n")
    command = [
        sys.executable, "-m", "evstore.cli", "--url", f"sqlite:///{tmp_path / 'tls.db'}",
        "serve", "--port", "0", "--host", "0.0.0.0",
        "--tls-cert", str(cert), "--tls-key", str(key), "--users-file", str(users),
    ]  # fmt: skip
    env = {**os.environ, "EVSTORE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    proc = ServeProcess(process)
    threading.Thread(target=proc._pump, daemon=True).start()
    try:
        port = int(proc.wait_for_line(GRPC_LINE, 30).group(2))
        assert "TLS" in proc.seen[-1]
        for user, password in [("ops", "pw"), ("admin", ADMIN_PASSWORD)]:
            client = KurrentDBClient(
                f"kurrentdb://{user}:{password}@127.0.0.1:{port}?tls=true&TlsCaFile={cert}"
            )
            try:
                assert client.read_gossip()
            finally:
                client.close()
        process.send_signal(signal.SIGTERM)
        assert proc.wait_exit(30) == 0, proc.stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
