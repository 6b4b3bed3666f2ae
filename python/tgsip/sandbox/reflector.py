"""A Telegram call reflector (UDP relay keyed by a call's peer_tag), spec telegram_calls.md §5.2.

Datagrams (all multi-byte integers big-endian)::

    hello: peer_tag[0:12] | own_tag(4) | 0xFF * 12 | 0xFE | 0xFF * 3 | u64 | padding
    data:  peer_tag[0:12] | dst_tag(4) | src_tag(4) | length u32 | payload | padding

A hello registers ``(peer_tag[0:12], own_tag) -> source address`` and is echoed back unchanged
(its first 16 bytes are what the client's relay port waits for). A data packet registers
``(peer_tag[0:12], src_tag) -> source`` and is forwarded unchanged to the address registered
for ``(peer_tag[0:12], dst_tag)``. Only tags of calls the server opened
(:meth:`ReflectorCore.allow`) are served; everything else is dropped silently, as are runts
and packets for unknown routes.

:class:`ReflectorCore` is the sans-I/O protocol object (it takes ``now``); :class:`Reflector`
is the asyncio UDP shell around it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import cast

log = logging.getLogger(__name__)

Address = tuple[str, int]

TAG_KEY_BYTES = 12
MIN_PACKET = 24
HELLO_MARK = b"\xff" * 12
ROUTE_IDLE_SECONDS = 60.0
MAX_ROUTES = 4096
MAX_ROUTES_PER_TAG = 8
MAX_TAGS = 4096


@dataclass
class ReflectorStats:
    """Counters since start (for tests and logs)."""

    hellos: int = 0
    forwarded: int = 0
    dropped: int = 0
    routes_learned: int = 0


@dataclass
class ReflectorCore:
    """Routing state of a reflector. Bounded: at most ``max_routes`` routes in all,
    ``max_routes_per_tag`` per call, idle routes forgotten after ``idle`` seconds."""

    idle: float = ROUTE_IDLE_SECONDS
    max_routes: int = MAX_ROUTES
    max_routes_per_tag: int = MAX_ROUTES_PER_TAG
    max_tags: int = MAX_TAGS
    stats: ReflectorStats = field(default_factory=ReflectorStats)
    _tags: set[bytes] = field(default_factory=set)
    _routes: OrderedDict[tuple[bytes, bytes], tuple[Address, float]] = field(
        default_factory=OrderedDict
    )

    def allow(self, peer_tag: bytes) -> bool:
        """Serve the call whose ``phoneConnection.peer_tag`` is ``peer_tag``; False if full."""
        key = peer_tag[:TAG_KEY_BYTES]
        if key not in self._tags and len(self._tags) >= self.max_tags:
            return False
        self._tags.add(key)
        return True

    def revoke(self, peer_tag: bytes) -> None:
        """Stop serving the call and forget its routes."""
        key = peer_tag[:TAG_KEY_BYTES]
        self._tags.discard(key)
        for route in [r for r in self._routes if r[0] == key]:
            del self._routes[route]

    @property
    def route_count(self) -> int:
        return len(self._routes)

    def _expire(self, now: float) -> None:
        while self._routes:
            route, (_, seen) = next(iter(self._routes.items()))
            if now - seen < self.idle:
                break
            del self._routes[route]

    def _learn(self, key: bytes, tag: bytes, addr: Address, now: float) -> bool:
        route = (key, tag)
        if route in self._routes:
            self._routes[route] = (addr, now)
            self._routes.move_to_end(route)
            return True
        if len(self._routes) >= self.max_routes:
            return False
        if sum(1 for k, _ in self._routes if k == key) >= self.max_routes_per_tag:
            return False
        self._routes[route] = (addr, now)
        self.stats.routes_learned += 1
        return True

    def handle(self, data: bytes, addr: Address, now: float) -> list[tuple[bytes, Address]]:
        """Process one datagram from ``addr``; returns the datagrams to send."""
        self._expire(now)
        key = data[:TAG_KEY_BYTES]
        if len(data) < MIN_PACKET or key not in self._tags:
            self.stats.dropped += 1
            return []
        if data[16:28] == HELLO_MARK:
            if not self._learn(key, data[12:16], addr, now):
                self.stats.dropped += 1
                return []
            self.stats.hellos += 1
            return [(data, addr)]
        self._learn(key, data[16:20], addr, now)
        target = self._routes.get((key, data[12:16]))
        if target is None:
            self.stats.dropped += 1
            return []
        self.stats.forwarded += 1
        return [(data, target[0])]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, core: ReflectorCore) -> None:
        self.core = core
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.transport is None:
            return
        source = (str(addr[0]), int(addr[1]))
        for packet, target in self.core.handle(data, source, time.monotonic()):
            self.transport.sendto(packet, target)

    def error_received(self, exc: Exception) -> None:
        log.debug("reflector socket error: %s", exc)


class Reflector:
    """The UDP reflector service (one socket)."""

    def __init__(self, core: ReflectorCore | None = None) -> None:
        self.core = core or ReflectorCore()
        self._transport: asyncio.DatagramTransport | None = None
        self.address: Address = ("127.0.0.1", 0)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind and serve; returns the bound port."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self.core), local_addr=(host, port)
        )
        self._transport = transport
        sock = transport.get_extra_info("sockname")
        self.address = (host, int(sock[1]))
        return self.address[1]

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
