"""Settings of the media engine and of a line. They cross into the native core once."""

from __future__ import annotations

from typing import Literal

import msgspec

from tgsip.config.media import EngineConfig

Codec = Literal["PCMA", "PCMU", "opus"]
DtmfMethod = Literal["rfc4733", "inband", "none"]
PcmRate = Literal[8000, 16000, 48000]
Ptime = Literal[10, 20, 30, 40, 60]


class OpusSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Opus encoder settings of a line (RFC 7587; ignored by G.711 lines).

    The defaults (24 kbit/s, complexity 5, in-band FEC for 5 % loss, no DTX) give transparent
    speech at about half the cost of complexity 10; ``tgsip bench media`` measures both.
    """

    bitrate: int = 24000
    complexity: int = 5
    fec: bool = True
    dtx: bool = False
    loss_percent: int = 5


class LineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One line's media settings, usually derived from the negotiated SDP.

    * ``codec``/``payload_type``: the audio codec and its payload type from the SDP.
    * ``telephone_event_pt``: the negotiated RFC 4733 payload type, or ``None``.
    * ``dtmf_method``: how digits are *sent*: ``rfc4733`` packets, ``inband`` tones, or
      ``none`` (digits travel as events only, for example as SIP INFO).
    * ``detect_inband_dtmf``: run the tone detector on received audio.
    * ``symmetric_rtp``: latch the remote address to the source of the first packet (NAT).
    * ``rtp_timeout_ms``: report :class:`~tgsip.media.events.RtpTimeout` after this silence
      (0 disables).
    * ``pcm_rate``: the rate of the PCM the line exchanges with its peer (the Telegram side's
      frames, or the bridged line).
    * ``forward_non_rtp``: deliver STUN and DTLS datagrams arriving on the line's socket as
      :class:`~tgsip.media.events.DatagramReceived` events (RFC 7983), and let
      :meth:`~tgsip.media.engine.Line.send_datagram` answer from the same socket: ICE and DTLS
      run in Python while media stays in the engine (the native Telegram leg's plug-in point).
    * ``rtcp_mux``: send RTCP sender/receiver reports on the RTP port (RFC 5761, when the SDP
      negotiated ``a=rtcp-mux``); the far end's reports give ``rtt_ms`` and loss in
      :meth:`~tgsip.media.engine.Line.stats`.
    """

    codec: Codec = "PCMA"
    payload_type: int = 8
    telephone_event_pt: int | None = 101
    ptime_ms: Ptime = 20
    dtmf_method: DtmfMethod = "rfc4733"
    detect_inband_dtmf: bool = True
    symmetric_rtp: bool = True
    rtp_timeout_ms: int = 30000
    pcm_rate: PcmRate = 8000
    opus: OpusSettings = OpusSettings()
    jitter_min_ms: int = 20
    jitter_max_ms: int = 300
    stats_interval_ms: int = 5000
    forward_non_rtp: bool = False
    rtcp_mux: bool = False


__all__ = ["Codec", "DtmfMethod", "EngineConfig", "LineConfig", "OpusSettings", "PcmRate", "Ptime"]
