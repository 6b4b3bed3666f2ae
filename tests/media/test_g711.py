"""G.711 against an independent implementation: CPython 3.11's ``audioop``."""

from __future__ import annotations

import array
import sys

import pytest

from tgsip.media import InvalidArgumentError, MediaCoreError, g711

audioop = pytest.importorskip("audioop", reason="audioop is part of CPython up to 3.12")

ALL_SAMPLES = array.array("h", range(-32768, 32768))
if sys.byteorder == "big":  # pragma: no cover - the engine speaks s16le everywhere
    ALL_SAMPLES.byteswap()
ALL_PCM = ALL_SAMPLES.tobytes()
ALL_CODES = bytes(range(256))


@pytest.mark.parametrize(("law", "ref_encode"), [("alaw", "lin2alaw"), ("ulaw", "lin2ulaw")])
def test_encode_all_65536_inputs(law: g711.Law, ref_encode: str) -> None:
    ours = g711.encode(law, ALL_PCM)
    theirs = getattr(audioop, ref_encode)(ALL_PCM, 2)
    assert len(ours) == 65536
    mismatches = [i - 32768 for i in range(65536) if ours[i] != theirs[i]]
    assert mismatches == []


@pytest.mark.parametrize(("law", "ref_decode"), [("alaw", "alaw2lin"), ("ulaw", "ulaw2lin")])
def test_decode_all_256_codes(law: g711.Law, ref_decode: str) -> None:
    assert g711.decode(law, ALL_CODES) == getattr(audioop, ref_decode)(ALL_CODES, 2)


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(InvalidArgumentError, match=r"unknown G\.711 law"):
        g711.encode("gsm", b"\0\0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole 16-bit samples"):
        g711.encode("alaw", b"\0\0\0")
    with pytest.raises(MediaCoreError):
        g711.encode("alaw", b"\0")


def test_empty_buffers() -> None:
    assert g711.encode("ulaw", b"") == b""
    assert g711.decode("alaw", b"") == b""
