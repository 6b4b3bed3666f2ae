"""Two real ntgcalls peers through :mod:`tgsip.telegram.calls.media`, DH by
:mod:`tgsip.telegram.calls.dh`, signalling pumped in-process; tones checked both ways.

Runs only inside ``scripts/netns-run`` (``make test-calls``)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.telegram.calls.audio import analyse, wait_for_frames
from tgsip.telegram.calls import dh
from tgsip.telegram.calls.call import MediaState
from tgsip.telegram.calls.media import MediaCall, TelegramMedia, protocol_info
from tgsip.telegram.calls.ports import Recorder, ScriptedPort, ToneSource

pytestmark = [pytest.mark.netns, pytest.mark.timeout(90)]

PARAMS = dh.DhParams(3, dh.TELEGRAM_P)
UID_A, UID_B = 1001, 1002
VERSIONS = protocol_info().library_versions


class Leg:
    """One peer's call: its port and the states it went through."""

    def __init__(self, port: ScriptedPort) -> None:
        self.port = port
        self.states: list[MediaState] = []
        self.connected = asyncio.Event()
        self.call: MediaCall | None = None

    def on_state(self, state: MediaState) -> None:
        self.states.append(state)
        if state == "CONNECTED":
            self.connected.set()


@pytest_asyncio.fixture
async def media_pair() -> AsyncIterator[tuple[TelegramMedia, TelegramMedia]]:
    a, b = TelegramMedia(), TelegramMedia()
    yield a, b
    await a.close()
    await b.close()


async def connect_pair(
    a: TelegramMedia,
    b: TelegramMedia,
    rate: int,
    versions: tuple[str, ...],
    freqs: tuple[int, int] = (440, 1000),
) -> tuple[Leg, Leg, float]:
    """A calls B; returns both legs and the connect time (DH done to both CONNECTED)."""
    leg_a = Leg(ScriptedPort(ToneSource(freqs[0], rate), Recorder(rate)))
    leg_b = Leg(ScriptedPort(ToneSource(freqs[1], rate), Recorder(rate)))

    async def a_to_b(data: bytes) -> None:
        assert leg_b.call is not None
        leg_b.call.signal(data)

    async def b_to_a(data: bytes) -> None:
        assert leg_a.call is not None
        leg_a.call.signal(data)

    leg_a.call = a.open(UID_B, leg_a.port, on_state=leg_a.on_state, send_signaling=a_to_b)
    leg_b.call = b.open(UID_A, leg_b.port, on_state=leg_b.on_state, send_signaling=b_to_a)
    caller = dh.CallerExchange(PARAMS, os.urandom(256))
    callee = dh.CalleeExchange(PARAMS, os.urandom(256), caller.g_a_hash)
    key_a = caller.complete(callee.g_b)
    key_b = callee.complete(caller.g_a, key_a.fingerprint)
    assert key_a.key == key_b.key
    loop = asyncio.get_running_loop()
    started = loop.time()
    for leg, key, outgoing in ((leg_a, key_a, True), (leg_b, key_b, False)):
        assert leg.call is not None
        leg.call.connect(
            key.key,
            outgoing=outgoing,
            servers=(),
            versions=versions,
            p2p_allowed=True,
            custom_parameters=None,
        )
    await asyncio.wait_for(
        asyncio.gather(leg_a.connected.wait(), leg_b.connected.wait()), timeout=15
    )
    return leg_a, leg_b, loop.time() - started


def check_tone(port: ScriptedPort, freq: int, rate: int) -> None:
    got, level = analyse(port.recorder.pcm(last_seconds=0.5), rate)
    assert got == pytest.approx(freq, abs=10), (got, level)
    assert level == pytest.approx(-12.0, abs=3.0), (got, level)


@pytest.mark.parametrize("rate", [8000, 48000])
async def test_tone_both_ways(media_pair: tuple[TelegramMedia, TelegramMedia], rate: int) -> None:
    a, b = media_pair
    leg_a, leg_b, took = await connect_pair(a, b, rate, VERSIONS)
    assert took < 5.0
    await wait_for_frames(leg_a.port.recorder, 100, 5.0)
    leg_a.port.recorder.clear()
    leg_b.port.recorder.clear()
    await wait_for_frames(leg_b.port.recorder, 60, 5.0)
    check_tone(leg_b.port, 440, rate)
    check_tone(leg_a.port, 1000, rate)
    assert leg_a.call is not None
    assert leg_b.call is not None
    assert leg_a.call.signals_out > 0
    assert leg_a.call.signals_in > 0
    assert leg_a.call.frames_sent > 100
    await leg_a.call.wait_closed()
    await leg_b.call.wait_closed()
    assert a.calls == {}
    assert b.calls == {}


