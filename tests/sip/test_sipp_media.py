"""Calls with real media against SIPp (Debian ``sip-tester``) on 127.0.0.1.

* SIPp calls our UAS and plays the PCMA pcap and the RFC 2833 DTMF pcaps shipped with SIPp
  (``play_pcap_audio`` needs root): our media line receives the audio and detects the digits.
* Our UAC calls a SIPp UAS that echoes RTP (``-rtp_echo``): our tone comes back, and so do our
  RFC 4733 digits.
* INFO DTMF and REFER/NOTIFY with SIPp scenarios of our own (``scenarios/``).
Each over UDP and TCP for the signalling.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from tests.media.helpers import level_at, tone
from tests.sip.test_sipp import free_port, run_sipp, screen_counts
from tgsip.media import EngineConfig, MediaEngine, g711
from tgsip.sip.call import CallState, Dtmf, EarlyMedia, Ended, SipCall, TransferRequested
from tgsip.sip.transaction import Peer
from tgsip.sip.ua import UserAgent

SCENARIOS = Path(__file__).parent / "scenarios"
PCAPS = Path("/usr/share/sip-tester")

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(
        shutil.which("sipp") is None, reason="sipp (Debian package sip-tester) is not installed"
    ),
]


def rms_dbfs(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if len(x) == 0:
        return -math.inf
    return 20 * math.log10(max(float(np.sqrt(np.mean(x * x))), 1e-9) / 32767)


async def start_ua(transport: str, engine: MediaEngine, **kw: object) -> tuple[UserAgent, int]:
    ua = UserAgent("127.0.0.1", media=engine, **kw)  # type: ignore[arg-type]
    if transport == "udp":
        await ua.start(udp_port=0)
        return ua, ua.ports["UDP"]
    await ua.start(udp_port=None, tcp_port=0)
    return ua, ua.ports["TCP"]


async def pull_until_ended(call: SipCall, limit: float) -> tuple[bytes, list[Dtmf]]:
    """Pull the call's audio every 10 ms and collect its digits until it ends."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    audio: list[bytes] = []
    digits: list[Dtmf] = []
    i = 0
    while not call.ended.is_set():
        if loop.time() - t0 > limit:
            raise AssertionError("the call did not end in time")
        audio.append(call.pull_pcm())
        while not call.events.empty():
            ev = call.events.get_nowait()
            if isinstance(ev, Dtmf):
                digits.append(ev)
        i += 1
        delay = t0 + i * 0.010 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    while not call.events.empty():
        ev = call.events.get_nowait()
        if isinstance(ev, Dtmf):
            digits.append(ev)
    return b"".join(audio), digits


