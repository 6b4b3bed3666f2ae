"""Type stubs of the native media core. Import it only through :mod:`tgsip.media`.

Checked against the built module by ``make lint`` (``mypy.stubtest``).
"""

from typing import final

__all__ = [
    "ClosedError",
    "CodecError",
    "Engine",
    "EngineIOError",
    "InvalidArgumentError",
    "Line",
    "LoadGenerator",
    "MediaCoreError",
    "PacketError",
    "__version__",
    "codec_floor_ns",
    "encode_payloads",
    "g711_decode",
    "g711_encode",
    "run_stage",
]

__version__: str

class MediaCoreError(Exception): ...
class InvalidArgumentError(MediaCoreError, ValueError): ...
class CodecError(MediaCoreError, ValueError): ...
class PacketError(MediaCoreError, ValueError): ...
class ClosedError(MediaCoreError, RuntimeError): ...
class EngineIOError(MediaCoreError, OSError): ...

def g711_encode(law_name: str, pcm: bytes) -> bytes:
    """Encodes s16le PCM to G.711 codes ('alaw' or 'ulaw')."""

def g711_decode(law_name: str, codes: bytes) -> bytes:
    """Decodes G.711 codes ('alaw' or 'ulaw') to s16le PCM."""

@final
class Line:
    """One line of the engine (see ``tgsip.media.engine.Line``)."""

    @property
    def id(self) -> int: ...
    @property
    def local_address(self) -> tuple[str, int]: ...
    @property
    def frame_bytes(self) -> int: ...
    def start(self, host: str, port: int) -> None: ...
    def bridge(self, other: Line) -> None: ...
    def unbridge(self) -> None: ...
    def send_dtmf(self, digit: str, duration_ms: int = 100) -> None: ...
    def start_recording(self, path: str) -> None: ...
    def stop_recording(self) -> None: ...
    def set_sending(self, enabled: bool) -> None: ...
    def stats(self) -> dict[str, float | None]: ...
    def push_pcm(self, pcm: bytes) -> None: ...
    def pull_pcm(self) -> bytes: ...
    def send_datagram(self, host: str, port: int, data: bytes) -> None: ...
    def close(self) -> None: ...

@final
class Engine:
    """The media engine: worker threads that own every line's sockets."""

    def __new__(
        cls,
        workers: int | None = None,
        bind_ip: str = "127.0.0.1",
        port_min: int = 20000,
        port_max: int = 39999,
    ) -> Engine: ...
    def open_line(
        self,
        codec: str,
        payload_type: int,
        *,
        telephone_event_pt: int | None = ...,
        ptime_ms: int = 20,
        dtmf_mode: str = "rfc4733",
        detect_inband_dtmf: bool = True,
        symmetric_rtp: bool = True,
        rtp_timeout_ms: int = 30000,
        pcm_rate: int = 8000,
        pcm_endpoint: bool = False,
        near: Line | None = None,
        opus_bitrate: int = 24000,
        opus_complexity: int = 5,
        opus_fec: bool = True,
        opus_dtx: bool = False,
        opus_loss_percent: int = 5,
        jitter_min_ms: int = 20,
        jitter_max_ms: int = 300,
        stats_interval_ms: int = 5000,
        forward_non_rtp: bool = False,
        rtcp_mux: bool = False,
    ) -> Line: ...
    def fileno(self) -> int: ...
    def poll_events(self) -> list[tuple[int, str, dict[str, object]]]: ...
    @property
    def dropped_events(self) -> int: ...
    @property
    def line_count(self) -> int: ...
    def now_ms(self) -> float: ...
    def worker_loads(self) -> list[dict[str, int]]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...

@final
class LoadGenerator:
    """Sends RTP streams at the packet rate from its own sockets and thread (benchmarks)."""

    def __new__(cls, streams: int, host: str) -> LoadGenerator: ...
    @property
    def addresses(self) -> list[tuple[str, int]]: ...
    def run(
        self,
        targets: list[tuple[str, int, int, int]],
        payload_sets: list[list[bytes]],
        samples_per_packet: list[int],
        ptime_ms: int,
        seconds: float,
    ) -> dict[str, int]: ...

def encode_payloads(
    codec: str,
    pcm: bytes,
    sample_rate: int,
    ptime_ms: int = 20,
    opus_bitrate: int = 24000,
    opus_complexity: int = 5,
) -> list[bytes]:
    """Encodes s16le PCM into codec payloads of ``ptime_ms`` each."""

def codec_floor_ns(
    pcm_8k: bytes,
    opus_packets: list[bytes],
    complexity: int = 5,
    bitrate: int = 24000,
    repeats: int = 3,
) -> float:
    """Thread CPU ns of the bare codec work of one Opus-G.711 call per 20 ms frame."""

def run_stage(stage: str, pcm_8k: bytes, frames: int) -> int:
    """Runs ``frames`` 20 ms frames through one media stage; returns the frames processed."""
