"""Child process: two real ntgcalls peers talk relay-only through the sandbox's reflector.

Run by test_reflector.py as ``unshare -n python reflector_ntgcalls_child.py`` (root): inside
the fresh network namespace it brings up ``lo`` and an ifb link carrying 127.0.0.2/32
(WebRTC ignores loopback adapters, spec telegram_calls.md §8.1), starts
:class:`tgsip.sandbox.reflector.Reflector` on 127.0.0.1, gives both peers only that
reflector with ``p2p_allowed = false``, passes their signalling to each other in-process,
plays a 440 Hz tone from A to B and prints one JSON line with what happened.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import struct
import subprocess
import sys
import time
from typing import Any

import ntgcalls  # type: ignore[import-not-found, unused-ignore]

from tgsip.sandbox.reflector import Reflector

RATE = 48_000
FRAME = RATE // 100  # 10 ms, mono
UID_A, UID_B = 1001, 1002


def setup_namespace() -> None:
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
        ["ip", "link", "add", "tgifb0", "type", "ifb"],
        ["ip", "link", "set", "tgifb0", "up"],
        ["ip", "addr", "add", "127.0.0.2/32", "dev", "tgifb0"],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=10)


def tone(n: int, start: int) -> bytes:
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * (start + i) / RATE)))
        for i in range(n)
    )


def analyse(pcm: bytes) -> tuple[float, float]:
    """(RMS, frequency from zero crossings) of s16le mono audio."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) // 2 * 2])
    if not samples:
        return 0.0, 0.0
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    crossings = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
    return rms, crossings * RATE / len(samples)


async def run() -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    reflector = Reflector()
    port = await reflector.start("127.0.0.1", 0)
    peer_tag = os.urandom(16)
    reflector.core.allow(peer_tag)

    a, b = ntgcalls.NTgCalls(), ntgcalls.NTgCalls()
    peers = {UID_B: a, UID_A: b}  # instance by the id of the peer it talks to
    queues: dict[int, asyncio.Queue[bytes]] = {UID_A: asyncio.Queue(), UID_B: asyncio.Queue()}
    connected = {UID_A: asyncio.Event(), UID_B: asyncio.Event()}
    received: list[bytes] = []

    def on_signaling(target: int) -> Any:
        # A's blobs (chat id UID_B) go to B, whose call is keyed by UID_A, and vice versa.
        return lambda chat_id, data: loop.call_soon_threadsafe(
            queues[target].put_nowait, bytes(data)
        )

    def on_state(target: int) -> Any:
        def cb(chat_id: int, info: Any) -> None:
            if info.state == ntgcalls.ConnectionState.CONNECTED:
                loop.call_soon_threadsafe(connected[target].set)

        return cb

    a.on_signaling_data(on_signaling(UID_A))
    b.on_signaling_data(on_signaling(UID_B))
    a.on_connection_change(on_state(UID_B))
    b.on_connection_change(on_state(UID_A))
    b.on_frames(
        lambda chat_id, mode, device, frames: received.extend(bytes(f.data) for f in frames)
    )

    async def pump(target: int) -> None:
        while True:
            data = await queues[target].get()
            await peers[target].send_signaling_data(target, data)

    pcm = ntgcalls.AudioDescription(ntgcalls.MediaSource.EXTERNAL, RATE, 1, "", False)
    media = ntgcalls.MediaDescription(pcm, None, None, None)
    for inst, other in ((a, UID_B), (b, UID_A)):
        await inst.create_p2p_call(other)
        await inst.set_stream_sources(other, ntgcalls.StreamMode.CAPTURE, media)
        await inst.set_stream_sources(other, ntgcalls.StreamMode.PLAYBACK, media)
    p = int(
        "C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F"
        "48198A0AA7C14058229493D22530F4DBFA336F6E0AC925139543AED44CCE7C37"
        "20FD51F69458705AC68CD4FE6B6B13ABDC9746512969328454F18FAF8C595F64"
        "2477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4"
        "A4A695811051907E162753B56B0F6B410DBA74D8A84B2A14B3144E0EF1284754"
        "FD17ED950D5965B4B9DD46582DB1178D169C6BC465B0D6FF9CA3928FEF5B9AE4"
        "E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D956850CE929851F"
        "0D8115F635B105EE2E4E15D04B2454BF6F4FADF034B10403119CD8E3B92FCC5B",
        16,
    ).to_bytes(256, "big")
    g_a_hash = await a.init_exchange(UID_B, ntgcalls.DhConfig(3, p, os.urandom(256)), None)
    g_b = await b.init_exchange(UID_A, ntgcalls.DhConfig(3, p, os.urandom(256)), g_a_hash)
    auth = await a.exchange_keys(UID_B, g_b, 0)
    await b.exchange_keys(UID_A, auth.g_a_or_b, auth.key_fingerprint)

    server = ntgcalls.RTCServer(1, "127.0.0.1", "", port, None, None, True, False, False, peer_tag)
    versions = list(ntgcalls.NTgCalls.get_protocol().library_versions)
    pumps = [asyncio.create_task(pump(UID_A)), asyncio.create_task(pump(UID_B))]
    started = time.monotonic()
    await a.connect_p2p(UID_B, [server], versions, False, None)
    await b.connect_p2p(UID_A, [server], versions, False, None)
    try:
        await asyncio.wait_for(asyncio.gather(connected[UID_A].wait(), connected[UID_B].wait()), 15)
    except TimeoutError:
        return {"connected": False, "stats": vars(reflector.core.stats)}
    connect_s = time.monotonic() - started

    next_at = loop.time()
    for i in range(150):  # 1.5 s of tone, paced by absolute 10 ms deadlines
        frame = tone(FRAME, i * FRAME)
        await a.send_external_frame(
            UID_B,
            ntgcalls.StreamDevice.MICROPHONE,
            frame,
            ntgcalls.FrameData(int(time.time() * 1000), ntgcalls.VIDEO_ROTATION_0, 0, 0),
        )
        next_at += 0.01
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    tail = b"".join(received[-50:])  # the last 0.5 s B played out
    rms, freq = analyse(tail)
    for task in pumps:
        task.cancel()
    await a.stop(UID_B)
    await b.stop(UID_A)
    reflector.stop()
    return {
        "connected": True,
        "connect_s": round(connect_s, 3),
        "stats": vars(reflector.core.stats),
        "rms": round(rms, 1),
        "freq": round(freq, 1),
        "frames": len(received),
    }


def main() -> None:
    setup_namespace()
    result = asyncio.run(run())
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # ntgcalls' native threads may linger; the namespace goes with the process


if __name__ == "__main__":
    main()
