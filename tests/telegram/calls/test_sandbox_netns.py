"""End to end against the sandbox: a gateway-side :class:`CallService` on a real Telethon client
and a scripted sandbox user (:class:`~tgsip.sandbox.peer.CallPeer`, its own Telethon client and
CallService), real ntgcalls media both ways, P2P and relay-only through the sandbox reflector,
for every tgcalls version ntgcalls supports.

Runs only inside ``scripts/netns-run`` (``make test-calls``)."""

from __future__ import annotations

import asyncio
import os
import wave
from pathlib import Path

import pytest

from tests.media.helpers import paced
from tests.sandbox.conftest import ClientFactory
from tests.telegram.calls.audio import analyse, wait_for_frames
from tests.telegram.calls.world import PEER_PHONE, World, make_world, port
from tgsip.media import EngineConfig, LineConfig, MediaEngine
from tgsip.sandbox import Sandbox
from tgsip.sandbox.calls import CallState, DiscardReason
from tgsip.sandbox.peer import CallPeer, tone, wav
from tgsip.telegram.calls.call import EndReason
from tgsip.telegram.calls.media import protocol_info
from tgsip.telegram.calls.ports import LinePort, Recorder, ScriptedPort, ToneSource
from tgsip.telegram.calls.service import CallHandle

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

VERSIONS = protocol_info().library_versions
T = 15.0


def assert_tone(recorder: Recorder, freq: int) -> None:
    got, level = analyse(recorder.pcm(last_seconds=0.5), recorder.sample_rate)
    assert got == pytest.approx(freq, abs=10), (got, level)
    assert level == pytest.approx(-12.0, abs=3.0), (got, level)


async def check_audio(gw_port: ScriptedPort, peer_rec: Recorder) -> None:
    """440 Hz gateway -> peer and 1000 Hz peer -> gateway, measured on the last 0.5 s."""
    await wait_for_frames(peer_rec, 40, 5)
    gw_port.recorder.clear()
    peer_rec.clear()
    await wait_for_frames(peer_rec, 60, 5)
    await wait_for_frames(gw_port.recorder, 60, 5)
    assert_tone(peer_rec, 440)
    assert_tone(gw_port.recorder, 1000)


async def gateway_calls_peer(w: World, target: int | str, rate: int) -> tuple[CallHandle, ...]:
    gw_port = port(rate)
    handle = await asyncio.wait_for(w.gateway.call(target, gw_port), T)
    await asyncio.wait_for(handle.ringing.wait(), T)
    await asyncio.wait_for(handle.connected.wait(), T)
    theirs = await asyncio.wait_for(w.peer.incoming.get(), T)
    await asyncio.wait_for(theirs.connected.wait(), T)
    return handle, theirs


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("relay", [False, True], ids=["p2p", "relay"])
async def test_gateway_calls_user_audio_both_ways(
    sandbox: Sandbox, make_client: ClientFactory, relay: bool, version: str
) -> None:
    if relay:
        await sandbox.start_reflector()
        sandbox.force_relay = True
    w = await make_world(sandbox, make_client, versions=(version,))
    try:
        gw_port = port(48000)
        handle = await asyncio.wait_for(w.gateway.call("@bob", gw_port), T)
        await asyncio.wait_for(handle.ringing.wait(), T)
        await asyncio.wait_for(handle.connected.wait(), T)
        theirs = await asyncio.wait_for(w.peer.incoming.get(), T)
        await asyncio.wait_for(theirs.connected.wait(), T)
        assert handle.answered.is_set()
        assert handle.connect_seconds is not None
        print(
            f"\n[{'relay' if relay else 'p2p'} {version}] requestCall to media CONNECTED:"
            f" {handle.connect_seconds * 1000:.0f} ms"
        )
        assert handle.call.versions == (version,)
        assert handle.emojis == theirs.emojis
        await check_audio(gw_port, w.peer.recorder(theirs))
        if relay:
            assert sandbox.reflector is not None
            assert sandbox.reflector.core.stats.forwarded > 50
        call_id = handle.call.call_id
        assert call_id is not None
        server = sandbox.call(call_id)
        assert server is not None
        assert server.p2p_allowed is (not relay)
        handle.hangup()
        mine = await handle.wait_ended(T)
        end = await theirs.wait_ended(T)
        assert mine.reason is EndReason.HANGUP
        assert not mine.by_remote
        assert end.reason is EndReason.HANGUP
        assert end.by_remote
        done = await sandbox.wait_call(call_id, (CallState.DISCARDED,), T)
        assert done.reason is DiscardReason.HANGUP
        # Telegram asked both sides for a rating after a call that started; both gave 5.
        await handle.drain()
        await theirs.drain()
        rated = sandbox.call(call_id)
        assert rated is not None
        assert rated.admin_rating == 5
        assert rated.participant_rating == 5
    finally:
        await w.close()


