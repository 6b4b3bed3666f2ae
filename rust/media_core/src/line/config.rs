//! A line's configuration: crosses from Python once, when the line opens.

use std::time::Duration;

use crate::error::{MediaError, Result};

/// The audio codec a line speaks on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecKind {
    /// G.711 A-law, 8 kHz.
    Pcma,
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// Opus (RFC 7587): RTP clock 48 kHz whatever rate the codec runs at internally.
    Opus,
}

impl CodecKind {
    /// Parses the SDP encoding name (case-insensitive).
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "pcma" | "alaw" => Ok(Self::Pcma),
            "pcmu" | "ulaw" => Ok(Self::Pcmu),
            "opus" => Ok(Self::Opus),
            other => Err(MediaError::invalid(format!(
                "unsupported codec {other:?}; expected PCMA, PCMU or opus"
            ))),
        }
    }

    /// The RTP clock rate (RFC 3551 for G.711, RFC 7587 for Opus).
    pub const fn rtp_clock_rate(self) -> u32 {
        match self {
            Self::Pcma | Self::Pcmu => 8000,
            Self::Opus => 48000,
        }
    }

    /// The SDP encoding name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pcma => "PCMA",
            Self::Pcmu => "PCMU",
            Self::Opus => "opus",
        }
    }
}

/// How a line carries DTMF it is asked to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfMode {
    /// RFC 4733 telephone-event packets (needs a negotiated telephone-event payload type).
    Rfc4733,
    /// Tones mixed into the audio.
    Inband,
    /// Not in the media at all: digits travel as events only (for example as SIP INFO).
    None,
}

impl DtmfMode {
    /// Parses `rfc4733` (or `rfc2833`), `inband` or `none`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "rfc4733" | "rfc2833" => Ok(Self::Rfc4733),
            "inband" => Ok(Self::Inband),
            "none" | "info" => Ok(Self::None),
            other => Err(MediaError::invalid(format!(
                "unknown DTMF method {other:?}; expected rfc4733, inband or none"
            ))),
        }
    }
}

/// Opus encoder settings of a line (ignored by G.711 lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
    /// Encoder complexity, 0 (cheapest) to 10.
    pub complexity: u8,
    /// In-band forward error correction.
    pub inband_fec: bool,
    /// Discontinuous transmission.
    pub dtx: bool,
    /// Expected packet loss in percent (drives how much FEC the encoder spends).
    pub packet_loss_percent: u8,
}

impl Default for OpusConfig {
    /// 24 kbit/s, complexity 5, FEC on for 5 % loss, DTX off: transparent narrow- and wideband
    /// speech at about half of complexity 10's cost (see the media benchmark).
    fn default() -> Self {
        Self {
            bitrate_bps: 24_000,
            complexity: 5,
            inband_fec: true,
            dtx: false,
            packet_loss_percent: 5,
        }
    }
}

/// Everything a line needs to know, fixed when it opens (the remote address, hold and recording
/// change later through commands).
#[derive(Debug, Clone, PartialEq)]
pub struct LineConfig {
    /// The negotiated audio codec.
    pub codec: CodecKind,
    /// Its payload type from the SDP (dynamic for Opus).
    pub payload_type: u8,
    /// The negotiated telephone-event payload type, if any.
    pub telephone_event_pt: Option<u8>,
    /// Packet duration in milliseconds (10, 20, 30, 40 or 60).
    pub ptime_ms: u32,
    /// How DTMF is sent.
    pub dtmf_mode: DtmfMode,
    /// Run the in-band DTMF detector on received audio.
    pub detect_inband_dtmf: bool,
    /// Latch the remote address to the source of the first valid packet (symmetric RTP, for
    /// PBXs behind NAT).
    pub symmetric_rtp: bool,
    /// Report `RtpTimeout` after this long without a packet (zero: never).
    pub rtp_timeout: Duration,
    /// Rate of the PCM the line exchanges with its peer (a PCM endpoint or a bridged line):
    /// 8000, 16000 or 48000.
    pub pcm_rate: u32,
    /// Opus settings (Opus lines only).
    pub opus: OpusConfig,
    /// Smallest and largest jitter-buffer delay.
    pub jitter_min_delay: Duration,
    /// See `jitter_min_delay`.
    pub jitter_max_delay: Duration,
    /// How often a `Stats` event is emitted (zero: never).
    pub stats_interval: Duration,
    /// Hand STUN and DTLS datagrams arriving on the line's socket to the control plane
    /// (RFC 7983 demultiplexing), so ICE and DTLS can run in Python on the socket the engine
    /// owns (the native Telegram leg).
    pub forward_non_rtp: bool,
    /// Send RTCP reports on the RTP port (RFC 5761, negotiated with `a=rtcp-mux`). Incoming
    /// multiplexed RTCP is always read.
    pub rtcp_mux: bool,
}

