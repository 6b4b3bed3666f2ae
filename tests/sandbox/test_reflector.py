"""The call reflector (spec telegram_calls.md §5.2) over real UDP sockets, and its bounds."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgsip.sandbox import Sandbox
from tgsip.sandbox.reflector import ReflectorCore

WAIT = 5.0
ROOT = Path(__file__).resolve().parents[2]


def hello(peer_tag: bytes, own: bytes) -> bytes:
    return peer_tag[:12] + own + b"\xff" * 12 + b"\xfe" + b"\xff" * 3 + os.urandom(8)


def data(peer_tag: bytes, dst: bytes, src: bytes, payload: bytes) -> bytes:
    body = peer_tag[:12] + dst + src + struct.pack(">I", len(payload)) + payload
    return body + b"\x00" * (-len(body) % 4)


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    socks = []
    for _ in range(3):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    yield socks
    for s in socks:
        s.close()


async def recv(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT)


async def test_hello_answer_forward(sandbox: Sandbox, sockets: list[socket.socket]) -> None:
    port = await sandbox.start_reflector("127.0.0.1", 0)
    assert sandbox.reflector is not None
    core = sandbox.reflector.core
    addr = ("127.0.0.1", port)
    a, b, stranger = sockets
    tag = os.urandom(16)
    core.allow(tag)
    ta, tb = b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"

    # Unknown tags and runts get nothing; the echo of a good hello comes first.
    stranger.sendto(hello(os.urandom(16), ta), addr)
    stranger.sendto(b"\x01" * 23, addr)
    good = hello(tag, b"\x00\x00\x00\x09")
    stranger.sendto(good, addr)
    assert await recv(stranger) == good

    for sock, own in ((a, ta), (b, tb)):
        packet = hello(tag, own)
        sock.sendto(packet, addr)
        assert await recv(sock) == packet  # echoed unchanged: the port is "ready"

    to_b = data(tag, tb, ta, os.urandom(333))
    a.sendto(to_b, addr)
    assert await recv(b) == to_b
    to_a = data(tag, ta, tb, b"answer")
    b.sendto(to_a, addr)
    assert await recv(a) == to_a

    # A destination tag nobody registered is dropped; the next good packet still flows.
    a.sendto(data(tag, b"\x00\x00\x00\x07", ta, b"lost"), addr)
    a.sendto(to_b, addr)
    assert await recv(b) == to_b
    assert core.stats.forwarded == 3
    assert core.stats.hellos == 3
    assert core.stats.dropped == 3

    # After the call the tag is revoked: nothing passes any more.
    core.revoke(tag)
    assert core.route_count == 0
    a.sendto(to_b, addr)
    b.sendto(good, addr)
    b.sendto(hello(tag, tb), addr)
    other = os.urandom(16)
    core.allow(other)
    probe = hello(other, tb)
    b.sendto(probe, addr)
    assert await recv(b) == probe


def test_bounded_tables() -> None:
    core = ReflectorCore(max_routes=10, max_routes_per_tag=4, max_tags=3, idle=60)
    tags = [os.urandom(16) for _ in range(4)]
    assert all(core.allow(t) for t in tags[:3])
    assert not core.allow(tags[3])
    for i in range(10):
        core.handle(hello(tags[0], struct.pack(">I", i)), ("127.0.0.1", 1000 + i), 0.0)
    assert core.route_count == 4  # per-call bound
    for t in tags[1:3]:
        for i in range(10):
            core.handle(hello(t, struct.pack(">I", i)), ("127.0.0.1", 2000 + i), 1.0)
    assert core.route_count == 10  # global bound
    late = hello(tags[1], b"\xaa" * 4)
    assert core.handle(late, ("127.0.0.1", 9), 2.0) == []
    # Idle routes expire; room again.
    assert core.handle(late, ("127.0.0.1", 9), 70.0) == [(late, ("127.0.0.1", 9))]
    assert core.route_count == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_fuzz_never_raises(packet: bytes, known: bool) -> None:
    core = ReflectorCore()
    tag = b"T" * 16
    core.allow(tag)
    core.handle(hello(tag, b"\x00\x00\x00\x01"), ("127.0.0.1", 1), 0.0)
    if known:
        packet = tag[:12] + packet
    out = core.handle(packet, ("127.0.0.1", 2), 1.0)
    if not packet.startswith(tag[:12]) or len(packet) < 24:
        assert out == []
    for sent, target in out:
        assert sent == packet  # forwarded or echoed unchanged
        assert target in (("127.0.0.1", 1), ("127.0.0.1", 2))
    assert core.route_count <= 2


async def test_ntgcalls_peers_connect_through_the_reflector() -> None:
    """Two real ntgcalls peers, relay-only, media through this reflector (child process)."""
    if importlib.util.find_spec("ntgcalls") is None:
        pytest.skip("ntgcalls is not installed (pip install ntgcalls==3.0.5)")
    if os.geteuid() != 0:
        pytest.skip("needs root for a private network namespace (unshare -n)")
    missing = [tool for tool in ("unshare", "ip", "sysctl") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)} (apt: util-linux iproute2 procps)")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    proc = await asyncio.create_subprocess_exec(
        "unshare",
        "-n",
        sys.executable,
        str(Path(__file__).with_name("reflector_ntgcalls_child.py")),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["connected"], result
    stats = result["stats"]
    assert stats["hellos"] >= 2  # both peers' relay ports said hello
    assert stats["routes_learned"] >= 2
    assert stats["forwarded"] >= 50  # media went through the reflector
    assert 430 <= result["freq"] <= 450  # B heard A's 440 Hz tone
    assert result["rms"] > 4000  # sent at amplitude 8000 (RMS 5657)