@pytest.mark.skipif(os.geteuid() != 0, reason="SIPp's play_pcap_audio needs root")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_pcap_caller_to_our_uas(tmp_path: Path, transport: str) -> None:
    """SIPp plays g711a.pcap then dtmf_2833_{1,5,pound}.pcap into our answered call."""
    if not (PCAPS / "g711a.pcap").exists():
        pytest.skip("SIPp's pcaps are not in /usr/share/sip-tester")

    async def main() -> tuple[int, bytes, list[Dtmf], dict[str, float | None], Ended | None]:
        engine = MediaEngine(EngineConfig(workers=1, port_min=46000, port_max=46999))
        ua, port = await start_ua(transport, engine)
        calls: asyncio.Queue[SipCall] = asyncio.Queue()

        def on_call(call: SipCall) -> None:
            call.ring()
            call.answer()
            calls.put_nowait(call)

        ua.on_call = on_call
        args = ["-sf", str(SCENARIOS / "uac_pcap.xml"), f"127.0.0.1:{port}", "-s", "gw"]
        args += ["-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_STREAM)), "-mi", "127.0.0.1"]
        args += ["-mp", str(free_port()), "-m", "1", "-nostdin", "-timeout", "20s"]
        args += ["-timeout_error", "-trace_screen", "-trace_err"]
        if transport == "tcp":
            args += ["-t", "t1"]
        sipp = asyncio.ensure_future(run_sipp(args, tmp_path, 25))
        try:
            call = await asyncio.wait_for(calls.get(), 10)
            line = call.line
            assert line is not None
            audio, digits = await pull_until_ended(call, 20)
            stats = call.media_stats
            rc = await sipp
        finally:
            await ua.close()
            engine.close()
        return rc, audio, digits, stats, call.end_event

    rc, audio, digits, stats, ended = asyncio.run(main())
    print("sipp pcap", transport, stats["packets_received"], rms_dbfs(audio), digits)  # -s
    assert rc == 0
    assert screen_counts(tmp_path) == (1, 0)
    # g711a.pcap holds 236 PCMA packets (7.05 s); the digits add 3 x ~10 telephone-events
    assert (stats["packets_received"] or 0) >= 230, str(sorted(stats.items()))
    assert (stats["unknown_payload_type"] or 0) == 0
    assert rms_dbfs(audio) > -40, [
        rms_dbfs(audio[i : i + 16000]) for i in range(0, len(audio), 16000)
    ]
    assert [(d.digit, d.method) for d in digits] == [
        ("1", "rfc2833"),
        ("5", "rfc2833"),
        ("#", "rfc2833"),
    ]
    assert ended is not None
    assert ended.by_peer
    assert ended.code == 200


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_our_uac_to_sipp_echo(tmp_path: Path, transport: str) -> None:
    """Our caller sends a 1 kHz tone and digits 7, 3 to a SIPp callee echoing RTP."""
    sipp_port = free_port(socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)

    async def main() -> tuple[int, float, float, list[str], int]:
        engine = MediaEngine(EngineConfig(workers=1, port_min=46000, port_max=46999))
        ua, _ = await start_ua(transport, engine, codecs=("alaw",))
        args = ["-sf", str(SCENARIOS / "uas_pcma.xml"), "-i", "127.0.0.1", "-p", str(sipp_port)]
        args += ["-mi", "127.0.0.1", "-mp", str(free_port()), "-rtp_echo", "-m", "1"]
        args += ["-nostdin", "-timeout", "15s", "-trace_screen", "-trace_err"]
        if transport == "tcp":
            args += ["-t", "t1"]
        sipp = asyncio.ensure_future(run_sipp(args, tmp_path, 20))
        peer = Peer(transport.upper(), "127.0.0.1", sipp_port)
        try:
            call: SipCall | None = None
            for _ in range(30):  # SIPp needs a moment to bind: bounded retries
                try:
                    call = await ua.invite(f"sip:service@127.0.0.1:{sipp_port}", peer)
                    if await call.wait_answer(3):
                        break
                except (OSError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
            assert call is not None
            assert call.final is not None
            assert call.final.status == 200
            pcm = tone([1000.0], 1500)
            got: list[bytes] = []
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for i in range(150):
                call.push_pcm(pcm[i * 160 : (i + 1) * 160])
                got.append(call.pull_pcm())
                delay = t0 + (i + 1) * 0.010 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            back = b"".join(got)[len(got) * 160 // 2 :]  # the second half
            digits: list[str] = []
            for d in "73":
                await call.send_dtmf(d, 120)
                async with asyncio.timeout(3):
                    while True:
                        ev = await call.events.get()
                        if isinstance(ev, Dtmf):
                            digits.append(ev.digit)
                            break
                await asyncio.sleep(0.1)
            assert call.line is not None
            received = int(call.line.stats()["packets_received"] or 0)
            bye = await ua.bye(call)
            assert bye.status == 200
            rc = await sipp
        finally:
            await ua.close()
            engine.close()
        return rc, level_at(back, 1000.0), level_at(back, 1500.0), digits, received

    rc, at_1k, at_other, digits, received = asyncio.run(main())
    print("sipp echo", transport, at_1k, at_other, digits, received)  # shown with -s
    assert rc == 0
    assert screen_counts(tmp_path) == (1, 0)
    assert at_1k > -16, at_1k  # sent at -10 dBFS, echoed through PCMA twice
    assert at_other < -40
    assert digits == ["7", "3"]
    assert received >= 70


INFO_XML = "uac_info_dtmf.xml"
REFER_XML = "uas_refer.xml"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_info_dtmf_to_our_uas(tmp_path: Path, transport: str) -> None:
    """SIPp sends INFO digits (dtmf-relay and dtmf, one malformed and one of another type)."""

    async def main() -> tuple[int, list[Dtmf]]:
        engine = MediaEngine(EngineConfig(workers=1, port_min=46000, port_max=46999))
        ua, port = await start_ua(transport, engine, dtmf_methods=("info", "rfc2833"))
        calls: asyncio.Queue[SipCall] = asyncio.Queue()

        def on_call(call: SipCall) -> None:
            call.answer()
            calls.put_nowait(call)

        ua.on_call = on_call
        args = ["-sf", str(SCENARIOS / INFO_XML), f"127.0.0.1:{port}", "-s", "gw"]
        args += ["-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_STREAM)), "-mi", "127.0.0.1"]
        args += ["-mp", str(free_port()), "-m", "1", "-nostdin", "-timeout", "15s"]
        args += ["-timeout_error", "-trace_screen", "-trace_err"]
        if transport == "tcp":
            args += ["-t", "t1"]
        sipp = asyncio.ensure_future(run_sipp(args, tmp_path, 20))
        try:
            call = await asyncio.wait_for(calls.get(), 10)
            _, digits = await pull_until_ended(call, 15)
            rc = await sipp
        finally:
            await ua.close()
            engine.close()
        return rc, digits

    rc, digits = asyncio.run(main())
    assert rc == 0
    assert screen_counts(tmp_path) == (1, 0)
    assert [(d.digit, d.method, d.duration_ms) for d in digits] == [
        ("4", "info", 250),
        ("#", "info", 160),
        ("*", "info", 160),
    ]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_refer_from_sipp_and_notify(tmp_path: Path, transport: str) -> None:
    """Our caller is transferred by a SIPp callee (REFER), and reports progress in NOTIFYs."""
    sipp_port = free_port(socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)

    async def main() -> tuple[int, TransferRequested | None, Ended | None]:
        engine = MediaEngine(EngineConfig(workers=1, port_min=46000, port_max=46999))
        ua, _ = await start_ua(transport, engine, codecs=("alaw",))
        args = ["-sf", str(SCENARIOS / REFER_XML), "-i", "127.0.0.1", "-p", str(sipp_port)]
        args += ["-mi", "127.0.0.1", "-mp", str(free_port()), "-m", "1"]
        args += ["-nostdin", "-timeout", "15s", "-trace_screen", "-trace_err"]
        if transport == "tcp":
            args += ["-t", "t1"]
        sipp = asyncio.ensure_future(run_sipp(args, tmp_path, 20))
        peer = Peer(transport.upper(), "127.0.0.1", sipp_port)
        transfer: TransferRequested | None = None
        try:
            call: SipCall | None = None
            for _ in range(30):
                try:
                    call = await ua.invite(f"sip:service@127.0.0.1:{sipp_port}", peer)
                    if await call.wait_answer(3):
                        break
                except (OSError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
            assert call is not None
            assert call.final is not None
            assert call.final.status == 200
            async with asyncio.timeout(8):
                while transfer is None:
                    ev = await call.events.get()
                    if isinstance(ev, TransferRequested):
                        transfer = ev
            assert (await call.transfer_progress(180, "Ringing")).status == 200
            assert (await call.transfer_progress(200, "OK")).status == 200
            async with asyncio.timeout(8):
                await call.ended.wait()
            rc = await sipp
        finally:
            await ua.close()
            engine.close()
        return rc, transfer, call.end_event

    rc, transfer, ended = asyncio.run(main())
    assert rc == 0
    assert screen_counts(tmp_path) == (1, 0)
    assert transfer is not None
    assert transfer.target == "sip:bob@127.0.0.1:5099"
    assert transfer.referred_by is not None
    assert "sipp" in transfer.referred_by
    assert ended is not None
    assert ended.by_peer


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_builtin_uac_with_rtp_echo(tmp_path: Path, transport: str) -> None:
    """SIPp's built-in uac (PCMU offer) calls our media-enabled UAS 10 times with -rtp_echo:
    every call gets its own media line, our RTP comes back, and every line is closed."""
    calls = 10

    async def main() -> tuple[int, list[SipCall], MediaEngine]:
        engine = MediaEngine(EngineConfig(workers=1, port_min=46000, port_max=46999))
        ua, port = await start_ua(transport, engine, codecs=("alaw", "mulaw"))
        answered: list[SipCall] = []

        def on_call(call: SipCall) -> None:
            call.answer()
            answered.append(call)

        ua.on_call = on_call
        args = ["-sn", "uac", f"127.0.0.1:{port}", "-i", "127.0.0.1"]
        args += ["-p", str(free_port(socket.SOCK_STREAM)), "-mi", "127.0.0.1"]
        args += ["-mp", str(free_port()), "-rtp_echo", "-m", str(calls), "-r", "5"]
        args += ["-d", "1000", "-nostdin", "-timeout", "20s", "-timeout_error", "-trace_screen"]
        if transport == "tcp":
            args += ["-t", "t1"]
        try:
            rc = await run_sipp(args, tmp_path, 25)
        finally:
            await ua.close()
        return rc, answered, engine

    rc, answered, engine = asyncio.run(main())
    try:
        assert rc == 0
        assert screen_counts(tmp_path) == (calls, 0)
        assert len(answered) == calls
        for call in answered:
            assert call.negotiated is not None
            assert call.negotiated.codec == "PCMU"
            assert call.end_event is not None
            assert call.end_event.by_peer
            assert call.line is None
            # 1 s calls at 20 ms: ~50 packets out, echoed back
            assert (call.media_stats["packets_received"] or 0) >= 30, call.media_stats
        assert engine.worker_loads()[0]["lines"] == 0
    finally:
        engine.close()


async def udp_port_taken(port: int, limit: float = 5.0) -> None:
    """Wait (bounded) until someone listens on UDP ``port`` of 127.0.0.1 (SIPp started)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on UDP {port}")


def test_early_media_from_sipp(tmp_path: Path) -> None:
    """SIPp answers 183 with SDP and streams an A-law tone before its 200: our caller gets
    EarlyMedia and hears the tone before the answer."""
    sipp_port = free_port()
    tone_file = tmp_path / "tone.alaw"
    tone_file.write_bytes(g711.encode("alaw", tone([600.0], 1500)))

    async def main() -> tuple[int, list[str], float, float]:
        engine = MediaEngine(EngineConfig(workers=1, port_min=46000, port_max=46999))
        ua, _ = await start_ua("udp", engine, codecs=("alaw",))
        # rtp_stream takes no keywords: the scenario gets the tone file's path written in
        scenario = tmp_path / "uas_early_media.xml"
        text = (SCENARIOS / "uas_early_media.xml").read_text()
        scenario.write_text(text.replace("TONE_FILE", str(tone_file)))
        args = ["-sf", str(scenario), "-i", "127.0.0.1"]
        args += ["-p", str(sipp_port), "-mi", "127.0.0.1"]
        args += ["-m", "1", "-nostdin", "-timeout", "15s", "-trace_screen", "-trace_err"]
        sipp = asyncio.ensure_future(run_sipp(args, tmp_path, 20))
        peer = Peer("UDP", "127.0.0.1", sipp_port)
        kinds: list[str] = []
        try:
            await udp_port_taken(sipp_port)
            call = await ua.invite(f"sip:service@127.0.0.1:{sipp_port}", peer)
            async with asyncio.timeout(5):
                while not isinstance(ev := await call.events.get(), EarlyMedia):
                    kinds.append(type(ev).__name__)
            assert call is not None
            kinds.append("EarlyMedia")
            assert call.state is CallState.EARLY
            early = []
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for i in range(100):  # 1 s of early media, before the 200
                early.append(call.pull_pcm())
                delay = t0 + (i + 1) * 0.010 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            before_answer = call.state is CallState.EARLY
            assert await call.wait_answer(5)
            kinds.append("Answered")
            audio = b"".join(early)[len(early) * 80 :]
            await ua.bye(call)
            rc = await sipp
        finally:
            await ua.close()
            engine.close()
        assert before_answer
        return rc, kinds, level_at(audio, 600.0), level_at(audio, 1000.0)

    rc, kinds, at_tone, off = asyncio.run(main())
    print("sipp early media", kinds, at_tone, off)  # shown with -s
    assert rc == 0
    assert screen_counts(tmp_path) == (1, 0)
    assert kinds[-2:] == ["EarlyMedia", "Answered"]
    assert at_tone > -16
    assert off < at_tone - 25
