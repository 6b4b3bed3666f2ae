"""DTMF in SIP INFO bodies (RFC 6086 framework; the de-facto ``application/dtmf-relay`` and
``application/dtmf`` formats used by PBXs).

Sans-I/O. Two body formats:

* ``application/dtmf-relay``: lines ``Signal=<digit>`` and ``Duration=<ms>`` (order free,
  ``:`` accepted in place of ``=``, case-insensitive keys, CRLF or LF, unknown keys ignored).
* ``application/dtmf``: the digit alone (some devices send the RFC 4733 event code, 0-15).

:func:`parse_info` returns a :class:`DtmfInfo` or raises :class:`DtmfInfoError` whose message
says what is wrong (the UAS answers 400 with it as the reason, and 415 for another type).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_DURATION_MS",
    "DIGITS",
    "DTMF",
    "DTMF_RELAY",
    "DtmfInfo",
    "DtmfInfoError",
    "UnsupportedInfoType",
    "build_info",
    "parse_info",
]

DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"
DIGITS = "0123456789*#ABCD"
DEFAULT_DURATION_MS = 160
MAX_DURATION_MS = 10_000
MAX_BODY = 1024


class DtmfInfoError(ValueError):
    """The INFO body is not a DTMF digit we understand; the message says why."""


class UnsupportedInfoType(DtmfInfoError):
    """The INFO carries another content type (answer 415, RFC 6086 §4.2.2)."""


@dataclass(frozen=True, slots=True)
class DtmfInfo:
    """One digit (``0-9 * # A-D``) and its duration in milliseconds."""

    digit: str
    duration_ms: int = DEFAULT_DURATION_MS


def _digit(text: str) -> str:
    t = text.strip()
    if t.isdigit() and len(t) <= 2 and int(t) <= 15:
        return DIGITS[int(t)]  # RFC 4733 event codes 0-15 (10 = *, 11 = #, 12-15 = A-D)
    if len(t) == 1 and t.upper() in DIGITS:
        return t.upper()
    if not t:
        raise DtmfInfoError("empty DTMF signal")
    raise DtmfInfoError(f"not a DTMF digit: {t[:20]!r}")


def parse_info(content_type: str | None, body: bytes) -> DtmfInfo:
    """Parse an INFO body carrying one digit. Raises :class:`DtmfInfoError`."""
    mime = (content_type or "").partition(";")[0].strip().lower()
    if mime not in (DTMF_RELAY, DTMF):
        raise UnsupportedInfoType(f"unsupported INFO content type {mime or 'none'!r}")
    if len(body) > MAX_BODY:
        raise DtmfInfoError("DTMF INFO body too long")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise DtmfInfoError("DTMF INFO body is not ASCII") from None
    if mime == DTMF:
        return DtmfInfo(_digit(text))
    signal: str | None = None
    duration = DEFAULT_DURATION_MS
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        sep = "=" if "=" in line else ":"
        key, found, value = line.partition(sep)
        if not found:
            raise DtmfInfoError(f"bad dtmf-relay line {line[:30]!r}")
        key = key.strip().lower()
        if key == "signal":
            if signal is not None:
                raise DtmfInfoError("Signal given twice")
            signal = _digit(value)
        elif key == "duration":
            v = value.strip()
            if not v.isdigit() or len(v) > 6:
                raise DtmfInfoError(f"bad Duration {v[:20]!r}")
            duration = min(int(v), MAX_DURATION_MS)
    if signal is None:
        raise DtmfInfoError("dtmf-relay body has no Signal")
    return DtmfInfo(signal, duration or DEFAULT_DURATION_MS)


def build_info(
    digit: str, duration_ms: int = DEFAULT_DURATION_MS, *, content_type: str = DTMF_RELAY
) -> tuple[str, bytes]:
    """``(content_type, body)`` of an INFO carrying ``digit``."""
    if len(digit) != 1 or digit.upper() not in DIGITS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    if not 0 < duration_ms <= MAX_DURATION_MS:
        raise ValueError("duration out of range")
    d = digit.upper()
    if content_type == DTMF_RELAY:
        return DTMF_RELAY, f"Signal={d}\r\nDuration={duration_ms}\r\n".encode("ascii")
    if content_type == DTMF:
        return DTMF, d.encode("ascii")
    raise ValueError(f"unsupported content type {content_type!r}")
