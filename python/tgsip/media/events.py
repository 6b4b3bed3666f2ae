"""Events the media engine reports, as typed records."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class DtmfReceived(msgspec.Struct, frozen=True):
    """A digit ended on a line; ``method`` says how it arrived."""

    line_id: int
    digit: str
    method: Literal["rfc4733", "inband"]
    duration_ms: int


class RtpTimeout(msgspec.Struct, frozen=True):
    """No RTP for the line's timeout (reported once until packets flow again)."""

    line_id: int
    silent_ms: int


class RemoteLatched(msgspec.Struct, frozen=True):
    """Symmetric RTP moved the line's remote address to where its packets come from."""

    line_id: int
    host: str
    port: int


class LineStats(msgspec.Struct, frozen=True):
    """Periodic statistics of a line (packet counters and jitter-buffer figures)."""

    line_id: int
    stats: dict[str, float | None]


class RecordingFinished(msgspec.Struct, frozen=True):
    """A recording stopped and its WAV file is complete."""

    line_id: int
    path: str
    duration_ms: int


class LineError(msgspec.Struct, frozen=True):
    """A problem the call may survive (for example a recording's disk filled)."""

    line_id: int
    message: str


class DatagramReceived(msgspec.Struct, frozen=True):
    """A STUN or DTLS datagram on a line opened with ``forward_non_rtp``."""

    line_id: int
    host: str
    port: int
    data: bytes


MediaEvent = (
    DatagramReceived
    | DtmfReceived
    | RtpTimeout
    | RemoteLatched
    | LineStats
    | RecordingFinished
    | LineError
)


def from_native(line_id: int, kind: str, fields: dict[str, Any]) -> MediaEvent:
    """Builds the typed event from the native module's ``(line_id, kind, fields)``."""
    if kind == "dtmf":
        return DtmfReceived(line_id, fields["digit"], fields["method"], fields["duration_ms"])
    if kind == "rtp_timeout":
        return RtpTimeout(line_id, fields["silent_ms"])
    if kind == "remote_latched":
        return RemoteLatched(line_id, fields["host"], fields["port"])
    if kind == "stats":
        return LineStats(line_id, dict(fields["stats"]))
    if kind == "recording_finished":
        return RecordingFinished(line_id, str(fields["path"]), fields["duration_ms"])
    if kind == "datagram":
        return DatagramReceived(line_id, fields["host"], fields["port"], bytes(fields["data"]))
    if kind == "error":
        return LineError(line_id, fields["message"])
    return LineError(line_id, f"unknown media event {kind!r}")


__all__ = [
    "DatagramReceived",
    "DtmfReceived",
    "LineError",
    "LineStats",
    "MediaEvent",
    "RecordingFinished",
    "RemoteLatched",
    "RtpTimeout",
    "from_native",
]
