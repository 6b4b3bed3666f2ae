"""Real speech and music for tests and benchmarks, from Debian's packaged corpora.

``asterisk-core-sounds-en-wav`` (spoken prompts) and ``asterisk-moh-opsound-wav`` (music on
hold), both 8 kHz 16-bit mono WAV; ``scripts/setup`` installs them.
"""

from __future__ import annotations

import wave
from pathlib import Path

SPEECH_DIR = Path("/usr/share/asterisk/sounds/en")
MUSIC_DIR = Path("/usr/share/asterisk/moh")
RATE = 8000


class CorpusMissingError(FileNotFoundError):
    """The corpus package is not installed."""


def _read(paths: list[Path], seconds: float | None) -> bytes:
    limit = None if seconds is None else int(seconds * RATE) * 2
    chunks: list[bytes] = []
    total = 0
    for path in paths:
        with wave.open(str(path), "rb") as w:
            if w.getframerate() != RATE or w.getsampwidth() != 2 or w.getnchannels() != 1:
                continue
            data = w.readframes(w.getnframes())
        chunks.append(data)
        total += len(data)
        if limit is not None and total >= limit:
            break
    pcm = b"".join(chunks)
    return pcm if limit is None else pcm[:limit]


def files(directory: Path) -> list[Path]:
    """The corpus' WAV files in a stable order; raises :class:`CorpusMissingError`."""
    found = sorted(directory.rglob("*.wav"))
    if not found:
        raise CorpusMissingError(f"no WAV files under {directory} (install the corpus package)")
    return found


def speech(seconds: float | None = None) -> bytes:
    """Concatenated spoken prompts, 8 kHz s16le, cut to ``seconds`` when given."""
    return _read(files(SPEECH_DIR), seconds)


def music(seconds: float | None = None) -> bytes:
    """Concatenated music on hold, 8 kHz s16le, cut to ``seconds`` when given."""
    return _read(files(MUSIC_DIR), seconds)


__all__ = ["MUSIC_DIR", "RATE", "SPEECH_DIR", "CorpusMissingError", "files", "music", "speech"]
