//! The line's adapters over the codec, RTP and DTMF modules: building codecs from a
//! configuration, writing RTP headers, and DTMF in both directions.

use std::collections::VecDeque;
use std::time::Duration;

use super::{DtmfSource, LineConfig, LineEvent};
use crate::codec::g711::Law;
use crate::codec::opus::{OpusDecoder, OpusEncoder, OpusSettings};
use crate::codec::plc::{G711Decoder, G711Encoder};
use crate::codec::{Decoder, Encoder};
use crate::dtmf::goertzel::DtmfDetector;
use crate::dtmf::rfc4733::{EventReceiver, EventSender};
use crate::dtmf::tones::ToneGenerator;
use crate::error::{MediaError, Result};
use crate::line::{CodecKind, DtmfMode};
use crate::rtp::RtpPacket;

/// The encoder, decoder and PCM rate of a line's codec. G.711 runs at 8 kHz; Opus runs at the
/// line's PCM rate (8, 16 or 48 kHz are all native Opus rates), so no resampler is needed.
pub fn make_codec(cfg: &LineConfig) -> Result<(Box<dyn Encoder>, Box<dyn Decoder>, u32)> {
    match cfg.codec {
        CodecKind::Pcma | CodecKind::Pcmu => {
            let law = if cfg.codec == CodecKind::Pcma {
                Law::A
            } else {
                Law::Mu
            };
            Ok((
                Box::new(G711Encoder::new(law)),
                Box::new(G711Decoder::new(law)),
                8000,
            ))
        }
        CodecKind::Opus => {
            let settings = OpusSettings {
                bitrate_bps: cfg.opus.bitrate_bps,
                complexity: cfg.opus.complexity,
                inband_fec: cfg.opus.inband_fec,
                dtx: cfg.opus.dtx,
                packet_loss_percent: cfg.opus.packet_loss_percent,
                ..OpusSettings::default()
            };
            let rate = cfg.pcm_rate;
            Ok((
                Box::new(OpusEncoder::new(rate, 1, &settings)?),
                Box::new(OpusDecoder::new(rate, 1)?),
                rate,
            ))
        }
    }
}

/// Writes an RTP header and `payload` into `out`; returns the packet's length.
pub(super) fn write_rtp(
    out: &mut [u8],
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) -> Result<usize> {
    crate::rtp::write_rtp(out, pt, marker, seq, ts, ssrc, payload)
}

/// A telephone-event packet to send.
pub(super) struct EventPacket {
    pub timestamp: u32,
    pub marker: bool,
    pub len: usize,
}

/// DTMF arriving at a line: RFC 4733 packets and, optionally, tones in the audio.
pub(super) struct DtmfIn {
    receiver: EventReceiver,
    detector: Option<DtmfDetector>,
}

impl DtmfIn {
    pub(super) fn new(cfg: &LineConfig, codec_rate: u32) -> Result<Self> {
        let clock = cfg.codec.rtp_clock_rate();
        Ok(Self {
            receiver: EventReceiver::new(clock),
            detector: if cfg.detect_inband_dtmf {
                Some(DtmfDetector::new(codec_rate)?)
            } else {
                None
            },
        })
    }

    pub(super) fn on_event_packet(&mut self, now: Duration, pkt: &RtpPacket<'_>) -> Option<LineEvent> {
        let ended = self
            .receiver
            .on_packet(now, pkt.timestamp(), pkt.marker(), pkt.payload())?;
        Some(LineEvent::Dtmf {
            digit: ended.digit,
            source: DtmfSource::Rfc4733,
            duration_ms: ended.duration_ms,
        })
    }

    pub(super) fn detect(&mut self, pcm: &[i16]) -> Option<LineEvent> {
        let det = self.detector.as_mut()?;
        let digit = det.process(pcm)?;
        Some(LineEvent::Dtmf {
            digit: digit.digit,
            source: DtmfSource::Inband,
            duration_ms: digit.duration_ms,
        })
    }

    pub(super) fn poll(&mut self, now: Duration) -> Option<LineEvent> {
        let ended = self.receiver.poll_timeout(now)?;
        Some(LineEvent::Dtmf {
            digit: ended.digit,
            source: DtmfSource::Rfc4733,
            duration_ms: ended.duration_ms,
        })
    }
}

/// DTMF a line sends: RFC 4733 packets or tones, one digit at a time from a queue.
pub(super) struct DtmfOut {
    mode: DtmfMode,
    queue: VecDeque<(char, u32)>,
    sender: EventSender,
    tones: ToneGenerator,
}

/// Digits queued at most; more are refused so a runaway caller cannot grow memory.
const MAX_QUEUED_DIGITS: usize = 64;

impl DtmfOut {
    pub(super) fn new(cfg: &LineConfig, codec_rate: u32) -> Result<Self> {
        Ok(Self {
            mode: cfg.dtmf_mode,
            queue: VecDeque::new(),
            sender: EventSender::new(cfg.codec.rtp_clock_rate()),
            tones: ToneGenerator::new(codec_rate)?,
        })
    }

    pub(super) fn queue(&mut self, digit: char, duration_ms: u32) -> Result<()> {
        if !matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D' | 'a'..='d') {
            return Err(MediaError::invalid(format!(
                "not a DTMF digit: {digit:?} (expected 0-9, *, #, A-D)"
            )));
        }
        if !(40..=8000).contains(&duration_ms) {
            return Err(MediaError::invalid(format!(
                "DTMF duration must be 40..=8000 ms, got {duration_ms}"
            )));
        }
        match self.mode {
            DtmfMode::None => Err(MediaError::invalid(
                "this line's DTMF method is 'none': send the digit by signalling (SIP INFO)",
            )),
            DtmfMode::Rfc4733 => self.sender.queue(digit.to_ascii_uppercase(), duration_ms),
            DtmfMode::Inband => self.tones.queue(digit.to_ascii_uppercase(), duration_ms),
        }
        .and_then(|()| {
            if self.queue.len() >= MAX_QUEUED_DIGITS {
                Err(MediaError::invalid("too many DTMF digits queued"))
            } else {
                Ok(())
            }
        })
    }

    pub(super) fn next_event_packet(
        &mut self,
        ts: u32,
        samples: u32,
        out: &mut [u8],
    ) -> Option<EventPacket> {
        let p = self.sender.next_packet(ts, samples, out)?;
        Some(EventPacket {
            timestamp: p.timestamp,
            marker: p.marker,
            len: p.len,
        })
    }

    pub(super) fn mix_inband(&mut self, pcm: &mut [i16]) {
        self.tones.fill(pcm);
    }
}
