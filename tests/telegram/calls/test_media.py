"""The ntgcalls media leg without a network path: call lifecycle, ordering, refusals."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from tgsip.telegram.calls import dh
from tgsip.telegram.calls.call import MediaState
from tgsip.telegram.calls.media import MediaError, TelegramMedia, protocol_info
from tgsip.telegram.calls.ports import Recorder, ScriptedPort, ToneSource

pytestmark = pytest.mark.timeout(60)


class BadRatePort:
    sample_rate = 44100

    def read_frame(self) -> bytes:
        return bytes(882)

    def write_frame(self, data: bytes) -> None:
        pass


async def _never(data: bytes) -> None:
    raise AssertionError("no signalling expected")


def test_protocol_info_lists_the_supported_versions() -> None:
    info = protocol_info()
    assert (info.min_layer, info.max_layer) == (92, 92)
    assert info.udp_p2p
    assert info.udp_reflector
    assert "13.0.0" in info.library_versions


async def test_open_and_close_without_connecting() -> None:
    async with TelegramMedia() as media:
        states: list[MediaState] = []
        port = ScriptedPort(ToneSource(440, 48000), Recorder(48000))
        a = media.open(1001, port, on_state=states.append, send_signaling=_never)
        b = media.open(1001, port, on_state=states.append, send_signaling=_never)
        assert a.key != b.key  # two calls with the same user are fine
        assert set(media.calls) == {a.key, b.key}
        a.signal(b"early")  # accepted before connect (ntgcalls buffers it)
        await a.wait_closed()
        await b.wait_closed()
        a.close()  # idempotent
        assert media.calls == {}
        assert a.error is None
        assert states == []
        assert port.sent == 0  # never connected: no frames were pulled


async def test_refuses_unsupported_rate_and_closed_leg() -> None:
    media = TelegramMedia()
    with pytest.raises(MediaError, match="44100"):
        media.open(1, BadRatePort(), on_state=lambda s: None, send_signaling=_never)
    await media.close()
    port = ScriptedPort(ToneSource(440, 8000))
    with pytest.raises(MediaError, match="closed"):
        media.open(1, port, on_state=lambda s: None, send_signaling=_never)


async def test_unsupported_version_fails_the_call() -> None:
    """connect with only a version ntgcalls lacks: the call reports FAILED with the reason."""
    async with TelegramMedia() as media:
        failed = asyncio.Event()
        states: list[MediaState] = []

        def on_state(state: MediaState) -> None:
            states.append(state)
            failed.set()

        call = media.open(
            5, ScriptedPort(ToneSource(440, 8000)), on_state=on_state, send_signaling=_never
        )
        caller = dh.CallerExchange(dh.DhParams(3, dh.TELEGRAM_P), os.urandom(256))
        callee = dh.CalleeExchange(dh.DhParams(3, dh.TELEGRAM_P), os.urandom(256), caller.g_a_hash)
        key = caller.complete(callee.g_b)
        call.connect(
            key.key,
            outgoing=True,
            servers=(),
            versions=("11.0.0",),
            p2p_allowed=True,
            custom_parameters=None,
        )
        await asyncio.wait_for(failed.wait(), 10)
        assert states == ["FAILED"]
        assert call.error is not None
        assert "connect" in call.error
        await call.wait_closed()
        assert media.calls == {}


async def test_lane_pipelines_frames_and_runs_control_operations_alone() -> None:
    """Frames (shared operations) start in order without waiting for each other; a control
    operation waits for the frames in flight, and nothing starts while it runs. The operations
    are stand-ins returning futures the test resolves: what is checked is the lane's order."""
    loop = asyncio.get_running_loop()
    started: list[str] = []
    gates: dict[str, asyncio.Future[str]] = {}

    def op(name: str) -> Callable[[], asyncio.Future[str]]:
        def run() -> asyncio.Future[str]:
            started.append(name)
            gates[name] = loop.create_future()
            return gates[name]

        return run

    def broken() -> asyncio.Future[str]:
        raise RuntimeError("no such call")

    async def settle() -> None:
        for _ in range(20):  # a bounded number of loop turns, no clock involved
            await asyncio.sleep(0)

    async with TelegramMedia() as media:
        f1 = media.submit(op("f1"), shared=True)
        f2 = media.submit(op("f2"), shared=True)
        bad = media.submit(broken, shared=True)
        control = media.submit(op("control"))
        f3 = media.submit(op("f3"), shared=True)
        await settle()
        assert started == ["f1", "f2"]
        with pytest.raises(RuntimeError, match="no such call"):
            await bad
        gates["f2"].set_result("two")
        await settle()
        assert await f2 == "two"
        assert started == ["f1", "f2"]  # f1 still in flight: the control operation waits
        gates["f1"].set_exception(ValueError("frame refused"))
        await settle()
        with pytest.raises(ValueError, match="frame refused"):
            await f1
        assert started == ["f1", "f2", "control"]
        gates["control"].set_result("done")
        await settle()
        assert await control == "done"
        assert started == ["f1", "f2", "control", "f3"]
        gates["f3"].set_result("three")
        assert await f3 == "three"
