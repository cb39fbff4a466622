"""One HTTP/1.1 exchange with a hard deadline and a cap on the reply's size (standard library only).

Per-read socket timeouts do not bound a request: a server that sends one byte every few seconds never
trips them.  Here every socket operation (name lookup, connect, TLS handshake, each send and each read)
gets only the time left until one absolute ``deadline`` (``time.monotonic()`` seconds), so the whole
exchange ends by then, whatever the server does.  The reply body is read up to ``max_body`` bytes; a
longer one is refused before it is read whole (by its ``Content-Length`` when given).

Each exchange uses its own connection (``Connection: close``); no compression is asked for, so the byte
cap is also a cap on what the body expands to.  Proxy environment variables are not consulted.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Reply", "BadURL", "ConnectFailed", "ConnectionLost", "DeadlineExceeded", "BodyTooLarge",
           "split_url", "exchange"]

_READ_CHUNK = 65536


class TransportError(Exception):
    """Base of the failures below; the message is one short line."""


class BadURL(TransportError):
    """The URL cannot be used (scheme, host or port)."""


class ConnectFailed(TransportError):
    """No connection could be made; ``refused`` tells a closed port from other failures."""

    def __init__(self, message: str, refused: bool = False):
        super().__init__(message)
        self.refused = refused


class ConnectionLost(TransportError):
    """The connection broke or the reply was not valid HTTP."""


class DeadlineExceeded(TransportError):
    """The exchange was still running at its deadline."""


class BodyTooLarge(TransportError):
    """The reply body is longer than the cap."""


@dataclass
class Reply:
    """A complete HTTP reply: status, headers (names lower-case) and body bytes."""

    status: int
    headers: dict
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _Target:
    secure: bool
    host: str
    port: int
    path: str


def split_url(url: str) -> _Target:
    """Check ``url`` and split it into what a connection needs; raises :class:`BadURL`."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise BadURL(f"malformed URL {url!r} ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise BadURL(f"URL {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise BadURL(f"URL {url!r} names no host")
    if parts.username or parts.password:
        raise BadURL("URL must not carry a user name or password (give the key through the environment)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(parts.scheme == "https", parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("deadline reached")
    return left


class _DeadlineMixin:
    """Arms the socket timeout with the time left before every send and read."""

    deadline = float("inf")

    def _arm(self) -> None:
        try:
            left = _remaining(self.deadline)
        except DeadlineExceeded:
            raise socket.timeout("deadline reached") from None
        self.settimeout(left)

    def recv_into(self, *args, **kwargs):
        self._arm()
        return super().recv_into(*args, **kwargs)

    def recv(self, *args, **kwargs):
        self._arm()
        return super().recv(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self._arm()
        return super().sendall(*args, **kwargs)


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    pass


def _resolve(host: str, port: int, deadline: float) -> list:
    """``getaddrinfo`` bounded by the deadline (the system resolver has its own, longer, timeouts)."""
    try:
        ipaddress.ip_address(host)
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except ValueError:
        pass
    result: dict = {}

    def lookup() -> None:
        try:
            result["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result["error"] = exc

    worker = threading.Thread(target=lookup, daemon=True, name="llm-resolve")
    worker.start()
    worker.join(_remaining(deadline))
    if worker.is_alive():
        raise DeadlineExceeded(f"looking up {host} did not finish in time")
    if "error" in result:
        raise ConnectFailed(f"cannot resolve host {host!r} ({result['error']})")
    return result["addresses"]


def _connect(target: _Target, deadline: float, connect_timeout: float) -> socket.socket:
    last_error: Exception | None = None
    for family, kind, proto, _, address in _resolve(target.host, target.port, deadline):
        sock = _DeadlineSocket(family, kind, proto)
        try:
            sock.settimeout(min(_remaining(deadline), connect_timeout))
            sock.connect(address)
            sock.deadline = deadline
            return sock
        except DeadlineExceeded:
            sock.close()
            raise
        except socket.timeout:
            sock.close()
            if time.monotonic() >= deadline:
                raise DeadlineExceeded("connect did not finish in time") from None
            last_error = ConnectFailed(f"no answer to connect within {connect_timeout:g}s")
        except ConnectionRefusedError:
            sock.close()
            last_error = ConnectFailed("connection refused", refused=True)
        except OSError as exc:
            sock.close()
            last_error = ConnectFailed(f"cannot connect ({exc.strerror or exc})")
    raise last_error or ConnectFailed(f"no address for host {target.host!r}")


class _Connection(http.client.HTTPConnection):
    """An HTTP(S) connection whose socket obeys the exchange's deadline."""

    def __init__(self, target: _Target, deadline: float, connect_timeout: float):
        super().__init__(target.host, target.port)
        self._target, self._deadline, self._connect_timeout = target, deadline, connect_timeout

    def connect(self) -> None:
        sock = _connect(self._target, self._deadline, self._connect_timeout)
        if self._target.secure:
            context = ssl.create_default_context()
            context.sslsocket_class = _DeadlineSSLSocket
            sock.settimeout(_remaining(self._deadline))
            sock = context.wrap_socket(sock, server_hostname=self._target.host)
            sock.deadline = self._deadline
        self.sock = sock


def exchange(method: str, url: str, *, body: bytes | None = None, headers: dict | None = None,
             deadline: float, max_body: int, connect_timeout: float = 10.0) -> Reply:
    """Send one request and read the whole reply by ``deadline``.

    Raises:
        BadURL, ConnectFailed, ConnectionLost, DeadlineExceeded, BodyTooLarge (all :class:`TransportError`).
    """
    target = split_url(url)
    _remaining(deadline)
    connection = _Connection(target, deadline, connect_timeout)
    try:
        sent = {"Connection": "close", "Accept-Encoding": "identity", **(headers or {})}
        connection.request(method, target.path, body=body, headers=sent)
        response = connection.getresponse()
        length = response.getheader("Content-Length")
        length = int(length) if length is not None and length.strip().isdigit() else None
        if length is not None and length > max_body:
            raise BodyTooLarge(f"reply of {length:,} bytes exceeds the cap of {max_body:,}")
        chunks, size = [], 0
        while True:
            chunk = response.read(min(_READ_CHUNK, max_body + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_body:
                raise BodyTooLarge(f"reply exceeds the cap of {max_body:,} bytes")
        if length is not None and size < length and response.chunked is False:
            raise ConnectionLost(f"connection closed after {size:,} of {length:,} reply bytes")
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, b"".join(chunks))
    except socket.timeout:
        raise DeadlineExceeded("deadline reached") from None
    except (http.client.HTTPException, ssl.SSLError, OSError) as exc:
        if isinstance(exc, ConnectionRefusedError):
            raise ConnectFailed("connection refused", refused=True) from None
        if time.monotonic() >= deadline:
            raise DeadlineExceeded("deadline reached") from None
        raise ConnectionLost(f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}") from None
    finally:
        connection.close()