impl Default for LineConfig {
    fn default() -> Self {
        Self {
            codec: CodecKind::Pcma,
            payload_type: 8,
            telephone_event_pt: Some(101),
            ptime_ms: 20,
            dtmf_mode: DtmfMode::Rfc4733,
            detect_inband_dtmf: true,
            symmetric_rtp: true,
            rtp_timeout: Duration::from_secs(30),
            pcm_rate: 8000,
            opus: OpusConfig::default(),
            jitter_min_delay: Duration::from_millis(20),
            jitter_max_delay: Duration::from_millis(300),
            stats_interval: Duration::from_secs(5),
            forward_non_rtp: false,
            rtcp_mux: false,
        }
    }
}

impl LineConfig {
    /// Checks every field's range; the error names the field and the accepted values.
    pub fn validate(&self) -> Result<()> {
        if !matches!(self.ptime_ms, 10 | 20 | 30 | 40 | 60) {
            return Err(MediaError::invalid(format!(
                "ptime_ms must be 10, 20, 30, 40 or 60, got {}",
                self.ptime_ms
            )));
        }
        if self.payload_type > 127 {
            return Err(MediaError::invalid(format!(
                "payload_type must be 0..=127, got {}",
                self.payload_type
            )));
        }
        if let Some(pt) = self.telephone_event_pt {
            if pt > 127 || pt == self.payload_type {
                return Err(MediaError::invalid(format!(
                    "telephone_event_pt must be 0..=127 and differ from the audio payload type, got {pt}"
                )));
            }
        }
        if self.dtmf_mode == DtmfMode::Rfc4733 && self.telephone_event_pt.is_none() {
            return Err(MediaError::invalid(
                "dtmf_mode rfc4733 needs a telephone_event_pt",
            ));
        }
        if !matches!(self.pcm_rate, 8000 | 16000 | 48000) {
            return Err(MediaError::invalid(format!(
                "pcm_rate must be 8000, 16000 or 48000, got {}",
                self.pcm_rate
            )));
        }
        if self.opus.complexity > 10 {
            return Err(MediaError::invalid(format!(
                "opus complexity must be 0..=10, got {}",
                self.opus.complexity
            )));
        }
        if !(6_000..=510_000).contains(&self.opus.bitrate_bps) {
            return Err(MediaError::invalid(format!(
                "opus bitrate must be 6000..=510000 bit/s, got {}",
                self.opus.bitrate_bps
            )));
        }
        if self.opus.packet_loss_percent > 100 {
            return Err(MediaError::invalid(
                "opus packet_loss_percent must be 0..=100",
            ));
        }
        if self.jitter_min_delay > self.jitter_max_delay
            || self.jitter_max_delay > Duration::from_secs(2)
        {
            return Err(MediaError::invalid(
                "jitter delays must satisfy min <= max <= 2 s",
            ));
        }
        Ok(())
    }

    /// Samples per packet at the codec's RTP clock.
    pub fn rtp_samples_per_packet(&self) -> u32 {
        self.codec.rtp_clock_rate() / 1000 * self.ptime_ms
    }

    /// Samples per packet at the PCM rate.
    pub fn pcm_samples_per_packet(&self) -> usize {
        (self.pcm_rate / 1000 * self.ptime_ms) as usize
    }
}