async def test_user_calls_gateway_at_8k_and_hangs_up(world: World) -> None:
    handle = await asyncio.wait_for(world.peer.call("@gateway"), T)
    incoming = await asyncio.wait_for(world.incoming.get(), T)
    assert not incoming.outgoing
    assert incoming.peer_id == world.peer.id
    gw_port = port(8000)
    await incoming.accept(gw_port)
    await asyncio.wait_for(incoming.connected.wait(), T)
    await asyncio.wait_for(handle.connected.wait(), T)
    await check_audio(gw_port, world.peer.recorder(handle))
    handle.hangup()  # the user hangs up
    end = await incoming.wait_ended(T)
    assert end.reason is EndReason.HANGUP
    assert end.by_remote
    assert world.gateway.active == []


async def test_resolve_by_phone_and_id(world: World) -> None:
    handle, theirs = await gateway_calls_peer(world, PEER_PHONE, 16000)
    handle.hangup()
    await handle.wait_ended(T)
    await theirs.wait_ended(T)
    handle, theirs = await gateway_calls_peer(world, world.peer.id, 16000)
    theirs.hangup()
    end = await handle.wait_ended(T)
    assert end.reason is EndReason.HANGUP
    assert end.by_remote


async def test_ten_calls_in_a_row_do_not_leak(world: World) -> None:
    def counts() -> tuple[int, int]:
        return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))

    handle, theirs = await gateway_calls_peer(world, "@bob", 8000)
    handle.hangup()
    await handle.wait_ended(T)
    await theirs.wait_ended(T)
    threads, fds = counts()
    for i in range(10):
        handle, theirs = await gateway_calls_peer(world, "@bob", 8000)
        (theirs if i % 2 else handle).hangup()
        await handle.wait_ended(T)
        await theirs.wait_ended(T)
    assert world.media.calls == {}
    assert world.gateway.active == []
    now_threads, now_fds = counts()
    assert now_threads <= threads + 2, (threads, now_threads)
    assert now_fds <= fds + 4, (fds, now_fds)


async def test_incoming_call_bridged_through_a_media_core_line(world: World) -> None:
    """The gateway answers with a LinePort: the Telegram user's audio crosses ntgcalls and an
    RTP line of the media core to a PCMA "phone" line, and the phone's audio goes back."""
    engine = MediaEngine(EngineConfig(workers=1, port_min=45000, port_max=45999))
    engine.attach()
    try:
        cfg = LineConfig(codec="PCMA", payload_type=8, stats_interval_ms=0, pcm_rate=8000)
        gw_line = engine.open_line(cfg, pcm_endpoint=True)
        phone = engine.open_line(cfg, pcm_endpoint=True)
        gw_line.start(*phone.local_address)
        phone.start(*gw_line.local_address)
        handle = await asyncio.wait_for(world.peer.call("@gateway"), T)
        incoming = await asyncio.wait_for(world.incoming.get(), T)
        await incoming.accept(LinePort(gw_line))
        await asyncio.wait_for(incoming.connected.wait(), T)
        await asyncio.wait_for(handle.connected.wait(), T)
        voice = ToneSource(600, 8000)
        heard: list[bytes] = []
        async for _ in paced(150):
            phone.push_pcm(voice.next_frame())
            heard.append(phone.pull_pcm())
        freq, level = analyse(b"".join(heard[-50:]), 8000)
        assert freq == pytest.approx(1000, abs=15)
        assert level == pytest.approx(-12, abs=3)
        assert_tone(world.peer.recorder(handle), 600)
        incoming.hangup()
        await incoming.wait_ended(T)
        await handle.wait_ended(T)
    finally:
        engine.close()


