"""The engine over real loopback UDP: audio both ways, bridges, DTMF, timeouts, recording,
hostile packets. Every wait is bounded."""

from __future__ import annotations

import asyncio
import audioop
import gc
import itertools
import os
import struct
import wave
from pathlib import Path

import pytest

from tests.media.helpers import UdpPeer, level_at, paced, parse_rtp, rtp, tone
from tgsip.media import InvalidArgumentError, LineConfig, MediaEngine
from tgsip.media.events import (
    DatagramReceived,
    DtmfReceived,
    MediaEvent,
    RecordingFinished,
    RemoteLatched,
    RtpTimeout,
)

PCMA = LineConfig(codec="PCMA", payload_type=8, stats_interval_ms=0)
OPUS = LineConfig(codec="opus", payload_type=111, stats_interval_ms=0)


async def next_event(line_events: asyncio.Queue[MediaEvent], kind: type, timeout: float = 3.0):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        ev = await asyncio.wait_for(line_events.get(), max(0.01, end - loop.time()))
        if isinstance(ev, kind):
            return ev


async def pcm_round_trip(engine: MediaEngine, cfg: LineConfig, pcm: bytes) -> bytes:
    a = engine.open_line(cfg, pcm_endpoint=True)
    b = engine.open_line(cfg, pcm_endpoint=True)
    a.start(*b.local_address)
    b.start(*a.local_address)
    fb = a.frame_bytes
    n = len(pcm) // fb
    out = []
    async for i in paced(n + 25):
        a.push_pcm(pcm[i * fb : (i + 1) * fb] if i < n else bytes(fb))
        out.append(b.pull_pcm())
    engine.close_line(a)
    engine.close_line(b)
    return b"".join(out)