@pytest.mark.parametrize("version", VERSIONS)
async def test_each_protocol_version(
    media_pair: tuple[TelegramMedia, TelegramMedia], version: str
) -> None:
    a, b = media_pair
    leg_a, leg_b, _ = await connect_pair(a, b, 16000, (version,), freqs=(600, 1400))
    await wait_for_frames(leg_b.port.recorder, 60, 5.0)
    leg_b.port.recorder.clear()
    leg_a.port.recorder.clear()
    await wait_for_frames(leg_b.port.recorder, 60, 5.0)
    check_tone(leg_b.port, 600, 16000)
    check_tone(leg_a.port, 1400, 16000)


async def test_remote_stop_reaches_the_other_side(
    media_pair: tuple[TelegramMedia, TelegramMedia],
) -> None:
    """After one side stops, the other one's audio stops; closing it is clean, and the
    pumps and ntgcalls calls are gone."""
    a, b = media_pair
    leg_a, leg_b, _ = await connect_pair(a, b, 48000, VERSIONS)
    assert leg_a.call is not None
    assert leg_b.call is not None
    await leg_a.call.wait_closed()
    assert a.calls == {}
    await leg_b.call.wait_closed()
    assert b.calls == {}
    assert leg_a.call.done.is_set()


async def test_calls_in_a_row_do_not_leak_threads() -> None:
    """Five calls one after the other on the same two instances: threads and fds return to
    (about) where the first call left them."""
    async with TelegramMedia() as a, TelegramMedia() as b:
        leg_a, leg_b, _ = await connect_pair(a, b, 8000, VERSIONS)
        assert leg_a.call is not None
        assert leg_b.call is not None
        await leg_a.call.wait_closed()
        await leg_b.call.wait_closed()
        threads, fds = len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))
        for _ in range(5):
            leg_a, leg_b, _ = await connect_pair(a, b, 8000, VERSIONS)
            assert leg_a.call is not None
            assert leg_b.call is not None
            await leg_a.call.wait_closed()
            await leg_b.call.wait_closed()
        assert len(os.listdir("/proc/self/task")) <= threads
        assert len(os.listdir("/proc/self/fd")) <= fds + 4


@pytest.mark.parametrize("rate", [8000, 48000])
async def test_cpu_per_leg(rate: int) -> None:
    """Three calls at once (six legs, one process, one ntgcalls instance per side): every leg
    gets its tone, and the process CPU per leg stays well under a core. Prints the figures
    (``make test-calls PYTEST_ARGS="-s -k cpu"``)."""
    async with TelegramMedia() as a, TelegramMedia() as b:
        pairs = []
        connect_times = []
        for i in range(3):
            leg_a = Leg(ScriptedPort(ToneSource(400 + 100 * i, rate), Recorder(rate)))
            leg_b = Leg(ScriptedPort(ToneSource(1500 + 100 * i, rate), Recorder(rate)))
            uid_a, uid_b = 2000 + i, 3000 + i
            calls: dict[str, MediaCall] = {}

            def make_sender(side: str, calls: dict[str, MediaCall] = calls) -> Any:
                async def send(data: bytes) -> None:
                    calls[side].signal(data)

                return send

            calls["b"] = b.open(
                uid_a, leg_b.port, on_state=leg_b.on_state, send_signaling=make_sender("a")
            )
            calls["a"] = a.open(
                uid_b, leg_a.port, on_state=leg_a.on_state, send_signaling=make_sender("b")
            )
            leg_a.call, leg_b.call = calls["a"], calls["b"]
            caller = dh.CallerExchange(PARAMS, os.urandom(256))
            callee = dh.CalleeExchange(PARAMS, os.urandom(256), caller.g_a_hash)
            key = caller.complete(callee.g_b)
            callee.complete(caller.g_a, key.fingerprint)
            loop = asyncio.get_running_loop()
            started = loop.time()
            for leg, outgoing in ((leg_a, True), (leg_b, False)):
                assert leg.call is not None
                leg.call.connect(
                    key.key,
                    outgoing=outgoing,
                    servers=(),
                    versions=VERSIONS,
                    p2p_allowed=True,
                    custom_parameters=None,
                )
            await asyncio.wait_for(
                asyncio.gather(leg_a.connected.wait(), leg_b.connected.wait()), timeout=15
            )
            connect_times.append(loop.time() - started)
            pairs.append((leg_a, leg_b, 400 + 100 * i, 1500 + 100 * i))
        await wait_for_frames(pairs[-1][1].port.recorder, 50, 5.0)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await wait_for_frames(pairs[-1][1].port.recorder, 300, 10.0)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        per_leg = cpu / wall / 6
        print(
            f"\n[{rate} Hz] connect {', '.join(f'{t * 1000:.0f} ms' for t in connect_times)};"
            f" CPU {cpu:.2f} s in {wall:.2f} s for 6 legs = {per_leg * 100:.1f} % of a core per"
            f" leg; ticks late {a.late_ticks}+{b.late_ticks}"
        )
        for leg_a, leg_b, fa, fb in pairs:
            check_tone(leg_b.port, fa, rate)
            check_tone(leg_a.port, fb, rate)
        assert per_leg < 0.5
