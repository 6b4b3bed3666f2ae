//! The per-stage workloads behind `run_stage`: each processes `frames` 20 ms frames of 8 kHz
//! speech through one piece of the media path, with the state a real line would have.

use std::net::SocketAddr;
use std::time::Duration;

use crate::codec::g711::Law;
use crate::codec::opus::{OpusDecoder, OpusEncoder, OpusSettings};
use crate::codec::plc::G711Decoder;
use crate::codec::Decoder;
use crate::dtmf::goertzel::DtmfDetector;
use crate::dtmf::rfc4733::EventReceiver;
use crate::error::{MediaError, Result};
use crate::jitter::{JitterBuffer, JitterConfig, Playout};
use crate::line::{CodecKind, Line, LineConfig};
use crate::resample::Resampler;
use crate::rtp::{write_rtp, RtpHeader, RtpPacket};

const FRAME: usize = 160;

pub(crate) fn run(stage: &str, speech: &[i16], frames: usize) -> Result<usize> {
    let frames_iter = speech.chunks_exact(FRAME).take(frames);
    let mut pcm = vec![0i16; 960];
    let mut codes = vec![0u8; 1500];
    match stage {
        "g711_encode" => frames_iter.for_each(|f| {
            Law::A.encode(f, &mut codes);
        }),
        "g711_decode" => {
            let mut enc = vec![0u8; speech.len()];
            Law::A.encode(speech, &mut enc);
            enc.chunks_exact(FRAME).take(frames).for_each(|c| {
                Law::A.decode(c, &mut pcm);
            });
        }
        "g711_plc" => {
            let mut dec = G711Decoder::new(Law::A);
            for (i, f) in frames_iter.enumerate() {
                Law::A.encode(f, &mut codes);
                if i % 5 == 4 {
                    dec.conceal(None, &mut pcm[..FRAME])?;
                } else {
                    dec.decode(&codes[..FRAME], &mut pcm[..FRAME])?;
                }
            }
        }
        "opus_encode_8k" | "opus_decode_8k" | "opus_encode_48k" => {
            let rate = if stage == "opus_encode_48k" {
                48_000
            } else {
                8_000
            };
            let mut enc = OpusEncoder::new(rate, 1, &OpusSettings::default())?;
            let mut up = Resampler::new(8_000, rate)?;
            let mut packets = Vec::with_capacity(frames);
            let n = (rate / 50) as usize;
            let mut input = vec![0i16; n];
            let encode_only = stage != "opus_decode_8k";
            for f in frames_iter {
                up.process(f, &mut input);
                let len = enc.encode(&input, &mut codes)?;
                if !encode_only {
                    packets.push(codes[..len].to_vec());
                }
            }
            if !encode_only {
                let mut dec = OpusDecoder::new(8_000, 1)?;
                for p in &packets {
                    dec.decode(p, &mut pcm[..FRAME])?;
                }
            }
        }
        "resample_8_48" => {
            let mut r = Resampler::new(8_000, 48_000)?;
            frames_iter.for_each(|f| {
                r.process(f, &mut pcm);
            });
        }
        "resample_48_8" => {
            let mut up = Resampler::new(8_000, 48_000)?;
            let mut down = Resampler::new(48_000, 8_000)?;
            let mut out = vec![0i16; FRAME];
            frames_iter.for_each(|f| {
                up.process(f, &mut pcm);
                down.process(&pcm, &mut out);
            });
        }
        "dtmf_detect" => {
            let mut d = DtmfDetector::new(8_000)?;
            frames_iter.for_each(|f| d.process(f, |_| {}));
        }
        "rfc4733_receive" => {
            let mut r = EventReceiver::new();
            for i in 0..frames as u32 {
                let ts = (i / 10) * 1600;
                let dur = ((i % 10) + 1) * 160;
                let end = if i % 10 == 9 { 0x80 } else { 0 };
                let payload = [(i / 10 % 16) as u8, end | 10, (dur >> 8) as u8, dur as u8];
                let now = Duration::from_millis(u64::from(i) * 20);
                r.on_packet(now, ts, i % 10 == 0, &payload, |_| {})?;
            }
        }
        "jitter_push_pop" => {
            let mut jb = JitterBuffer::try_new(JitterConfig {
                clock_rate: 8000,
                frame_samples: 160,
                min_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(300),
                max_packets: 64,
            })?;
            for (i, f) in frames_iter.enumerate() {
                Law::A.encode(f, &mut codes);
                let now = Duration::from_millis(i as u64 * 20 + (i as u64 * 7 % 13));
                // Swap neighbours now and then: the buffer reorders.
                let seq = if i % 8 == 3 {
                    i + 1
                } else if i % 8 == 4 {
                    i - 1
                } else {
                    i
                };
                jb.push(
                    now,
                    seq as u16,
                    (seq * 160) as u32,
                    7,
                    false,
                    &codes[..FRAME],
                );
                match jb.pop(now) {
                    Playout::Packet(p) => pcm[0] = i16::from(p[0]),
                    Playout::Missing { .. } | Playout::Waiting => pcm[0] = 0,
                }
            }
        }
        "rtp_parse_build" => {
            let mut pkt = vec![0u8; 1500];
            for (i, f) in frames_iter.enumerate() {
                Law::A.encode(f, &mut codes);
                let header = RtpHeader {
                    marker: i == 0,
                    payload_type: 8,
                    sequence: i as u16,
                    timestamp: (i * 160) as u32,
                    ssrc: 9,
                };
                let n = write_rtp(&header, &codes[..FRAME], &mut pkt)?;
                let p = RtpPacket::parse(&pkt[..n])?;
                pcm[0] = i16::from(p.payload[0]);
            }
        }
        "line_transcode_pair" => {
            // One Opus ⇄ G.711 call without sockets: both lines tick, packets cross in memory.
            let g711 = LineConfig {
                stats_interval: Duration::ZERO,
                ..LineConfig::default()
            };
            let opus = LineConfig {
                codec: CodecKind::Opus,
                payload_type: 111,
                detect_inband_dtmf: false,
                ..g711.clone()
            };
            let a_addr = SocketAddr::from(([127, 0, 0, 1], 1));
            let b_addr = SocketAddr::from(([127, 0, 0, 1], 2));
            let mut a = Line::new(g711, 1, 1, 1)?;
            let mut b = Line::new(opus, 2, 2, 2)?;
            a.start(Duration::ZERO, b_addr);
            b.start(Duration::ZERO, a_addr);
            let mut to_b = Vec::new();
            let mut to_a = Vec::new();
            for (i, f) in frames_iter.enumerate() {
                let now = Duration::from_millis(i as u64 * 20);
                a.push_pcm(f);
                b.push_pcm(f);
                a.tick(now, &mut |_, p| to_b.push(p.to_vec()));
                b.tick(now, &mut |_, p| to_a.push(p.to_vec()));
                for p in to_b.drain(..) {
                    b.handle_rtp(now, a_addr, &p);
                }
                for p in to_a.drain(..) {
                    a.handle_rtp(now, b_addr, &p);
                }
                a.pull_pcm(&mut pcm[..FRAME]);
                b.pull_pcm(&mut pcm[..FRAME]);
            }
        }
        other => {
            return Err(MediaError::invalid(format!("unknown stage {other:?}")));
        }
    }
    Ok(frames)
}