@pytest.mark.parametrize("cfg", [PCMA, OPUS], ids=["pcma", "opus"])
async def test_tone_crosses_two_lines(engine: MediaEngine, cfg: LineConfig) -> None:
    sent = tone([1000.0], 1000, dbfs=-12)
    got = await pcm_round_trip(engine, cfg, sent)
    # Skip the start (jitter buffer filling), measure the steady middle.
    middle = got[len(got) // 3 : 2 * len(got) // 3]
    assert level_at(middle, 1000.0) == pytest.approx(-12, abs=1.5)
    assert level_at(middle, 1700.0) < -40


async def test_opus_line_at_48k_pcm(engine: MediaEngine) -> None:
    cfg = LineConfig(codec="opus", payload_type=111, pcm_rate=48000, stats_interval_ms=0)
    got = await pcm_round_trip(engine, cfg, tone([440.0], 800, rate=48000, dbfs=-12))
    middle = got[len(got) // 3 : 2 * len(got) // 3]
    assert level_at(middle, 440.0, rate=48000) == pytest.approx(-12, abs=1.5)


async def test_g711_line_speaks_plain_rtp(engine: MediaEngine, peer: UdpPeer) -> None:
    """A PBX stand-in sends A-law RTP encoded by audioop and decodes what comes back."""
    line = engine.open_line(PCMA, pcm_endpoint=True)
    line.start(*peer.address)
    pcm = tone([800.0], 600, dbfs=-10)
    received = []
    async for i in paced(60):
        if i % 2 == 0:
            frame = pcm[i * 160 : (i + 2) * 160]
            pkt = rtp(8, 1000 + i // 2, 80 * i, 0xABC, audioop.lin2alaw(frame, 2))
            peer.send(pkt, line.local_address)
        received.append(line.pull_pcm())
    assert level_at(b"".join(received[-20:]), 800.0) == pytest.approx(-10, abs=1.5)
    # And the line sends 20 ms PCMA packets of what Python pushes.
    await peer.collect(0.05, limit=1000)  # what it sent before: silence
    line.push_pcm(tone([600.0], 100, dbfs=-10))
    packets = await peer.collect(0.5, limit=100)
    assert len(packets) >= 10
    parsed = [parse_rtp(p) for p in packets]
    assert {p[0] for p in parsed} == {8}
    assert all(len(p[5]) == 160 for p in parsed)
    seqs = [p[2] for p in parsed]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    decoded = [audioop.alaw2lin(p[5], 2) for p in parsed]
    toned = [d for d in decoded if audioop.rms(d, 2) > 1000]
    assert len(toned) >= 4
    assert level_at(b"".join(toned[1:4]), 600.0) == pytest.approx(-10, abs=2)
    stats = line.stats()
    assert stats["packets_received"] == 30
    engine.close_line(line)


async def test_transcoding_bridge_g711_to_opus(engine: MediaEngine) -> None:
    """PBX (PCMA) ⇄ bridge ⇄ Opus leg, each end a PCM endpoint line standing in for the peer."""
    pbx = engine.open_line(PCMA, pcm_endpoint=True)
    far = engine.open_line(OPUS, pcm_endpoint=True)
    a = engine.open_line(PCMA)
    b = engine.open_line(OPUS, near=a)
    a.bridge(b)
    pbx.start(*a.local_address)
    a.start(*pbx.local_address)
    far.start(*b.local_address)
    b.start(*far.local_address)
    t1 = tone([700.0], 1200, dbfs=-12)
    t2 = tone([1200.0], 1200, dbfs=-12)
    got_far, got_pbx = [], []
    async for i in paced(120):
        pbx.push_pcm(t1[i * 160 : (i + 1) * 160])
        far.push_pcm(t2[i * 160 : (i + 1) * 160])
        got_far.append(far.pull_pcm())
        got_pbx.append(pbx.pull_pcm())
    f = b"".join(got_far)[-6400:]
    p = b"".join(got_pbx)[-6400:]
    assert level_at(f, 700.0) == pytest.approx(-12, abs=2)
    assert level_at(p, 1200.0) == pytest.approx(-12, abs=2)
    assert level_at(f, 1200.0) < -35  # no echo of the other direction


async def test_relay_bridge_forwards_payloads(engine: MediaEngine) -> None:
    cfg = LineConfig(codec="PCMA", payload_type=8, detect_inband_dtmf=False, stats_interval_ms=0)
    left, right = UdpPeer(), UdpPeer()
    try:
        a = engine.open_line(cfg)
        b = engine.open_line(cfg, near=a)
        a.bridge(b)
        a.start(*left.address)
        b.start(*right.address)
        payloads = [bytes([i]) * 160 for i in range(10)]
        for i, pl in enumerate(payloads):
            left.send(rtp(8, 50 + i, 160 * i, 0x1234, pl, marker=i == 0), a.local_address)
        got = await right.collect(0.5, limit=10)
        parsed = [parse_rtp(p) for p in got]
        assert [p[5] for p in parsed] == payloads
        assert parsed[0][1] is True
        assert all(p[4] != 0x1234 for p in parsed)  # our own SSRC
        assert b.stats()["packets_sent"] == 10
        assert a.stats()["relayed"] == 10
    finally:
        left.close()
        right.close()


async def test_rfc4733_digits_are_reported_once(engine: MediaEngine, peer: UdpPeer) -> None:
    line = engine.open_line(PCMA, pcm_endpoint=True)
    line.start(*peer.address)
    ts = 16000
    for i, (end, dur) in enumerate([(False, 160), (False, 320), (False, 480), (True, 800)]):
        payload = struct.pack("!BBH", 5, (0x80 if end else 0) | 10, dur)
        peer.send(rtp(101, 7 + i, ts, 0x99, payload, marker=i == 0), line.local_address)
    for i in range(2):  # redundant end packets
        peer.send(rtp(101, 11 + i, ts, 0x99, struct.pack("!BBH", 5, 0x8A, 800)), line.local_address)
    ev = await next_event(line.events, DtmfReceived)
    assert (ev.digit, ev.method, ev.duration_ms) == ("5", "rfc4733", 100)
    with pytest.raises(TimeoutError):
        await next_event(line.events, DtmfReceived, timeout=0.4)


async def test_inband_digit_detected(engine: MediaEngine, peer: UdpPeer) -> None:
    line = engine.open_line(PCMA, pcm_endpoint=True)
    line.start(*peer.address)
    pcm = tone([852.0, 1477.0], 120, dbfs=-12) + bytes(2 * 8 * 200)  # digit 9, then silence
    frames = len(pcm) // 320
    for i in range(frames):
        peer.send(
            rtp(8, i, 160 * i, 0x77, audioop.lin2alaw(pcm[i * 320 : (i + 1) * 320], 2)),
            line.local_address,
        )
        await asyncio.sleep(0.02)
    ev = await next_event(line.events, DtmfReceived)
    assert (ev.digit, ev.method) == ("9", "inband")


async def test_sends_rfc4733(engine: MediaEngine, peer: UdpPeer) -> None:
    line = engine.open_line(PCMA, pcm_endpoint=True)
    line.start(*peer.address)
    line.send_dtmf("#", 100)
    packets = [parse_rtp(p) for p in await peer.collect(0.6, limit=60)]
    events = [p for p in packets if p[0] == 101]
    assert events, "no telephone-event packets"
    assert events[0][1] is True  # marker on the first
    assert len({p[3] for p in events}) == 1  # one timestamp for the event
    codes = [p[5][0] for p in events]
    assert set(codes) == {11}
    ends = [p for p in events if p[5][1] & 0x80]
    assert len(ends) == 3
    assert struct.unpack("!H", ends[-1][5][2:4])[0] == 800


async def test_rtp_timeout_and_latching(engine: MediaEngine, peer: UdpPeer) -> None:
    cfg = LineConfig(codec="PCMA", payload_type=8, rtp_timeout_ms=300, stats_interval_ms=0)
    line = engine.open_line(cfg, pcm_endpoint=True)
    line.start("127.0.0.1", 9)  # the SDP's address; the real source differs (NAT)
    peer.send(rtp(8, 1, 0, 5, bytes(160)), line.local_address)
    latched = await next_event(line.events, RemoteLatched)
    assert (latched.host, latched.port) == peer.address
    timeout = await next_event(line.events, RtpTimeout, timeout=2.0)
    assert timeout.silent_ms >= 300
    packets = await peer.collect(0.2, limit=3)
    assert packets, "after latching the line sends to the packets' source"


async def test_recording_has_both_directions(engine: MediaEngine, tmp_path: Path) -> None:
    a = engine.open_line(PCMA, pcm_endpoint=True)
    b = engine.open_line(PCMA, pcm_endpoint=True)
    a.start(*b.local_address)
    b.start(*a.local_address)
    path = tmp_path / "call.wav"
    a.start_recording(path)
    ta, tb = tone([500.0], 1000, dbfs=-12), tone([1500.0], 1000, dbfs=-12)
    async for i in paced(100):
        a.push_pcm(ta[i * 160 : (i + 1) * 160])
        b.push_pcm(tb[i * 160 : (i + 1) * 160])
        a.pull_pcm()
        b.pull_pcm()
    a.stop_recording()
    done = await next_event(a.events, RecordingFinished)
    assert done.path == str(path)
    assert done.duration_ms >= 800
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
        frames = w.readframes(w.getnframes())
    left = audioop.tomono(frames, 2, 1, 0)[-8000:]
    right = audioop.tomono(frames, 2, 0, 1)[-8000:]
    assert level_at(left, 1500.0) == pytest.approx(-12, abs=2)  # received from b
    assert level_at(right, 500.0) == pytest.approx(-12, abs=2)  # sent by a


async def test_hostile_packets_are_counted_not_fatal(engine: MediaEngine, peer: UdpPeer) -> None:
    line = engine.open_line(PCMA, pcm_endpoint=True)
    line.start(*peer.address)
    junk = [
        b"",
        b"\x00",
        b"\x80" * 5,
        b"\x40" + bytes(20),
        bytes(range(256)) * 5,
        b"\xa0\x08" + bytes(10),
    ]
    for j in junk:
        peer.send(j, line.local_address)
    peer.send(rtp(99, 1, 0, 1, bytes(160)), line.local_address)  # not negotiated
    peer.send(rtp(8, 2, 160, 1, bytes(160)), line.local_address)
    await asyncio.sleep(0.2)
    stats = line.stats()
    assert stats["malformed"] >= 4
    assert stats["unknown_payload_type"] == 1
    assert stats["packets_received"] == 1


def test_invalid_configuration_is_refused() -> None:
    with MediaEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="ptime_ms"):
            engine.open_line(LineConfig(ptime_ms=25))  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="unsupported codec"):
            engine.open_line(LineConfig(codec="gsm"))  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="complexity"):
            engine.open_line(
                LineConfig(
                    codec="opus",
                    payload_type=111,
                    opus=__import__("tgsip.media", fromlist=["OpusSettings"]).OpusSettings(
                        complexity=11
                    ),
                )
            )
        line = engine.open_line(PCMA)
        with pytest.raises(InvalidArgumentError, match="pcm_endpoint"):
            line.push_pcm(bytes(160))
        with pytest.raises(InvalidArgumentError):
            line.send_dtmf("55")


