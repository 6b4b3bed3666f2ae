"""PCM ports: tones, WAV files, the recorder, and a real media-core line as a port."""

from __future__ import annotations

import asyncio
import threading
import wave
from pathlib import Path

import pytest

from tests.media.helpers import paced
from tests.telegram.calls.audio import analyse
from tgsip.media import EngineConfig, LineConfig, MediaEngine
from tgsip.telegram.calls.ports import (
    LinePort,
    PcmPort,
    Recorder,
    ScriptedPort,
    ToneSource,
    WavSource,
    frame_bytes,
)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_tone_frames_are_10_ms_at_the_right_pitch_and_level(rate: int) -> None:
    src = ToneSource(1000, rate, dbfs=-12)
    frames = [src.next_frame() for _ in range(150)]
    assert {len(f) for f in frames} == {frame_bytes(rate)} == {rate // 50}
    freq, level = analyse(b"".join(frames), rate)
    assert freq == pytest.approx(1000, abs=2)
    assert level == pytest.approx(-12, abs=0.1)


def test_tone_is_continuous_across_the_second_boundary() -> None:
    src = ToneSource(440, 8000)
    pcm = b"".join(src.next_frame() for _ in range(200))  # 2 s: wraps once
    assert pcm[:16000] == pcm[16000:]


def test_silence_and_bad_tones() -> None:
    assert ToneSource(0, 8000).next_frame() == bytes(160)
    with pytest.raises(ValueError, match="sample rate"):
        ToneSource(440, 44100)
    with pytest.raises(ValueError, match="half the sample rate"):
        ToneSource(4000, 8000)


def write_wav(path: Path, pcm: bytes, rate: int = 8000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


def test_wav_source_plays_once_then_silence(tmp_path: Path) -> None:
    pcm = bytes(range(256)) + b"\x01\x02" * 10  # 138 samples: one 80-sample frame, then part
    src = WavSource(write_wav(tmp_path / "a.wav", pcm))
    assert src.sample_rate == 8000
    first, second, third = src.next_frame(), src.next_frame(), src.next_frame()
    assert first == pcm[:160]
    assert second == pcm[160:] + bytes(160 - len(pcm[160:]))
    assert third == bytes(160)


def test_wav_source_loops(tmp_path: Path) -> None:
    pcm = bytes(range(200))  # 100 samples, shorter than a frame
    src = WavSource(write_wav(tmp_path / "a.wav", pcm), loop=True)
    out = b"".join(src.next_frame() for _ in range(5))
    assert out == (pcm * 9)[: len(out)]


def test_wav_source_refuses_other_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mono"):
        WavSource(write_wav(tmp_path / "s.wav", bytes(400), channels=2))
    with pytest.raises(ValueError, match="rate"):
        WavSource(write_wav(tmp_path / "r.wav", bytes(400), rate=44100))


def test_recorder_is_bounded_thread_safe_and_writes_wav(tmp_path: Path) -> None:
    rec = Recorder(8000, max_seconds=1.0)

    def feed() -> None:
        for _ in range(60):
            rec.add(b"\x01\x00" * 80)

    threads = [threading.Thread(target=feed) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert rec.received == 180
    assert len(rec.pcm()) == 100 * 160
    assert len(rec.pcm(last_seconds=0.5)) == 50 * 160
    rec.write_wav(tmp_path / "r.wav")
    with wave.open(str(tmp_path / "r.wav"), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() == 100 * 80
    rec.clear()
    assert rec.pcm() == b""


def test_scripted_port_is_a_pcm_port() -> None:
    port = ScriptedPort(ToneSource(440, 16000))
    assert isinstance(port, PcmPort)
    assert port.sample_rate == 16000
    assert len(port.read_frame()) == 320
    port.write_frame(b"\x00" * 320)
    assert port.recorder.received == 1
    assert port.sent == 1
    with pytest.raises(ValueError, match="one sample rate"):
        ScriptedPort(ToneSource(440, 16000), Recorder(8000))


async def test_line_port_carries_audio_through_the_media_core() -> None:
    """A LinePort over a PCM-endpoint line exchanges RTP with a second PCM-endpoint line (the
    SIP phone's stand-in): what the port is given reaches the phone, what the phone says comes
    out of read_frame, both as 10 ms frames."""
    engine = MediaEngine(EngineConfig(workers=1, port_min=44000, port_max=44999))
    engine.attach()
    try:
        cfg = LineConfig(codec="PCMA", payload_type=8, stats_interval_ms=0, pcm_rate=8000)
        gw = engine.open_line(cfg, pcm_endpoint=True)
        phone = engine.open_line(cfg, pcm_endpoint=True)
        gw.start(*phone.local_address)
        phone.start(*gw.local_address)
        port = LinePort(gw)
        assert isinstance(port, PcmPort)
        assert port.sample_rate == 8000
        to_phone = ToneSource(700, 8000)
        from_phone = ToneSource(1200, 8000)
        heard_by_phone: list[bytes] = []
        heard_by_port: list[bytes] = []
        async for _ in paced(100):
            # write_frame runs on ntgcalls threads in production: do it from a thread here too.
            await asyncio.to_thread(port.write_frame, to_phone.next_frame())
            phone.push_pcm(from_phone.next_frame())
            frame = port.read_frame()
            assert len(frame) == 160
            heard_by_port.append(frame)
            heard_by_phone.append(phone.pull_pcm())
        f1, l1 = analyse(b"".join(heard_by_phone[-40:]), 8000)
        f2, l2 = analyse(b"".join(heard_by_port[-40:]), 8000)
        assert f1 == pytest.approx(700, abs=15)
        assert l1 == pytest.approx(-12, abs=2)
        assert f2 == pytest.approx(1200, abs=15)
        assert l2 == pytest.approx(-12, abs=2)
        engine.close_line(gw)
        port.write_frame(bytes(160))  # a closed line drops frames quietly
    finally:
        engine.close()


def test_line_port_needs_10_ms_mono_frames() -> None:
    engine = MediaEngine(EngineConfig(workers=1, port_min=44000, port_max=44999))
    try:
        line = engine.open_line(LineConfig(pcm_rate=48000), pcm_endpoint=True)
        assert LinePort(line).sample_rate == 48000
    finally:
        engine.close()
