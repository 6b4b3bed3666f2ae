"""PCM ports: where a Telegram call's audio comes from and goes to.

The media leg (:mod:`tgsip.telegram.calls.media`) exchanges exactly-10 ms frames of s16le mono
PCM with one :class:`PcmPort` per call: once per 10 ms tick it sends
:meth:`PcmPort.read_frame` to the Telegram user, and it hands every received frame to
:meth:`PcmPort.write_frame`. ``write_frame`` runs on a native ntgcalls thread: it must be
thread-safe and return at once.

* :class:`LinePort` - a media-core line opened as a PCM endpoint (the gateway's bridge to SIP).
* :class:`ScriptedPort` - a :class:`ToneSource` or :class:`WavSource` that plays, and a
  :class:`Recorder` that keeps what was heard (scripted sandbox users and tests).
"""

from __future__ import annotations

import math
import struct
import threading
import wave
from pathlib import Path
from typing import Protocol, runtime_checkable

from tgsip.media.engine import Line

#: Sample rates the media leg accepts for external PCM (``telegram_calls.md`` §6.3).
SAMPLE_RATES = (8000, 16000, 48000)


def frame_bytes(sample_rate: int) -> int:
    """Bytes of one 10 ms frame of s16le mono at ``sample_rate``."""
    return sample_rate // 100 * 2


@runtime_checkable
class PcmPort(Protocol):
    """One call's PCM: 10 ms frames of s16le mono at :attr:`sample_rate`."""

    @property
    def sample_rate(self) -> int:
        """8000, 16000 or 48000."""
        ...

    def read_frame(self) -> bytes:
        """The next frame to send to the Telegram user: exactly ``frame_bytes(rate)`` bytes
        (silence when there is nothing to say). Called on the event-loop thread."""
        ...

    def write_frame(self, data: bytes) -> None:
        """A frame received from the Telegram user. Called on a native thread."""
        ...


class LinePort:
    """A media-core line opened with ``pcm_endpoint=True``: what the Telegram user says goes to
    the line (:meth:`~tgsip.media.engine.Line.push_pcm`), what the line received from SIP
    goes to the Telegram user (:meth:`~tgsip.media.engine.Line.pull_pcm`)."""

    def __init__(self, line: Line) -> None:
        rate = int(line.config.pcm_rate)
        if line.frame_bytes != frame_bytes(rate):
            raise ValueError(
                f"line frames are {line.frame_bytes} bytes, not 10 ms of mono PCM at {rate} Hz"
            )
        self._line = line
        self._rate = rate
        self._bytes = line.frame_bytes

    @property
    def sample_rate(self) -> int:
        return self._rate

    def read_frame(self) -> bytes:
        data = self._line.pull_pcm()
        if len(data) != self._bytes:  # never expected: keep ntgcalls from reading past the end
            data = (data + bytes(self._bytes))[: self._bytes]
        return data

    def write_frame(self, data: bytes) -> None:
        if not self._line.closed:
            self._line.push_pcm(data)


class FrameSource(Protocol):
    """Produces 10 ms frames for a :class:`ScriptedPort`."""

    sample_rate: int

    def next_frame(self) -> bytes:
        """The next frame (exactly 10 ms)."""
        ...


class ToneSource:
    """A sine tone of a whole number of hertz (0 = silence) at ``dbfs`` RMS (0 dBFS = the RMS
    of a full-scale square wave, so a full-scale sine is about -3 dBFS). One second of samples
    is computed once and played in a loop, which is exact for whole frequencies."""

    def __init__(self, frequency: int, sample_rate: int, dbfs: float = -12.0) -> None:
        if sample_rate not in SAMPLE_RATES:
            raise ValueError(f"sample rate must be one of {SAMPLE_RATES}")
        if not 0 <= frequency < sample_rate // 2:
            raise ValueError("the frequency must be below half the sample rate")
        self.sample_rate = sample_rate
        self.frequency = int(frequency)
        amp = 32767.0 * math.sqrt(2.0) * 10 ** (dbfs / 20.0)
        w = 2.0 * math.pi * self.frequency / sample_rate
        self._second = struct.pack(
            f"<{sample_rate}h",
            *(max(-32768, min(32767, round(amp * math.sin(w * i)))) for i in range(sample_rate)),
        )
        self._pos = 0
        self._size = frame_bytes(sample_rate)

    def next_frame(self) -> bytes:
        chunk = self._second[self._pos : self._pos + self._size]
        self._pos = (self._pos + self._size) % len(self._second)
        return chunk


class WavSource:
    """A mono 16-bit WAV file at the port's rate, played once (then silence) or looped."""

    def __init__(self, path: Path | str, *, loop: bool = False) -> None:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise ValueError("the WAV file must be mono 16-bit PCM")
            if w.getframerate() not in SAMPLE_RATES:
                raise ValueError(f"the WAV rate must be one of {SAMPLE_RATES}")
            self.sample_rate = w.getframerate()
            self._pcm = w.readframes(w.getnframes())
        self._loop = loop
        self._pos = 0
        self._size = frame_bytes(self.sample_rate)

    def next_frame(self) -> bytes:
        if not self._pcm:
            return bytes(self._size)
        if self._loop and self._pos >= len(self._pcm):
            self._pos = 0
        chunk = self._pcm[self._pos : self._pos + self._size]
        self._pos += self._size
        if self._loop and len(chunk) < self._size:
            self._pos = self._size - len(chunk)
            chunk += self._pcm[: self._pos]
        return chunk + bytes(self._size - len(chunk))


class Recorder:
    """Keeps received frames (thread-safe), up to ``max_seconds``; later frames are counted
    but dropped."""

    def __init__(self, sample_rate: int, max_seconds: float = 120.0) -> None:
        self.sample_rate = sample_rate
        self._frames: list[bytes] = []
        self._max = int(max_seconds * 100)
        self._lock = threading.Lock()
        self.received = 0

    def add(self, data: bytes) -> None:
        """Appends one frame."""
        with self._lock:
            self.received += 1
            if len(self._frames) < self._max:
                self._frames.append(bytes(data))

    def pcm(self, last_seconds: float | None = None) -> bytes:
        """Everything recorded (or only the last ``last_seconds``) as s16le mono."""
        with self._lock:
            frames = list(self._frames)
        if last_seconds is not None:
            frames = frames[-int(last_seconds * 100) :]
        return b"".join(frames)

    def clear(self) -> None:
        """Forgets what was recorded."""
        with self._lock:
            self._frames.clear()

    def write_wav(self, path: Path | str) -> None:
        """Writes the recording as a mono 16-bit WAV file."""
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(self.pcm())


class ScriptedPort:
    """Plays ``source`` to the Telegram user and records what it hears into :attr:`recorder`."""

    def __init__(self, source: FrameSource, recorder: Recorder | None = None) -> None:
        self.source = source
        self.recorder = recorder or Recorder(source.sample_rate)
        if self.recorder.sample_rate != source.sample_rate:
            raise ValueError("the source and the recorder must share one sample rate")
        self.sent = 0

    @property
    def sample_rate(self) -> int:
        return self.source.sample_rate

    def read_frame(self) -> bytes:
        self.sent += 1
        return self.source.next_frame()

    def write_frame(self, data: bytes) -> None:
        self.recorder.add(data)


__all__ = [
    "SAMPLE_RATES",
    "FrameSource",
    "LinePort",
    "PcmPort",
    "Recorder",
    "ScriptedPort",
    "ToneSource",
    "WavSource",
    "frame_bytes",
]