async def test_three_calls_at_once(world: World) -> None:
    """The gateway calls three scripted users at once on one ntgcalls instance; each pair hears
    its own tones, and everything is gone after the hang-ups."""
    extra = [
        CallPeer(
            world.sandbox,
            f"+1555030{i}",
            first_name=f"User{i}",
            username=f"user{i}",
            source=tone(1300 + 300 * i),
            sample_rate=16000,
            media=world.media,
        )
        for i in range(2)
    ]
    for p in extra:
        await p.start()
    try:
        peers = [(world.peer, 1000), (extra[0], 1300), (extra[1], 1600)]
        names = ["@bob", "@user0", "@user1"]
        gw_ports = [port(8000, 400 + 100 * i) for i in range(3)]
        handles = await asyncio.gather(
            *(
                asyncio.wait_for(world.gateway.call(name, gp), T)
                for name, gp in zip(names, gw_ports, strict=True)
            )
        )
        theirs = [await asyncio.wait_for(p.incoming.get(), T) for p, _ in peers]
        for h in [*handles, *theirs]:
            await asyncio.wait_for(h.connected.wait(), T)
        assert len(world.media.calls) == 6
        await wait_for_frames(gw_ports[-1].recorder, 40, 5)
        for gp in gw_ports:
            gp.recorder.clear()
        for (p, _), t in zip(peers, theirs, strict=True):
            p.recorder(t).clear()
        await wait_for_frames(gw_ports[-1].recorder, 60, 5)
        for i, ((p, freq), t, gp) in enumerate(zip(peers, theirs, gw_ports, strict=True)):
            assert_tone(p.recorder(t), 400 + 100 * i)
            assert_tone(gp.recorder, freq)
        for h in handles:
            h.hangup()
        for h in [*handles, *theirs]:
            await h.wait_ended(T)
        assert world.media.calls == {}
        assert world.gateway.active == []
    finally:
        for p in extra:
            await p.stop()


async def test_scripted_user_plays_a_wav_file(
    sandbox: Sandbox, make_client: ClientFactory, tmp_path: Path
) -> None:
    """A CallPeer plays a WAV file (four 250 ms tones in a loop); the gateway hears the tones
    in the file's order."""
    pattern = (500, 800, 1200, 1700)
    pcm = b"".join(
        b"".join(src.next_frame() for _ in range(25))
        for src in (ToneSource(f, 16000) for f in pattern)
    )
    path = tmp_path / "pattern.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm)
    world = await make_world(sandbox, make_client, peer_rate=16000, peer_source=wav(path))
    try:
        gw_port = port(16000)
        handle = await asyncio.wait_for(world.gateway.call("@bob", gw_port), T)
        theirs = await asyncio.wait_for(world.peer.incoming.get(), T)
        await asyncio.wait_for(handle.connected.wait(), T)
        await asyncio.wait_for(theirs.connected.wait(), T)
        await wait_for_frames(gw_port.recorder, 30, 5)
        gw_port.recorder.clear()
        await wait_for_frames(gw_port.recorder, 200, 5)
        heard = gw_port.recorder.pcm()
        window = 16000 * 2 // 20  # 50 ms
        seq: list[int] = []
        for i in range(0, len(heard) - window + 1, window):
            freq, level = analyse(heard[i : i + window], 16000)
            if level < -30:
                continue
            nearest = min(pattern, key=lambda f: abs(f - freq))
            if abs(nearest - freq) <= 40 and (not seq or seq[-1] != nearest):
                seq.append(nearest)
        assert len(seq) >= 6, seq
        start = pattern.index(seq[0])
        assert seq == [pattern[(start + k) % 4] for k in range(len(seq))], seq
    finally:
        await world.close()
