"""The media engine and its lines, for asyncio code.

The native engine owns sockets and worker threads. Python opens lines with a
:class:`~tgsip.media.config.LineConfig`, starts them towards the remote RTP address from the
SDP, bridges them or exchanges 10 ms PCM frames with them, and receives events. Events arrive
without polling: the engine signals a descriptor that the event loop watches
(:meth:`MediaEngine.attach`), and each event is put on its line's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tgsip.media._core import native
from tgsip.media.config import EngineConfig, LineConfig
from tgsip.media.events import MediaEvent, from_native

#: Events kept per line before the oldest are dropped (a line nobody listens to must not grow).
LINE_QUEUE_EVENTS = 1024


class Line:
    """One line of the engine: a call leg's RTP socket, codec, jitter buffer and DTMF."""

    def __init__(self, native_line: Any, config: LineConfig) -> None:
        self._native = native_line
        self.config = config
        self.events: asyncio.Queue[MediaEvent] = asyncio.Queue(LINE_QUEUE_EVENTS)
        self.closed = False

    @property
    def id(self) -> int:
        """The engine's id of this line."""
        return int(self._native.id)

    @property
    def local_address(self) -> tuple[str, int]:
        """``(host, port)`` where the line's RTP arrives: put it in the SDP."""
        host, port = self._native.local_address
        return str(host), int(port)

    @property
    def frame_bytes(self) -> int:
        """Bytes in one 10 ms PCM frame (s16le at the line's PCM rate)."""
        return int(self._native.frame_bytes)

    def start(self, host: str, port: int) -> None:
        """Sends to ``host:port`` (from the SDP) and starts the line's clock."""
        self._native.start(host, port)

    def bridge(self, other: Line) -> None:
        """Bridges with ``other`` (opened with ``near=self`` or the reverse)."""
        self._native.bridge(other._native)

    def unbridge(self) -> None:
        """Ends this line's bridge."""
        self._native.unbridge()

    def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """Queues one digit (``0-9 * # A-D``) by the line's DTMF method."""
        self._native.send_dtmf(digit, duration_ms)

    def start_recording(self, path: Path | str) -> None:
        """Records both directions into a stereo WAV file (left: received, right: sent)."""
        self._native.start_recording(str(path))

    def stop_recording(self) -> None:
        """Stops recording; a :class:`~tgsip.media.events.RecordingFinished` event follows."""
        self._native.stop_recording()

    def set_sending(self, enabled: bool) -> None:
        """Stops (hold) or resumes sending."""
        self._native.set_sending(enabled)

    def stats(self) -> dict[str, float | None]:
        """The line's counters and jitter-buffer figures now."""
        return dict(self._native.stats())

    def push_pcm(self, pcm: bytes) -> None:
        """Pushes PCM (whole 10 ms frames of s16le) to be sent by the line."""
        self._native.push_pcm(pcm)

    def pull_pcm(self) -> bytes:
        """Pulls one 10 ms frame of received PCM; silence while none is ready."""
        data: bytes = self._native.pull_pcm()
        return data

    def send_datagram(self, host: str, port: int, data: bytes) -> None:
        """Sends a raw datagram (STUN, DTLS) from the line's own socket."""
        self._native.send_datagram(host, port, data)

    def close(self) -> None:
        """Closes the line; a running recording finishes first. Idempotent."""
        if not self.closed:
            self.closed = True
            self._native.close()

    def _deliver(self, event: MediaEvent) -> None:
        if self.events.full():
            self.events.get_nowait()
        self.events.put_nowait(event)


class MediaEngine:
    """The media engine. Use as a context manager, or call :meth:`close`."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        cfg = config or EngineConfig()
        self._native = native.Engine(cfg.workers, cfg.bind_ip, cfg.port_min, cfg.port_max)
        self._lines: dict[int, Line] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[Callable[[MediaEvent], None]] = []

    def open_line(
        self, config: LineConfig, *, pcm_endpoint: bool = False, near: Line | None = None
    ) -> Line:
        """Opens a line. ``pcm_endpoint`` makes Python its peer (push/pull 10 ms frames);
        otherwise bridge it to another line, opened with ``near`` set to that line."""
        c = config
        raw = self._native.open_line(
            c.codec,
            c.payload_type,
            telephone_event_pt=c.telephone_event_pt,
            ptime_ms=c.ptime_ms,
            dtmf_mode=c.dtmf_method,
            detect_inband_dtmf=c.detect_inband_dtmf,
            symmetric_rtp=c.symmetric_rtp,
            rtp_timeout_ms=c.rtp_timeout_ms,
            pcm_rate=c.pcm_rate,
            pcm_endpoint=pcm_endpoint,
            near=near._native if near is not None else None,
            opus_bitrate=c.opus.bitrate,
            opus_complexity=c.opus.complexity,
            opus_fec=c.opus.fec,
            opus_dtx=c.opus.dtx,
            opus_loss_percent=c.opus.loss_percent,
            jitter_min_ms=c.jitter_min_ms,
            jitter_max_ms=c.jitter_max_ms,
            stats_interval_ms=c.stats_interval_ms,
            forward_non_rtp=c.forward_non_rtp,
            rtcp_mux=c.rtcp_mux,
        )
        line = Line(raw, config)
        self._lines[line.id] = line
        return line

    def close_line(self, line: Line) -> None:
        """Closes ``line`` and forgets it (its last events are still delivered)."""
        line.close()
        self.dispatch()
        self._lines.pop(line.id, None)

    def add_listener(self, callback: Callable[[MediaEvent], None]) -> None:
        """Calls ``callback`` for every event (after it reached its line's queue)."""
        self._listeners.append(callback)

    def attach(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Delivers events from now on as the event loop sees the engine's descriptor ready."""
        if self._loop is not None:
            return
        self._loop = loop or asyncio.get_running_loop()
        self._loop.add_reader(self._native.fileno(), self.dispatch)

    def dispatch(self) -> int:
        """Takes every waiting event and delivers it; returns how many there were."""
        raw = self._native.poll_events()
        for line_id, kind, fields in raw:
            event = from_native(line_id, kind, fields)
            line = self._lines.get(line_id)
            if line is not None:
                line._deliver(event)
            for listener in self._listeners:
                listener(event)
        return len(raw)

    @property
    def dropped_events(self) -> int:
        """Events the engine dropped because nobody drained them in time."""
        return int(self._native.dropped_events)

    def worker_loads(self) -> list[dict[str, int]]:
        """Per worker: cpu_ns, ticks, late_ticks, max_tick_ns, lines."""
        return [dict(d) for d in self._native.worker_loads()]

    def close(self) -> None:
        """Stops the engine: every line closes and recordings finish. Idempotent."""
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._native.fileno())
            self._loop = None
        self._native.close()
        for line in self._lines.values():
            line.closed = True

    def __enter__(self) -> MediaEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Line", "MediaEngine"]
