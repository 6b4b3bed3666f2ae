"""Benchmark tools of the media core: an RTP load generator and bare-codec references.

The generator runs in its own native thread with its own sockets, so the engine's workers are
measured alone (their thread CPU time is in :meth:`tgsip.media.MediaEngine.worker_loads`).
"""

from __future__ import annotations

from typing import Literal

from tgsip.media._core import native


class LoadGenerator:
    """``streams`` UDP sockets on ``host`` sending RTP at the packet rate (see :meth:`run`)."""

    def __init__(self, streams: int, host: str = "127.0.0.1") -> None:
        self._native = native.LoadGenerator(streams, host)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of each stream's socket."""
        return list(self._native.addresses)

    def run(
        self,
        targets: list[tuple[str, int, int, int]],
        payload_sets: list[list[bytes]],
        samples_per_packet: list[int],
        *,
        ptime_ms: int = 20,
        seconds: float = 5.0,
    ) -> dict[str, int]:
        """Blocks for ``seconds`` (without the GIL) sending stream ``i`` to ``targets[i] =
        (host, port, payload_type, set)``, cycling through ``payload_sets[set]``."""
        return dict(self._native.run(targets, payload_sets, samples_per_packet, ptime_ms, seconds))


def encode_payloads(
    codec: Literal["PCMA", "PCMU", "opus"],
    pcm: bytes,
    sample_rate: int,
    *,
    ptime_ms: int = 20,
    opus_bitrate: int = 24000,
    opus_complexity: int = 5,
) -> list[bytes]:
    """Encodes s16le PCM into one payload per ``ptime_ms``."""
    return list(
        native.encode_payloads(codec, pcm, sample_rate, ptime_ms, opus_bitrate, opus_complexity)
    )


def codec_floor_ns(
    pcm_8k: bytes, opus_packets: list[bytes], *, complexity: int = 5, bitrate: int = 24000
) -> float:
    """Thread-CPU nanoseconds of the bare codec work of one two-way Opus ⇄ G.711 call per 20 ms
    frame: Opus encode at 8 kHz, Opus decode to 8 kHz, G.711 encode and decode; no RTP, jitter
    buffer, DTMF or sockets. Minimum of three passes."""
    return float(native.codec_floor_ns(pcm_8k, opus_packets, complexity, bitrate, 3))


def run_stage(stage: str, pcm_8k: bytes, frames: int) -> int:
    """Runs ``frames`` 20 ms frames of ``pcm_8k`` through one media stage (for the per-stage
    benchmarks); returns how many frames were processed."""
    return int(native.run_stage(stage, pcm_8k, frames))


__all__ = ["LoadGenerator", "codec_floor_ns", "encode_payloads", "run_stage"]
