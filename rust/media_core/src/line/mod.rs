//! A line: one call leg's media, as a sans-I/O state machine.
//!
//! A line receives RTP ([`Line::handle_rtp`]), plays it out through its jitter buffer and decoder
//! once per packet time ([`Line::tick`]), hands the decoded PCM to its peer and encodes the
//! peer's PCM into RTP. The peer is either a *PCM endpoint* (the Telegram side: Python pushes and
//! pulls 10 ms frames) or another line (SIP ⇄ SIP). Two bridged lines with the same codec and
//! packet time *relay*: packets are forwarded with rewritten headers and never decoded.
//!
//! Time is always an argument (`now`, a [`Duration`] since the engine's epoch); a line never
//! reads a clock, sleeps or touches a socket. Outgoing packets go to a caller-supplied sink and
//! events queue until [`Line::poll_event`] takes them, so the engine can drive many lines from
//! one thread and tests can drive one on a virtual clock.

pub mod config;
pub mod pcm_ring;
pub mod record;
mod rtcp;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use config::{CodecKind, DtmfMode, LineConfig, OpusConfig};
pub use pcm_ring::{PcmRing, RingStats};
use record::Recorder;
pub use rtcp::RemoteReport;
use rtcp::RtcpSession;

use crate::codec::{Decoder, Encoder};
use crate::error::{MediaError, Result};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
use crate::resample::Resampler;
use crate::rtp::RtpPacket;

mod media;
pub use media::make_codec;
use media::{DtmfIn, DtmfOut};

/// Largest RTP packet a line sends or accepts (Ethernet MTU minus IP and UDP headers).
pub const MAX_PACKET_BYTES: usize = 1472;
/// The elastic margin the PCM rings keep in hand, in milliseconds.
const RING_MARGIN_MS: u32 = 20;
/// Capacity of each PCM ring, in milliseconds.
const RING_CAPACITY_MS: u32 = 200;
/// Ticks a line may fall behind before it skips ahead instead of catching up.
const MAX_CATCH_UP_TICKS: u32 = 5;
/// Longest received packet a line plays whole (Opus allows 120 ms; longer G.711 payloads are
/// concealed instead).
const MAX_RX_PACKET_MS: usize = 120;
/// Packets a tick may take from the jitter buffer (10 ms packets on a 40 ms line).
const MAX_POPS_PER_TICK: u32 = 4;

/// Packet slots a line's jitter buffer needs: the largest delay in packets, plus room for
/// reordering and a burst. Slots are preallocated (up to 1,500 bytes each), so this is most of a
/// line's memory.
fn jitter_slots(cfg: &LineConfig) -> usize {
    let max_ms = cfg.jitter_max_delay.as_millis() as usize;
    max_ms / cfg.ptime_ms as usize + 8
}

/// How a digit reached the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// Tones in the audio, found by the detector.
    Inband,
}

/// Counters and gauges of a line, emitted periodically as [`LineEvent::Stats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineStats {
    /// RTP packets accepted.
    pub packets_received: u64,
    /// RTP packets sent.
    pub packets_sent: u64,
    /// Datagrams that were not valid RTP.
    pub malformed: u64,
    /// Packets from an address other than the latched remote.
    pub wrong_source: u64,
    /// Packets with a payload type the line did not negotiate.
    pub unknown_payload_type: u64,
    /// Packets relayed to the bridged line without decoding.
    pub relayed: u64,
    /// Ticks skipped because the line fell too far behind.
    pub skipped_ticks: u64,
    /// STUN/DTLS datagrams handed to the control plane.
    pub forwarded_datagrams: u64,
    /// The jitter buffer's statistics.
    pub jitter: JitterStats,
    /// Samples of silence sent because the peer's PCM did not arrive in time.
    pub send_underrun_samples: u64,
    /// Samples dropped because the peer's PCM arrived faster than it was sent.
    pub send_overrun_samples: u64,
    /// Packets of the incoming stream expected and lost, as RFC 3550 §6.4.1 counts them.
    pub rtp_expected: u64,
    /// See `rtp_expected`.
    pub rtp_lost: i64,
    /// RTCP packets received (reports about our stream are in `remote`).
    pub rtcp_received: u64,
    /// What the far end's RTCP reports say about our stream, and the round-trip time.
    pub remote: RemoteReport,
}

