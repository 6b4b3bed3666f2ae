"""G.711 A-law and µ-law on whole buffers (s16le PCM in and out).

The engine transcodes inside its own threads; these functions serve tools, tests and offline
benchmarks.
"""

from typing import Literal

from tgsip.media._core import native

Law = Literal["alaw", "ulaw"]


def encode(law: Law, pcm: bytes) -> bytes:
    """Encodes s16le PCM (an even number of bytes) to one G.711 code per sample."""
    return native.g711_encode(law, pcm)


def decode(law: Law, codes: bytes) -> bytes:
    """Decodes G.711 codes to s16le PCM (two bytes per code)."""
    return native.g711_decode(law, codes)


__all__ = ["Law", "decode", "encode"]
