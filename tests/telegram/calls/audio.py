"""Audio checks for call tests: dominant frequency and level by FFT."""

from __future__ import annotations

import asyncio
import math

import numpy as np

from tgsip.telegram.calls.ports import Recorder


def analyse(pcm: bytes, rate: int) -> tuple[float, float]:
    """``(dominant frequency in Hz, RMS level in dBFS)`` of s16le mono PCM (0 dBFS = the RMS of
    a full-scale square wave)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if x.size == 0:
        return 0.0, -math.inf
    rms = float(np.sqrt(np.mean(x * x)))
    level = 20 * math.log10(rms / 32767.0) if rms > 0 else -math.inf
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    peak = int(np.argmax(spectrum[1:])) + 1
    return peak * rate / x.size, level


async def wait_for_frames(recorder: Recorder, count: int, timeout: float) -> None:
    """Waits (bounded) until ``recorder`` received ``count`` more frames."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    target = recorder.received + count
    while recorder.received < target:
        if loop.time() > end:
            raise TimeoutError(f"{count} frames not received in {timeout} s")
        await asyncio.sleep(0.02)