def test_close_releases_threads_and_sockets() -> None:
    def counts() -> tuple[int, int]:
        return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))

    def cycle() -> None:
        with MediaEngine() as engine:
            lines = [engine.open_line(PCMA) for _ in range(50)]
            for line in lines[:25]:
                line.close()

    cycle()  # the first engine may load libraries for good
    gc.collect()
    before = counts()
    for _ in range(3):
        cycle()
    gc.collect()
    assert counts() == before


async def test_stun_and_dtls_reach_python_on_the_engines_socket(
    engine: MediaEngine, peer: UdpPeer
) -> None:
    """The native Telegram leg's plug-in point: ICE/DTLS in Python, media in the engine."""
    cfg = LineConfig(codec="opus", payload_type=111, forward_non_rtp=True, stats_interval_ms=0)
    line = engine.open_line(cfg, pcm_endpoint=True)
    stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)
    dtls = b"\x16\xfe\xfd" + bytes(10)
    peer.send(stun, line.local_address)
    peer.send(dtls, line.local_address)
    got = [await next_event(line.events, DatagramReceived) for _ in range(2)]
    assert [g.data for g in got] == [stun, dtls]
    assert (got[0].host, got[0].port) == peer.address
    line.send_datagram(*peer.address, b"\x01\x01\x00\x00")
    assert await peer.recv() == b"\x01\x01\x00\x00"
    assert line.stats()["forwarded_datagrams"] == 2
