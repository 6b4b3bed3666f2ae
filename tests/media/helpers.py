"""Media test helpers: RTP built by hand, a UDP peer, tones and their measurement."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from collections.abc import AsyncIterator

import numpy as np


def rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    """An RTP packet (RFC 3550 §5.1), no CSRC or extension."""
    return (
        struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc
        )
        + payload
    )


def parse_rtp(data: bytes) -> tuple[int, bool, int, int, int, bytes]:
    """``(pt, marker, seq, ts, ssrc, payload)`` of a packet without CSRC/extension/padding."""
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    assert b0 >> 6 == 2
    cc = b0 & 0x0F
    return b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, data[12 + 4 * cc :]


def tone(freqs: list[float], ms: int, rate: int = 8000, dbfs: float = -10.0) -> bytes:
    """Sum of sines, each at ``dbfs`` of full scale, as s16le."""
    n = rate * ms // 1000
    t = np.arange(n) / rate
    amp = 32767 * 10 ** (dbfs / 20)
    sig = sum(amp * np.sin(2 * math.pi * f * t) for f in freqs)
    return np.clip(sig, -32768, 32767).astype("<i2").tobytes()


def level_at(pcm: bytes, freq: float, rate: int = 8000) -> float:
    """Amplitude of ``freq`` in ``pcm`` relative to full scale (dBFS), by projection."""
    x = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    if len(x) == 0:
        return -math.inf
    t = np.arange(len(x)) / rate
    c = np.dot(x, np.cos(2 * math.pi * freq * t))
    s = np.dot(x, np.sin(2 * math.pi * freq * t))
    amp = 2 * math.hypot(c, s) / len(x)
    return 20 * math.log10(max(amp, 1e-9) / 32767)


class UdpPeer:
    """A plain UDP socket on loopback standing in for a PBX's RTP endpoint."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return str(host), int(port)

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        self.sock.sendto(data, to)

    async def recv(self, timeout: float = 2.0) -> bytes:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recv(self.sock, 2048), timeout)

    async def collect(self, seconds: float, limit: int = 10_000) -> list[bytes]:
        """Everything received for ``seconds`` (at most ``limit`` packets)."""
        out: list[bytes] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while len(out) < limit:
            left = end - loop.time()
            if left <= 0:
                break
            try:
                out.append(await self.recv(left))
            except TimeoutError:
                break
        return out

    def close(self) -> None:
        self.sock.close()


async def paced(frames: int, period: float = 0.010) -> AsyncIterator[int]:
    """Yields 0..frames-1 on a real-time grid of ``period`` seconds (catches up, never bursts
    more than the schedule)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(frames):
        yield i
        delay = t0 + (i + 1) * period - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
