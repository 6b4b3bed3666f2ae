"""Thin asyncio transports for SIP (RFC 3261 §18): UDP, TCP and TLS over IPv4 and IPv6.

Each transport parses what arrives with :func:`tgsip.sip.message.parse_message` and calls
``on_message(msg, peer)``; it never raises on hostile bytes. Incoming requests get the RFC 3581
``received``/``rport`` parameters on their top Via. A malformed request is answered with the
parser's status (400/416/505...) when its headers allow building a response, otherwise dropped.
Streams are framed with :func:`find_message_end`; a lone CRLFCRLF ping is answered with a CRLF
pong (RFC 5626 §3.5.1); a stream that cannot be framed or grows beyond ``max_message`` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Any, cast

from tgsip.sip.headers import parse_via
from tgsip.sip.message import (
    Request,
    Response,
    SipParseError,
    find_message_end,
    make_response,
    parse_message,
)
from tgsip.sip.transaction import Peer

__all__ = [
    "MAX_MESSAGE",
    "OnMessage",
    "StreamConnection",
    "StreamServer",
    "UdpTransport",
    "apply_rport",
    "error_response",
    "response_peer",
]

MAX_MESSAGE = 65_535
"""Largest message accepted (a UDP datagram's maximum; streams use the same cap)."""

RCVBUF = 4 * 1024 * 1024
"""Receive buffer requested for UDP sockets."""

OnMessage = Callable[[Request | Response, Peer], None]


def apply_rport(req: Request, host: str, port: int) -> Request:
    """Add ``received`` (when the sent-by host differs from ``host``) and fill ``rport`` (when
    the client asked for it) on the top Via (RFC 3261 §18.2.1, RFC 3581 §4).

    Returns ``req`` unchanged or a new :class:`Request` with the rewritten top Via.
    """
    via = req.top_via
    params: dict[str, str | None] = {}
    sent_host = via.host[1:-1] if via.host.startswith("[") else via.host
    if sent_host != host:
        params["received"] = host
    if via.has_rport:
        params["rport"] = str(port)
        params["received"] = host
    if not params:
        return req
    new_top = via.with_params(**params)
    headers = list(req.headers)
    for i, (name, value) in enumerate(headers):
        if name == "Via":
            vias = parse_via(value)
            rest = ", ".join(str(v) for v in vias[1:])
            headers[i] = ("Via", f"{new_top}, {rest}" if rest else str(new_top))
            break
    return Request(headers=headers, body=req.body, method=req.method, uri=req.uri)


def response_peer(req: Request, source: Peer) -> Peer:
    """Where responses to ``req`` go (RFC 3261 §18.2.2, RFC 3581 §4).

    Streams and rport requests: the source address and port. Otherwise UDP: the source
    address and the sent-by port (5060 by default).
    """
    if source.reliable:
        return source
    via = req.top_via
    if via.has_rport:
        return source
    return Peer(source.transport, source.host, via.port or 5060)


def error_response(data: bytes, exc: SipParseError) -> Response | None:
    """The response to a request the parser rejected, or None to drop it silently.

    The rejected start line (bad version, unsupported scheme) is replaced by a neutral one so
    the Via, From, To, Call-ID and CSeq needed for the response can still be read; when those
    are unusable too the message is dropped.
    """
    body = data.lstrip(b"\r\n")
    if exc.status is None or body.startswith(b"SIP/"):
        return None
    # TODO: replace with a tgsip.sip.message accessor for headers of a rejected request
    nl = body.find(b"\n")
    if nl < 0:
        return None
    method = body[: body.find(b" ")] if body.find(b" ") > 0 else b"OPTIONS"
    if not method.isalpha() or len(method) > 32:
        method = b"OPTIONS"
    try:
        start = method + b" sip:invalid SIP/2.0\r\n"
        req = parse_message(start + body[nl + 1 :], strict=False)
        if not isinstance(req, Request):
            return None
        _ = req.top_via, req.cseq, req.call_id, req.from_, req.to
        return make_response(req, exc.status, exc.reason)
    except (SipParseError, ValueError):
        return None


def _parse(data: bytes, peer: Peer) -> tuple[Request | Response | None, Response | None]:
    """Parse one message; returns (message, None) or (None, error response or None)."""
    try:
        msg = parse_message(data)
        if isinstance(msg, Request):
            host = peer.host
            msg = apply_rport(msg, host, peer.port)
        return msg, None
    except SipParseError as exc:
        return None, error_response(data, exc)
    except (ValueError, UnicodeError, IndexError):
        return None, None


class UdpTransport(asyncio.DatagramProtocol):
    """SIP over UDP (§18). Use :meth:`listen` to bind."""

    def __init__(self, on_message: OnMessage, max_message: int = MAX_MESSAGE) -> None:
        self.on_message = on_message
        self.max_message = max_message
        self.transport: asyncio.DatagramTransport | None = None
        self.dropped = 0

    @classmethod
    async def listen(cls, host: str, port: int, on_message: OnMessage) -> UdpTransport:
        """Bind a UDP socket on ``host:port`` (``port`` 0 = any free port)."""
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(
            lambda: cls(on_message), local_addr=(host, port)
        )
        return proto

    @property
    def local(self) -> tuple[str, int]:
        """Bound address and port."""
        assert self.transport is not None
        sock: tuple[Any, ...] = self.transport.get_extra_info("sockname")
        return (str(sock[0]), int(sock[1]))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Absorb bursts (the kernel caps this at net.core.rmem_max).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        peer = Peer("UDP", str(addr[0]), int(addr[1]))
        if len(data) > self.max_message or not data.strip(b"\r\n"):
            self.dropped += 1
            return
        msg, err = _parse(data, peer)
        if msg is not None:
            self.on_message(msg, peer)
        elif err is not None and self.transport is not None:
            self.transport.sendto(err.to_bytes(), addr[:2])
        else:
            self.dropped += 1

    def error_received(self, exc: Exception) -> None:
        self.dropped += 1

    def send(self, data: bytes, peer: Peer) -> None:
        """Send one datagram."""
        if self.transport is not None:
            self.transport.sendto(data, (peer.host, peer.port))

    def close(self) -> None:
        """Close the socket."""
        if self.transport is not None:
            self.transport.close()


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection carrying SIP (§18.3 framing, RFC 5626 keep-alive)."""

    def __init__(
        self,
        transport_name: str,
        on_message: OnMessage,
        registry: dict[tuple[str, str, int], StreamConnection],
        max_message: int = MAX_MESSAGE,
    ) -> None:
        self.name = transport_name
        self.on_message = on_message
        self.registry = registry
        self.max_message = max_message
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.pongs = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        addr = transport.get_extra_info("peername")
        self.peer = Peer(self.name, str(addr[0]), int(addr[1]))
        self.registry[(self.name, self.peer.host, self.peer.port)] = self

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            key = (self.name, self.peer.host, self.peer.port)
            if self.registry.get(key) is self:
                del self.registry[key]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        for _ in range(1000):  # bounded per read
            if not self._one():
                break
        if len(self.buf) > self.max_message:
            self.abort()

    def _one(self) -> bool:
        buf = self.buf
        if buf.startswith(b"\r\n\r\n"):
            self.buf = buf[4:]
            self.pongs += 1
            if self.transport is not None:
                self.transport.write(b"\r\n")
            return True
        if buf in (b"\r\n", b"") or buf == b"\r":
            return False
        try:
            end = find_message_end(buf)
        except SipParseError:
            self.abort()
            return False
        if end is None:
            return False
        if end > self.max_message:
            self.abort()
            return False
        data, self.buf = buf[:end], buf[end:]
        if not data.strip(b"\r\n"):
            return True
        assert self.peer is not None
        msg, err = _parse(data, self.peer)
        if msg is not None:
            self.on_message(msg, self.peer)
        elif err is not None and self.transport is not None:
            self.transport.write(err.to_bytes())
        return True

    def send(self, data: bytes) -> None:
        """Write bytes to the stream."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def abort(self) -> None:
        """Drop the connection (unframeable or oversize input)."""
        self.buf = b""
        if self.transport is not None:
            self.transport.abort()


class StreamServer:
    """Listening TCP or TLS socket plus the table of open connections keyed by peer."""

    def __init__(
        self,
        on_message: OnMessage,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 10_000,
        max_per_ip: int = 64,
    ) -> None:
        self.on_message = on_message
        self.ssl = ssl_context
        self.name = "TLS" if ssl_context is not None else "TCP"
        self.connections: dict[tuple[str, str, int], StreamConnection] = {}
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.per_ip: dict[str, int] = {}
        self.refused = 0
        self.server: asyncio.Server | None = None

    def _factory(self) -> StreamConnection:
        return _LimitedConnection(self)

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Start listening; returns the bound address and port."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._factory, host, port, ssl=self.ssl)
        sock = self.server.sockets[0].getsockname()
        return (str(sock[0]), int(sock[1]))

    async def connect(
        self, host: str, port: int, server_hostname: str | None = None
    ) -> StreamConnection:
        """Open an outgoing connection and register it."""
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            self._factory,
            host,
            port,
            ssl=self.ssl_client if self.ssl is not None else None,
            server_hostname=server_hostname if self.ssl is not None else None,
        )
        return proto

    ssl_client: ssl.SSLContext | None = None

    def send(self, data: bytes, peer: Peer) -> bool:
        """Send on the open connection to ``peer``; False when there is none."""
        conn = self.connections.get((self.name, peer.host, peer.port))
        if conn is None:
            return False
        conn.send(data)
        return True

    async def close(self) -> None:
        """Stop listening and close every connection."""
        for conn in list(self.connections.values()):
            conn.abort()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class _LimitedConnection(StreamConnection):
    """Enforces the server's total and per-IP connection caps."""

    def __init__(self, server: StreamServer) -> None:
        super().__init__(server.name, server.on_message, server.connections)
        self._server = server
        self._counted: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        srv = self._server
        host = str(transport.get_extra_info("peername")[0])
        if len(srv.connections) >= srv.max_connections or srv.per_ip.get(host, 0) >= (
            srv.max_per_ip
        ):
            srv.refused += 1
            transport.close()
            return
        srv.per_ip[host] = srv.per_ip.get(host, 0) + 1
        self._counted = host
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        host = self._counted
        if host is not None:
            self._counted = None
            left = self._server.per_ip.get(host, 1) - 1
            if left > 0:
                self._server.per_ip[host] = left
            else:
                self._server.per_ip.pop(host, None)
        super().connection_lost(exc)
