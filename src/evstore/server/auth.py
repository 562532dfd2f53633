"""Security of the server: TLS material, configured users, HTTP Basic authentication.

The policy (issue 5): with a certificate and key the server speaks TLS only, and every call
must carry ``authorization: Basic base64(user:password)`` for a configured user, else it
ends with UNAUTHENTICATED. Users are ``admin`` with the password in
``EVSTORE_ADMIN_PASSWORD`` and/or those of a users file; there is no built-in default
password. Without TLS there is no authentication at all (KurrentDB clients send
credentials only over TLS), so a plaintext server may only listen on a loopback address
unless the operator says ``--insecure``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

__all__ = [
    "ADMIN_PASSWORD_ENV",
    "ADMIN_USER",
    "BasicAuthInterceptor",
    "TlsFiles",
    "is_loopback_host",
    "load_users",
]

ADMIN_USER = "admin"
ADMIN_PASSWORD_ENV = "EVSTORE_ADMIN_PASSWORD"

_MISSING = "Authentication required: send HTTP Basic credentials (authorization header)"
_INVALID = "Authentication failed: unknown user or wrong password"


class TlsFiles:
    """A PEM certificate chain and its private key, checked when loaded.

    Raises:
        OSError: a file cannot be read.
        ssl.SSLError: they are not a PEM certificate and its matching key.
    """

    def __init__(self, cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str]):
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.cert = self.cert_file.read_bytes()
        self.key = self.key_file.read_bytes()
        # Fails early, with the ssl module's message, on a wrong or mismatched pair; gRPC
        # would only say that it could not bind the port.
        self.ssl_context()

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``server.add_secure_port`` (no client certificates asked)."""
        return grpc.ssl_server_credentials([(self.key, self.cert)])

    def ssl_context(self) -> ssl.SSLContext:
        """A server-side context for the HTTP side."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _parse_users_text(text: str, source: str) -> dict[str, str]:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError(f"{source}: the JSON must map user names to password strings")
        users = dict(data)
    else:
        users = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            # Not stripped: a password may begin or end with spaces.
            user, colon, password = line.partition(":")
            if not colon:
                # Never echo the line: it may be a password without its user.
                raise ValueError(f"{source}, line {number}: expected user:password")
            users[user.strip()] = password
    for user, password in users.items():
        if not user or ":" in user:
            raise ValueError(f"{source}: user names must be non-empty and contain no ':'")
        if not password:
            raise ValueError(f"{source}: user {user!r} has an empty password")
    return users


def load_users(
    users_file: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The configured users: ``{name: password}``.

    ``admin`` with ``$EVSTORE_ADMIN_PASSWORD`` when that is set and not empty (it wins over
    an ``admin`` line of the file), plus the users of ``users_file``: either a JSON object
    ``{"user": "password"}`` or lines ``user:password`` (blank lines and ``#`` comments
    ignored; the password is everything after the first ``:`` to the end of the line,
    spaces included).

    Raises:
        OSError: the file cannot be read.
        ValueError: the file is malformed (the message never contains a password).
    """
    env = os.environ if environ is None else environ
    users: dict[str, str] = {}
    if users_file is not None:
        path = Path(users_file)
        users.update(_parse_users_text(path.read_text(encoding="utf-8"), str(path)))
    admin_password = env.get(ADMIN_PASSWORD_ENV)
    if admin_password:
        users[ADMIN_USER] = admin_password
    return users


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address.

    The wildcard addresses (``0.0.0.0``, ``::``, empty) are not loopback; a name counts as
    loopback only when it resolves, and only to loopback addresses.
    """
    name = host.strip().strip("[]")
    if not name:
        return False
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(address).split("%")[0]).is_loopback for address in addresses
    )


Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]


def _deny_behavior(message: str) -> Behavior:
    async def deny(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return deny


def _denying_handler(
    handler: grpc.RpcMethodHandler[Any, Any] | None, message: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind as ``handler`` that ends the call with UNAUTHENTICATED.

    The kind matters: gRPC drives a handler by its streaming flags. The request is never
    read, so nothing of an unauthenticated call reaches a service.
    """
    deny = _deny_behavior(message)
    if handler is None:
        return grpc.unary_unary_rpc_method_handler(deny)
    deserializer = handler.request_deserializer
    serializer = handler.response_serializer
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return factory(deny, deserializer, serializer)


class BasicAuthInterceptor(grpc.aio.ServerInterceptor):
    """Lets a call through only with HTTP Basic credentials of a configured user.

    Args:
        users: ``{name: password}``; must not be empty.
    """

    def __init__(self, users: Mapping[str, str]) -> None:
        if not users:
            raise ValueError("authentication needs at least one user")
        self._users = {name: password.encode() for name, password in users.items()}

    def authenticate(self, metadata: Any) -> str | None:
        """The user the call's ``authorization`` header proves, or an error message.

        Returns:
            None when the credentials are valid, else the UNAUTHENTICATED message.
        """
        header = None
        for key, value in metadata or ():
            if key.lower() == "authorization":
                header = value.decode("latin-1") if isinstance(value, bytes) else value
                break
        if header is None:
            return _MISSING
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return _MISSING
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return _INVALID
        user, colon, password = decoded.partition(":")
        expected = self._users.get(user)
        # Compare even for an unknown user, so that timing does not tell which names exist.
        valid = hmac.compare_digest(password.encode(), expected or b"\x00" * 32)
        return None if colon and expected is not None and valid else _INVALID

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """Pass the call on when authenticated, else answer it with UNAUTHENTICATED."""
        problem = self.authenticate(handler_call_details.invocation_metadata)
        handler = await continuation(handler_call_details)
        if problem is None:
            return handler
        return _denying_handler(handler, problem)
