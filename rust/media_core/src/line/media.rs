//! The line's adapters over the codec, RTP and DTMF modules: building codecs from a
//! configuration, writing RTP headers, and DTMF in both directions.

use std::collections::VecDeque;
use std::time::Duration;

use super::{DtmfSource, LineConfig, LineEvent};
use crate::codec::g711::Law;
use crate::codec::opus::{OpusDecoder, OpusEncoder, OpusSettings};
use crate::codec::plc::{G711Decoder, G711Encoder};
use crate::codec::{Decoder, Encoder};
use crate::dtmf::goertzel::{DtmfDetector, DtmfEvent};
use crate::dtmf::rfc4733::{EventReceiver, EventSender, ReceivedEvent, SenderSettings};
use crate::dtmf::tones::{ToneGenerator, ToneSettings};
use crate::dtmf::{char_to_event, event_to_char};
use crate::error::{MediaError, Result};
use crate::line::{CodecKind, DtmfMode};
use crate::rtp::{RtpHeader, RtpPacket};

/// A line's codec pair and the PCM rate it runs at.
pub type CodecPair = (Box<dyn Encoder>, Box<dyn Decoder>, u32);

/// The encoder, decoder and PCM rate of a line's codec. G.711 runs at 8 kHz; Opus runs at the
/// line's PCM rate (8, 16 or 48 kHz are all native Opus rates), so no resampler is needed.
pub fn make_codec(cfg: &LineConfig) -> Result<CodecPair> {
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
                bitrate_bps: i32::try_from(cfg.opus.bitrate_bps)
                    .map_err(|_| MediaError::invalid("opus bitrate out of range"))?,
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
    let header = RtpHeader {
        marker,
        payload_type: pt,
        sequence: seq,
        timestamp: ts,
        ssrc,
    };
    crate::rtp::write_rtp(&header, payload, out)
}

/// A telephone-event packet to send.
pub(super) struct EventPacket {
    pub timestamp: u32,
    pub marker: bool,
    pub len: usize,
}

fn dtmf_event(digit: char, source: DtmfSource, duration_ms: u64) -> LineEvent {
    LineEvent::Dtmf {
        digit,
        source,
        duration_ms: u32::try_from(duration_ms).unwrap_or(u32::MAX),
    }
}

/// DTMF arriving at a line: RFC 4733 packets and, optionally, tones in the audio. Digits are
/// reported when they end, with their duration.
pub(super) struct DtmfIn {
    clock_rate: u32,
    codec_rate: u32,
    receiver: EventReceiver,
    detector: Option<DtmfDetector>,
}

impl DtmfIn {
    pub(super) fn new(cfg: &LineConfig, codec_rate: u32) -> Result<Self> {
        Ok(Self {
            clock_rate: cfg.codec.rtp_clock_rate(),
            codec_rate,
            receiver: EventReceiver::new(),
            detector: if cfg.detect_inband_dtmf {
                Some(DtmfDetector::new(codec_rate)?)
            } else {
                None
            },
        })
    }

    fn received(&self, ev: ReceivedEvent, events: &mut VecDeque<LineEvent>) {
        if let ReceivedEvent::End {
            event, duration, ..
        } = ev
        {
            if let Some(digit) = event_to_char(event) {
                let ms = u64::from(duration) * 1000 / u64::from(self.clock_rate.max(1));
                events.push_back(dtmf_event(digit, DtmfSource::Rfc4733, ms));
            }
        }
    }

    /// A telephone-event packet arrived; a malformed payload is ignored.
    pub(super) fn on_event_packet(
        &mut self,
        now: Duration,
        pkt: &RtpPacket<'_>,
        events: &mut VecDeque<LineEvent>,
    ) {
        let mut ended = Vec::new();
        let _ = self
            .receiver
            .on_packet(now, pkt.timestamp, pkt.marker, pkt.payload, |ev| {
                ended.push(ev)
            });
        for ev in ended {
            self.received(ev, events);
        }
    }

    /// Runs the in-band detector over one frame of decoded audio.
    pub(super) fn detect(&mut self, pcm: &[i16], events: &mut VecDeque<LineEvent>) {
        let rate = u64::from(self.codec_rate.max(1));
        if let Some(det) = self.detector.as_mut() {
            det.process(pcm, |ev| {
                if let DtmfEvent::End { digit, start, end } = ev {
                    let ms = end.saturating_sub(start) * 1000 / rate;
                    events.push_back(dtmf_event(digit, DtmfSource::Inband, ms));
                }
            });
        }
    }

    /// Ends an RFC 4733 event whose end packets never came.
    pub(super) fn poll(&mut self, now: Duration, events: &mut VecDeque<LineEvent>) {
        let mut ended = Vec::new();
        self.receiver.poll(now, |ev| ended.push(ev));
        for ev in ended {
            self.received(ev, events);
        }
    }
}

/// DTMF a line sends: RFC 4733 packets in place of audio, or tones mixed into it.
pub(super) struct DtmfOut {
    mode: DtmfMode,
    sender: EventSender,
    tones: ToneGenerator,
}

impl DtmfOut {
    pub(super) fn new(cfg: &LineConfig, codec_rate: u32) -> Result<Self> {
        Ok(Self {
            mode: cfg.dtmf_mode,
            sender: EventSender::new(&SenderSettings {
                clock_rate: cfg.codec.rtp_clock_rate(),
                ptime_ms: cfg.ptime_ms,
                ..SenderSettings::default()
            })?,
            tones: ToneGenerator::new(codec_rate, &ToneSettings::default())?,
        })
    }

    /// Queues one digit by the line's method.
    pub(super) fn queue(&mut self, digit: char, duration_ms: u32) -> Result<()> {
        let Some(code) = char_to_event(digit.to_ascii_uppercase()) else {
            return Err(MediaError::invalid(format!(
                "not a DTMF digit: {digit:?} (expected 0-9, *, #, A-D)"
            )));
        };
        if !(40..=8000).contains(&duration_ms) {
            return Err(MediaError::invalid(format!(
                "DTMF duration must be 40..=8000 ms, got {duration_ms}"
            )));
        }
        match self.mode {
            DtmfMode::None => Err(MediaError::invalid(
                "this line's DTMF method is 'none': send the digit by signalling (SIP INFO)",
            )),
            DtmfMode::Rfc4733 => self.sender.queue_with_duration(code, duration_ms),
            DtmfMode::Inband => {
                // The generator plays every digit with one duration: the latest asked for.
                let settings = ToneSettings {
                    on_ms: duration_ms.max(50),
                    ..*self.tones.settings()
                };
                self.tones.set_settings(&settings)?;
                self.tones.queue(digit)
            }
        }
    }

    /// The telephone-event packet to send instead of this tick's audio, if an event is on.
    pub(super) fn next_event_packet(&mut self, ts: u32, out: &mut [u8]) -> Option<EventPacket> {
        let p = self.sender.next_packet(ts)?;
        let payload = p.payload();
        let len = payload.len().min(out.len());
        out[..len].copy_from_slice(&payload[..len]);
        Some(EventPacket {
            timestamp: p.timestamp,
            marker: p.marker,
            len,
        })
    }

    /// Replaces the frame with tones while in-band digits play.
    pub(super) fn mix_inband(&mut self, pcm: &mut [i16]) {
        self.tones.fill(pcm);
    }
}