/// What a line reports to the control plane.
#[derive(Debug, Clone, PartialEq)]
pub enum LineEvent {
    /// A DTMF digit ended.
    Dtmf {
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
        /// How it arrived.
        source: DtmfSource,
        /// How long it lasted.
        duration_ms: u32,
    },
    /// No packet for the configured RTP timeout (reported once until packets flow again).
    RtpTimeout {
        /// Time since the last packet, or since the line started.
        silent_ms: u64,
    },
    /// The remote address was latched to the packets' source (symmetric RTP).
    RemoteLatched(SocketAddr),
    /// Periodic statistics.
    Stats(Box<LineStats>),
    /// A recording stopped and its file is complete.
    RecordingFinished {
        /// The WAV file.
        path: std::path::PathBuf,
        /// Its length.
        duration_ms: u64,
    },
    /// Something went wrong that the call may survive (for example the recording's disk filled).
    Error(String),
    /// A STUN or DTLS datagram (RFC 7983: first byte 0-3 or 20-63) for the control plane, on a
    /// line opened with `forward_non_rtp`.
    Datagram {
        /// Its source.
        from: SocketAddr,
        /// Its bytes.
        data: Vec<u8>,
    },
}

/// A received packet for the bridged line, when the two lines relay.
#[derive(Debug, Clone, Copy)]
pub struct Relay<'a> {
    /// Whether this is a telephone-event packet (else audio).
    pub event: bool,
    /// The RTP marker bit.
    pub marker: bool,
    /// Samples since the stream's first packet, at the RTP clock.
    pub ts_offset: u32,
    /// The payload, unchanged.
    pub payload: &'a [u8],
}

/// The RTP sending state of a line (RFC 3550 §5.1).
#[derive(Debug, Clone)]
struct RtpTx {
    ssrc: u32,
    seq: u16,
    ts: u32,
    marker_next: bool,
}

