"""Calls with media against baresip (Debian ``baresip``) on 127.0.0.1, driven over ``ctrl_tcp``.

For each of PCMA, PCMU and Opus: baresip plays a WAV tone (``aufile``) and calls our UAS, we
measure the tone at our media line and detect the RFC 2833 digits baresip sends (``sndcode``);
then our UAC calls baresip (auto answer) and measures the tone again. With PCMA, hold/resume
and a re-INVITE codec change (PCMA -> PCMU) run against baresip as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import socket
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.media.helpers import level_at
from tests.sip.test_sipp import free_port, free_sip_port
from tgsip.media import EngineConfig, MediaEngine
from tgsip.sip.call import Dtmf, Ended, Ringing, SipCall
from tgsip.sip.offer import MediaPolicy
from tgsip.sip.transaction import Peer
from tgsip.sip.ua import UserAgent

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip is not installed"),
]

MODULES = Path("/usr/lib/baresip/modules")
TONE = 440.0
SDP_NAMES = {"PCMA": "PCMA", "PCMU": "PCMU", "opus": "opus/48000/2"}
LINE_NAMES = {"PCMA": "alaw", "PCMU": "mulaw", "opus": "opus"}


def write_tone(path: Path, rate: int, channels: int, seconds: float = 12.0) -> None:
    n = int(rate * seconds)
    t = np.arange(n) / rate
    mono = (32767 * 10 ** (-10 / 20) * np.sin(2 * math.pi * TONE * t)).astype("<i2")
    data = np.repeat(mono, channels) if channels > 1 else mono
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())


class Baresip:
    """One baresip process with its own config directory and ctrl_tcp connection."""

    def __init__(
        self, directory: Path, codec: str, codecs_account: str, answermode: str = "auto"
    ) -> None:
        self.dir = directory
        self.sip_port = free_sip_port()
        self.ctrl_port = free_port(socket.SOCK_STREAM)
        rate, ch = (48000, 2) if codec == "opus" else (8000, 1)
        wav = directory / "tone.wav"
        write_tone(wav, rate, ch)
        rtp = free_port() // 2 * 2
        lines = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "sip_trans_def udp",
            "call_local_timeout 120",
            "call_max_calls 4",
            "audio_player aubridge,nil",
            f"audio_source aufile,{wav}",
            f"audio_alert aufile,{wav}",
            f"rtp_ports {rtp}-{rtp + 40}",
            "rtp_timeout 0",
            "net_interface 127.0.0.1",
            f"module_path {MODULES}",
            "module g711.so",
            "module opus.so",
            "module aufile.so",
            "module aubridge.so",
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
        ]
        (directory / "config").write_text("\n".join(lines) + "\n")
        (directory / "accounts").write_text(
            f"<sip:alice@127.0.0.1>;regint=0;answermode={answermode};"
            f"audio_codecs={codecs_account}\n"
        )
        (directory / "contacts").write_text("")
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._responses: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._token = 0

    async def start(self) -> None:
        with (self.dir / "out.log").open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                "baresip",
                "-f",
                str(self.dir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        for _ in range(100):  # baresip needs a moment to listen: bounded retries
            try:
                self.reader, self.writer = await asyncio.open_connection(
                    "127.0.0.1", self.ctrl_port
                )
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("baresip's ctrl_tcp did not come up: " + self.log())
        self._task = asyncio.ensure_future(self._read())

    def log(self) -> str:
        p = self.dir / "out.log"
        return p.read_text(errors="replace")[-3000:] if p.exists() else ""

    async def _read(self) -> None:
        assert self.reader is not None
        while True:
            length = await self.reader.readuntil(b":")
            data = await self.reader.readexactly(int(length[:-1]))
            await self.reader.readexactly(1)  # the trailing ","
            msg = json.loads(data)
            if msg.get("event"):
                self.events.put_nowait(msg)
            elif msg.get("response"):
                self._responses.put_nowait(msg)

    async def command(self, command: str, params: str = "") -> dict[str, Any]:
        assert self.writer is not None
        self._token += 1
        body = json.dumps({"command": command, "params": params, "token": str(self._token)})
        self.writer.write(f"{len(body)}:{body},".encode())
        await self.writer.drain()
        async with asyncio.timeout(5):
            return await self._responses.get()

    async def wait_event(self, kind: str, timeout: float = 8.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                ev = await self.events.get()
                if ev.get("type") == kind:
                    return ev

    async def stop(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                await self.command("quit")
            self.writer.close()
        if self._task is not None:
            self._task.cancel()
        if self.proc is not None:
            try:
                async with asyncio.timeout(3):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@contextlib.asynccontextmanager
async def running(
    directory: Path, codec: str, account: str, answermode: str = "auto"
) -> AsyncIterator[Baresip]:
    b = Baresip(directory, codec, account, answermode)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


async def listen(call: SipCall, ms: int) -> tuple[bytes, list[Dtmf]]:
    """Pull ``ms`` of the call's audio at the 10 ms pace; collect digits meanwhile."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    out: list[bytes] = []
    digits: list[Dtmf] = []
    for i in range(ms // 10):
        out.append(call.pull_pcm())
        while not call.events.empty():
            ev = call.events.get_nowait()
            if isinstance(ev, Dtmf):
                digits.append(ev)
        delay = t0 + (i + 1) * 0.010 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return b"".join(out), digits


async def wait_digits(call: SipCall, n: int, timeout: float = 5.0) -> list[Dtmf]:
    got: list[Dtmf] = []
    async with asyncio.timeout(timeout):
        while len(got) < n:
            ev = await call.events.get()
            if isinstance(ev, Dtmf):
                got.append(ev)
    return got


@pytest.mark.parametrize("codec", ["PCMA", "PCMU", "opus"])
def test_baresip_calls_us_and_we_call_baresip(tmp_path: Path, codec: str) -> None:
    results: dict[str, Any] = {}

    async def main() -> None:
        engine = MediaEngine(EngineConfig(workers=1, port_min=47000, port_max=47999))
        ua = UserAgent("127.0.0.1", media=engine, codecs=(LINE_NAMES[codec],))
        incoming: asyncio.Queue[SipCall] = asyncio.Queue()

        def on_call(call: SipCall) -> None:
            call.ring()
            call.answer()
            incoming.put_nowait(call)

        ua.on_call = on_call
        await ua.start(udp_port=0)
        try:
            async with running(tmp_path, codec, SDP_NAMES[codec]) as bs:
                # 1. baresip calls our UAS
                await bs.command("dial", f"sip:gw@127.0.0.1:{ua.ports['UDP']}")
                call = await asyncio.wait_for(incoming.get(), 8)
                await bs.wait_event("CALL_ESTABLISHED")
                assert call.negotiated is not None
                results["in_codec"] = call.negotiated.codec
                audio, _ = await listen(call, 1500)
                results["in_level"] = level_at(audio[len(audio) // 2 :], TONE)
                results["in_off"] = level_at(audio[len(audio) // 2 :], 1000.0)
                await bs.command("sndcode", "4")
                d1 = await wait_digits(call, 1)
                await bs.command("sndcode", "#")
                d2 = await wait_digits(call, 1)
                results["in_digits"] = [(d.digit, d.method) for d in d1 + d2]
                await bs.command("hangup")
                async with asyncio.timeout(5):
                    await call.ended.wait()
                assert isinstance(call.end_event, Ended)
                results["in_end"] = (call.end_event.code, call.end_event.by_peer)
                results["in_stats"] = call.media_stats
                # 2. our UAC calls baresip (auto answer)
                peer = Peer("UDP", "127.0.0.1", bs.sip_port)
                out = await ua.invite(f"sip:alice@127.0.0.1:{bs.sip_port}", peer)
                assert await out.wait_answer(8)
                assert out.negotiated is not None
                results["out_codec"] = out.negotiated.codec
                audio, _ = await listen(out, 1500)
                results["out_level"] = level_at(audio[len(audio) // 2 :], TONE)
                await bs.command("sndcode", "9")
                results["out_digits"] = [(d.digit, d.method) for d in await wait_digits(out, 1)]
                # and our RFC 4733 digits reach baresip
                for d in "6*":
                    await out.send_dtmf(d, 120)
                    ev = await bs.wait_event("CALL_DTMF_START")
                    results.setdefault("bs_digits", []).append(ev.get("param"))
                bye = await ua.bye(out)
                results["bye"] = bye.status
        finally:
            await ua.close()
            engine.close()

    asyncio.run(main())
    print("baresip", codec, {k: v for k, v in results.items() if k != "in_stats"})  # with -s
    assert results["in_codec"] == results["out_codec"] == codec
    assert results["in_level"] > -20, results  # baresip plays the tone at -10 dBFS
    assert results["in_off"] < results["in_level"] - 25
    assert results["out_level"] > -20, results
    assert results["in_digits"] == [("4", "rfc2833"), ("#", "rfc2833")]
    assert results["out_digits"] == [("9", "rfc2833")]
    assert results["bs_digits"] == ["6", "*"]
    assert results["in_end"] == (200, True)
    assert (results["in_stats"]["packets_received"] or 0) >= 80
    assert results["bye"] == 200


def test_hold_resume_and_codec_change_with_baresip(tmp_path: Path) -> None:
    results: dict[str, Any] = {}

    async def main() -> None:
        engine = MediaEngine(EngineConfig(workers=1, port_min=47000, port_max=47999))
        ua = UserAgent("127.0.0.1", media=engine)
        await ua.start(udp_port=0)
        try:
            async with running(tmp_path, "PCMA", "PCMA,PCMU") as bs:
                peer = Peer("UDP", "127.0.0.1", bs.sip_port)
                pol = MediaPolicy.of(("alaw", "mulaw"), ("rfc2833",))
                call = await ua.invite(f"sip:alice@127.0.0.1:{bs.sip_port}", peer, policy=pol)
                assert await call.wait_answer(8)
                assert call.negotiated is not None
                results["codec0"] = call.negotiated.codec
                held = await call.hold()
                results["hold"] = (held.status, call.negotiated.direction)
                assert call.line is not None
                before = call.line.stats()["packets_received"] or 0
                audio, _ = await listen(call, 600)
                # baresip keeps sending to a sendonly peer? it must not: recvonly answer
                results["held_rx"] = (call.line.stats()["packets_received"] or 0) - before
                resumed = await call.resume()
                results["resume"] = (resumed.status, call.negotiated.direction)
                audio, _ = await listen(call, 1200)
                results["resumed_level"] = level_at(audio[len(audio) // 2 :], TONE)
                changed = await call.change_codecs(("mulaw",))
                results["change"] = (changed.status, call.negotiated.codec)
                assert call.line is not None
                results["line_codec"] = call.line.config.codec
                audio, _ = await listen(call, 1200)
                results["changed_level"] = level_at(audio[len(audio) // 2 :], TONE)
                results["bye"] = (await ua.bye(call)).status
        finally:
            await ua.close()
            engine.close()

    asyncio.run(main())
    print("baresip hold/codec change", results)  # shown with -s
    assert results["codec0"] == "PCMA"
    assert results["hold"] == (200, "sendonly")
    assert results["held_rx"] <= 5, results  # a held peer stops sending (a few in flight)
    assert results["resume"] == (200, "sendrecv")
    assert results["resumed_level"] > -20, results
    assert results["change"] == (200, "PCMU")
    assert results["line_codec"] == "PCMU"
    assert results["changed_level"] > -20, results
    assert results["bye"] == 200


def test_cancel_and_decline_against_baresip(tmp_path: Path) -> None:
    """baresip rings (manual answer): our CANCEL ends the INVITE with 487; then baresip calls
    us and we decline with 486."""
    results: dict[str, Any] = {}

    async def main() -> None:
        engine = MediaEngine(EngineConfig(workers=1, port_min=47000, port_max=47999))
        ua = UserAgent("127.0.0.1", media=engine, codecs=("alaw",))
        incoming: asyncio.Queue[SipCall] = asyncio.Queue()
        ua.on_call = incoming.put_nowait
        await ua.start(udp_port=0)
        try:
            async with running(tmp_path, "PCMA", "PCMA", answermode="manual") as bs:
                peer = Peer("UDP", "127.0.0.1", bs.sip_port)
                call = await ua.invite(f"sip:alice@127.0.0.1:{bs.sip_port}", peer)
                await bs.wait_event("CALL_INCOMING")
                async with asyncio.timeout(5):
                    while not isinstance(await call.events.get(), Ringing):
                        pass
                await call.cancel()
                async with asyncio.timeout(5):
                    await call.ended.wait()
                assert call.end_event is not None
                results["cancel"] = (call.end_event.code, call.line)
                await bs.wait_event("CALL_CLOSED")
                await bs.command("dial", f"sip:gw@127.0.0.1:{ua.ports['UDP']}")
                inc = await asyncio.wait_for(incoming.get(), 8)
                inc.ring()
                inc.reject(486, "Busy Here")
                closed = await bs.wait_event("CALL_CLOSED")
                results["declined"] = closed.get("param", "")
                results["pending"] = dict(ua.pending)
        finally:
            await ua.close()
            engine.close()

    asyncio.run(main())
    print("baresip cancel/decline", results)  # shown with -s
    assert results["cancel"] == (487, None)
    assert "486" in results["declined"]
    assert results["pending"] == {}