/// One line; see the module documentation.
pub struct Line {
    cfg: LineConfig,
    remote: Option<SocketAddr>,
    latched: bool,
    send_enabled: bool,
    tx: RtpTx,
    rx_ssrc: Option<u32>,
    rx_first_ts: Option<u32>,
    jitter: JitterBuffer,
    decoder: Box<dyn Decoder>,
    encoder: Box<dyn Encoder>,
    codec_rate: u32,
    res_in: Resampler,
    res_out: Resampler,
    dtmf_in: DtmfIn,
    dtmf_out: DtmfOut,
    /// Decoded audio for the peer, at the PCM rate.
    pub(crate) to_peer: PcmRing,
    /// The peer's audio to send, at the PCM rate.
    pub(crate) from_peer: PcmRing,
    codec_frame: Vec<i16>,
    /// Decoded samples not yet played: a received packet longer than our packet time is played
    /// over several ticks (`decoded[decoded_pos..decoded_len]`).
    decoded: Vec<i16>,
    decoded_pos: usize,
    decoded_len: usize,
    pcm_frame: Vec<i16>,
    sent_frame: Vec<i16>,
    payload: Vec<u8>,
    packet: Vec<u8>,
    relay: bool,
    next_tick: Option<Duration>,
    started_at: Option<Duration>,
    last_rx: Option<Duration>,
    timeout_reported: bool,
    next_stats: Option<Duration>,
    stats: LineStats,
    recorder: Option<Recorder>,
    events: VecDeque<LineEvent>,
    rtcp: RtcpSession,
    wall_offset: Duration,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line")
            .field("codec", &self.cfg.codec)
            .field("remote", &self.remote)
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl Line {
    /// Creates a line. `ssrc`, `seq` and `ts` seed the RTP sender (random in production, fixed
    /// in tests).
    pub fn new(cfg: LineConfig, ssrc: u32, seq: u16, ts: u32) -> Result<Self> {
        cfg.validate()?;
        let (encoder, decoder, codec_rate) = media::make_codec(&cfg)?;
        let pcm_frame = cfg.pcm_samples_per_packet();
        let codec_frame = (codec_rate / 1000 * cfg.ptime_ms) as usize;
        let ring_cap = (cfg.pcm_rate / 1000 * RING_CAPACITY_MS) as usize;
        let margin = (cfg.pcm_rate / 1000 * RING_MARGIN_MS) as usize;
        let jitter = JitterBuffer::try_new(JitterConfig {
            clock_rate: cfg.codec.rtp_clock_rate(),
            frame_samples: cfg.rtp_samples_per_packet(),
            min_delay: cfg.jitter_min_delay,
            max_delay: cfg.jitter_max_delay,
            max_packets: jitter_slots(&cfg),
        })?;
        Ok(Self {
            res_in: Resampler::new(codec_rate, cfg.pcm_rate)?,
            res_out: Resampler::new(cfg.pcm_rate, codec_rate)?,
            dtmf_in: DtmfIn::new(&cfg, codec_rate)?,
            dtmf_out: DtmfOut::new(&cfg, codec_rate)?,
            to_peer: PcmRing::with_margin(ring_cap, margin),
            from_peer: PcmRing::with_margin(ring_cap, margin),
            codec_frame: vec![0; codec_frame],
            decoded: vec![0; codec_frame + (codec_rate as usize / 1000) * MAX_RX_PACKET_MS],
            decoded_pos: 0,
            decoded_len: 0,
            pcm_frame: vec![0; pcm_frame],
            sent_frame: vec![0; pcm_frame],
            payload: vec![0; MAX_PACKET_BYTES],
            packet: vec![0; MAX_PACKET_BYTES],
            cfg: cfg.clone(),
            remote: None,
            latched: false,
            send_enabled: true,
            tx: RtpTx {
                ssrc,
                seq,
                ts,
                marker_next: true,
            },
            rx_ssrc: None,
            rx_first_ts: None,
            jitter,
            decoder,
            encoder,
            codec_rate,
            relay: false,
            next_tick: None,
            started_at: None,
            last_rx: None,
            timeout_reported: false,
            next_stats: None,
            stats: LineStats::default(),
            recorder: None,
            events: VecDeque::new(),
            rtcp: RtcpSession::new(
                Duration::ZERO,
                u64::from(ssrc) << 16 | u64::from(seq),
                cfg.codec.rtp_clock_rate(),
                Duration::ZERO,
                cfg.rtcp_mux,
            ),
            wall_offset: Duration::ZERO,
        })
    }

    /// The configuration the line was opened with.
    pub fn config(&self) -> &LineConfig {
        &self.cfg
    }

    /// Where packets go (after latching, the source of the remote's packets).
    pub fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// Sets the wall-clock time (since the Unix epoch) at `now == 0`, for RTCP's NTP fields.
    pub fn set_wall_clock(&mut self, unix_at_zero: Duration) {
        self.wall_offset = unix_at_zero;
    }

    /// Sends an RTCP BYE (with `rtcp_mux`) before the line goes away.
    pub fn finish(&mut self, sink: &mut dyn FnMut(SocketAddr, &[u8])) {
        let ssrc = self.tx.ssrc;
        if let (Some(remote), Some(bye)) = (self.remote, self.rtcp.bye(ssrc)) {
            sink(remote, bye);
        }
    }

    /// Sets the remote address from the SDP and starts the line's clock at `now`.
    pub fn start(&mut self, now: Duration, remote: SocketAddr) {
        self.remote = Some(remote);
        self.latched = false;
        if self.started_at.is_none() {
            self.started_at = Some(now);
            // Reports start about 2.5 s after the line does (RFC 3550 §6.2: half an interval).
            self.rtcp = RtcpSession::new(
                now,
                u64::from(self.tx.ssrc) << 16 | u64::from(self.tx.seq),
                self.cfg.codec.rtp_clock_rate(),
                self.wall_offset,
                self.cfg.rtcp_mux,
            );
            self.next_tick = Some(now);
            if !self.cfg.stats_interval.is_zero() {
                self.next_stats = Some(now + self.cfg.stats_interval);
            }
        }
    }

    /// Stops or resumes sending (hold: `sendonly`/`inactive` from the far end).
    pub fn set_sending(&mut self, enabled: bool) {
        if enabled && !self.send_enabled {
            self.tx.marker_next = true;
        }
        self.send_enabled = enabled;
    }

    /// Switches relay mode (set by the engine when two compatible lines are bridged).
    pub(crate) fn set_relay(&mut self, relay: bool) {
        self.relay = relay;
    }

    /// Whether two lines can relay packets to each other without decoding.
    pub fn can_relay_with(&self, other: &Line) -> bool {
        let a = &self.cfg;
        let b = &other.cfg;
        a.codec == b.codec
            && a.ptime_ms == b.ptime_ms
            && !a.detect_inband_dtmf
            && !b.detect_inband_dtmf
            && self.recorder.is_none()
            && other.recorder.is_none()
    }

    /// Queues a digit to send by the line's DTMF method (RFC 4733 or in-band). With method
    /// `none` the digit is refused: the signalling layer sends it (SIP INFO).
    pub fn send_dtmf(&mut self, digit: char, duration_ms: u32) -> Result<()> {
        self.dtmf_out.queue(digit, duration_ms)
    }

    /// Starts recording both directions to a WAV file at `path`.
    pub fn start_recording(&mut self, path: &Path) -> Result<()> {
        if self.recorder.is_some() {
            return Err(MediaError::invalid("the line is already recording"));
        }
        self.recorder = Some(Recorder::create(path, self.cfg.pcm_rate)?);
        Ok(())
    }

    /// Stops recording; a `RecordingFinished` event follows. Returns whether one was running.
    pub fn stop_recording(&mut self) -> bool {
        match self.recorder.take() {
            Some(rec) => {
                match rec.finish() {
                    Ok((path, duration_ms)) => self
                        .events
                        .push_back(LineEvent::RecordingFinished { path, duration_ms }),
                    Err(e) => self.events.push_back(LineEvent::Error(e.to_string())),
                }
                true
            }
            None => false,
        }
    }

    /// Takes one received datagram from `src`. In relay mode returns what to forward to the
    /// bridged line. Malformed and foreign packets are counted and dropped.
    pub fn handle_rtp<'a>(
        &mut self,
        now: Duration,
        src: SocketAddr,
        data: &'a [u8],
    ) -> Option<Relay<'a>> {
        if let Some(&first) = data.first() {
            if self.cfg.forward_non_rtp && (first <= 3 || (20..=63).contains(&first)) {
                self.stats.forwarded_datagrams += 1;
                self.events.push_back(LineEvent::Datagram {
                    from: src,
                    data: data.to_vec(),
                });
                return None;
            }
        }
        if data.len() >= 2 && (200..=207).contains(&data[1]) {
            // RTCP multiplexed on the RTP port (RFC 5761).
            if self.rtcp.on_rtcp(now, data, self.tx.ssrc) {
                self.stats.rtcp_received += 1;
            } else {
                self.stats.malformed += 1;
            }
            return None;
        }
        let Ok(pkt) = RtpPacket::parse(data) else {
            self.stats.malformed += 1;
            return None;
        };
        match self.remote {
            Some(r) if r == src => {}
            _ if self.cfg.symmetric_rtp && !self.latched => {
                self.remote = Some(src);
                self.latched = true;
                self.events.push_back(LineEvent::RemoteLatched(src));
            }
            Some(_) => {
                self.stats.wrong_source += 1;
                return None;
            }
            None => {
                self.stats.wrong_source += 1;
                return None;
            }
        }
        let pt = pkt.payload_type;
        let is_event = Some(pt) == self.cfg.telephone_event_pt;
        if pt != self.cfg.payload_type && !is_event {
            self.stats.unknown_payload_type += 1;
            return None;
        }
        self.stats.packets_received += 1;
        if !is_event {
            self.rtcp.on_rtp(now, pkt.sequence, pkt.timestamp, pkt.ssrc);
        }
        self.last_rx = Some(now);
        self.timeout_reported = false;
        if self.rx_ssrc != Some(pkt.ssrc) {
            self.rx_ssrc = Some(pkt.ssrc);
            self.rx_first_ts = Some(pkt.timestamp);
        }
        if is_event {
            self.dtmf_in.on_event_packet(now, &pkt, &mut self.events);
        } else if !self.relay {
            self.jitter.push(
                now,
                pkt.sequence,
                pkt.timestamp,
                pkt.ssrc,
                pkt.marker,
                pkt.payload,
            );
        }
        if self.relay {
            self.stats.relayed += 1;
            let first = self.rx_first_ts.unwrap_or(pkt.timestamp);
            return Some(Relay {
                event: is_event,
                marker: pkt.marker,
                ts_offset: pkt.timestamp.wrapping_sub(first),
                payload: pkt.payload,
            });
        }
        None
    }

    /// Sends a packet relayed from the bridged line, rewriting its header into this line's
    /// stream.
    pub fn send_relayed(&mut self, relay: &Relay<'_>, sink: &mut dyn FnMut(SocketAddr, &[u8])) {
        let (Some(remote), true) = (self.remote, self.send_enabled) else {
            return;
        };
        let pt = if relay.event {
            match self.cfg.telephone_event_pt {
                Some(pt) => pt,
                None => return,
            }
        } else {
            self.cfg.payload_type
        };
        let ts = self.tx.ts.wrapping_add(relay.ts_offset);
        if let Ok(n) = media::write_rtp(
            &mut self.packet,
            pt,
            relay.marker,
            self.tx.seq,
            ts,
            self.tx.ssrc,
            relay.payload,
        ) {
            self.tx.seq = self.tx.seq.wrapping_add(1);
            self.stats.packets_sent += 1;
            sink(remote, &self.packet[..n]);
        }
    }

    /// Runs every packet time that is due at `now`: plays out one frame towards the peer and
    /// sends one frame of the peer's audio. Packets go to `sink`.
    pub fn tick(&mut self, now: Duration, sink: &mut dyn FnMut(SocketAddr, &[u8])) {
        let Some(mut next) = self.next_tick else {
            return;
        };
        let ptime = Duration::from_millis(u64::from(self.cfg.ptime_ms));
        let mut ticks = 0;
        while next <= now {
            ticks += 1;
            if ticks > MAX_CATCH_UP_TICKS {
                let behind = (now - next).as_millis() as u64 / u64::from(self.cfg.ptime_ms);
                self.stats.skipped_ticks += behind + 1;
                next += ptime * (behind as u32 + 1);
                break;
            }
            if !self.relay {
                self.play_out(next);
                self.send_frame(sink);
            }
            next += ptime;
        }
        self.next_tick = Some(next);
        self.check_timers(now);
        if let Some(remote) = self.remote {
            if let Some(report) = self.rtcp.poll_send(now, self.tx.ssrc, self.tx.ts) {
                sink(remote, report);
            }
        }
    }

    /// When [`Line::tick`] next has work.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.next_tick
    }

    /// Takes the oldest queued event.
    pub fn poll_event(&mut self) -> Option<LineEvent> {
        self.events.pop_front()
    }

    /// The current statistics.
    pub fn stats(&self) -> LineStats {
        let mut s = self.stats.clone();
        s.jitter = self.jitter.stats();
        let ring = self.from_peer.stats();
        s.send_underrun_samples = ring.underrun_samples;
        s.send_overrun_samples = ring.overrun_samples;
        (s.rtp_expected, s.rtp_lost) = self.rtcp.incoming();
        s.remote = self.rtcp.remote();
        s
    }

    /// Pushes the peer's audio (PCM at the line's PCM rate) to be sent.
    pub fn push_pcm(&mut self, pcm: &[i16]) {
        self.from_peer.write(pcm);
    }

    /// Pulls one frame of received audio for the peer (silence while nothing is ready); returns
    /// whether it was real audio.
    pub fn pull_pcm(&mut self, out: &mut [i16]) -> bool {
        self.to_peer.read_elastic(out)
    }

    fn play_out(&mut self, now: Duration) {
        let n = self.codec_frame.len();
        let mut filled = self.take_decoded(0);
        // Received packets need not match our packet time: decode whole packets into
        // `decoded` and play them over as many ticks as they last (bounded: 10 ms packets at
        // most fill a 40 ms tick in four pops).
        let mut pops = 0;
        while filled < n && pops < MAX_POPS_PER_TICK {
            pops += 1;
            self.decoded_pos = 0;
            self.decoded_len = 0;
            let produced = match self.jitter.pop(now) {
                Playout::Packet(payload) => {
                    let out = &mut self.decoded[..];
                    match self.decoder.decode(payload, out) {
                        Ok(m) if m > 0 => {
                            // The jitter buffer counts in RTP clock units (48 kHz for Opus,
                            // whatever rate we decode at).
                            let rtp_units = m as u64 * u64::from(self.cfg.codec.rtp_clock_rate())
                                / u64::from(self.codec_rate.max(1));
                            self.jitter.set_played_samples(rtp_units as u32);
                            m
                        }
                        // An undecodable packet: conceal one frame in its place.
                        _ => self.decoder.conceal(None, &mut out[..n]).unwrap_or(0),
                    }
                }
                Playout::Missing { next } => self
                    .decoder
                    .conceal(next, &mut self.decoded[..n])
                    .unwrap_or(0),
                Playout::Waiting => {
                    // Nothing to play yet (or a silence gap): the peer hears silence.
                    self.codec_frame[filled..].fill(0);
                    filled = n;
                    break;
                }
            };
            if produced == 0 {
                self.decoded[..n].fill(0);
                self.decoded_len = n;
            } else {
                self.decoded_len = produced.min(self.decoded.len());
            }
            filled = self.take_decoded(filled);
        }
        self.codec_frame[filled..].fill(0);
        self.dtmf_in.detect(&self.codec_frame, &mut self.events);
        let produced = self.res_in.process(&self.codec_frame, &mut self.pcm_frame);
        self.to_peer.write(&self.pcm_frame[..produced]);
        if let Some(rec) = &mut self.recorder {
            if let Err(e) = rec.write(&self.pcm_frame[..produced], &self.sent_frame) {
                self.events.push_back(LineEvent::Error(e.to_string()));
                self.recorder = None;
            }
        }
    }

    /// Copies pending decoded samples into `codec_frame[filled..]`; returns the new fill.
    fn take_decoded(&mut self, filled: usize) -> usize {
        let want = self.codec_frame.len() - filled;
        let have = self.decoded_len - self.decoded_pos;
        let k = want.min(have);
        self.codec_frame[filled..filled + k]
            .copy_from_slice(&self.decoded[self.decoded_pos..self.decoded_pos + k]);
        self.decoded_pos += k;
        filled + k
    }

    fn send_frame(&mut self, sink: &mut dyn FnMut(SocketAddr, &[u8])) {
        self.from_peer.read_elastic(&mut self.sent_frame);
        let Some(remote) = self.remote else {
            return;
        };
        let samples = self.cfg.rtp_samples_per_packet();
        if !self.send_enabled {
            self.tx.ts = self.tx.ts.wrapping_add(samples);
            return;
        }
        // An RFC 4733 event replaces the audio while it lasts.
        if let Some(ev) = self
            .dtmf_out
            .next_event_packet(self.tx.ts, &mut self.payload)
        {
            if let Some(pt) = self.cfg.telephone_event_pt {
                if let Ok(len) = media::write_rtp(
                    &mut self.packet,
                    pt,
                    ev.marker,
                    self.tx.seq,
                    ev.timestamp,
                    self.tx.ssrc,
                    &self.payload[..ev.len],
                ) {
                    self.tx.seq = self.tx.seq.wrapping_add(1);
                    self.stats.packets_sent += 1;
                    sink(remote, &self.packet[..len]);
                }
            }
            self.tx.ts = self.tx.ts.wrapping_add(samples);
            self.tx.marker_next = false;
            return;
        }
        let produced = self
            .res_out
            .process(&self.sent_frame, &mut self.codec_frame);
        self.dtmf_out.mix_inband(&mut self.codec_frame[..produced]);
        let Ok(n) = self
            .encoder
            .encode(&self.codec_frame[..produced], &mut self.payload)
        else {
            self.tx.ts = self.tx.ts.wrapping_add(samples);
            return;
        };
        if let Ok(len) = media::write_rtp(
            &mut self.packet,
            self.cfg.payload_type,
            self.tx.marker_next,
            self.tx.seq,
            self.tx.ts,
            self.tx.ssrc,
            &self.payload[..n],
        ) {
            self.tx.seq = self.tx.seq.wrapping_add(1);
            self.stats.packets_sent += 1;
            self.rtcp.on_sent(n);
            self.tx.marker_next = false;
            sink(remote, &self.packet[..len]);
        }
        self.tx.ts = self.tx.ts.wrapping_add(samples);
    }

    fn check_timers(&mut self, now: Duration) {
        self.dtmf_in.poll(now, &mut self.events);
        if !self.cfg.rtp_timeout.is_zero() && !self.timeout_reported {
            if let Some(since) = self.last_rx.or(self.started_at) {
                let silent = now.saturating_sub(since);
                if silent >= self.cfg.rtp_timeout {
                    self.timeout_reported = true;
                    self.events.push_back(LineEvent::RtpTimeout {
                        silent_ms: silent.as_millis() as u64,
                    });
                }
            }
        }
        if let Some(at) = self.next_stats {
            if now >= at {
                self.next_stats = Some(now + self.cfg.stats_interval);
                self.events
                    .push_back(LineEvent::Stats(Box::new(self.stats())));
            }
        }
    }

    /// The codec's internal sample rate (8 kHz for G.711; the PCM rate for Opus).
    pub fn codec_rate(&self) -> u32 {
        self.codec_rate
    }
}
