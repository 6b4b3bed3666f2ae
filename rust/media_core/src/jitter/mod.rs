//! "NetEQ-lite": an adaptive, time-based jitter buffer for one RTP stream (media.md §6).
//!
//! # Model
//!
//! * **Storage.** Payloads live in a slot ring allocated once (`max_packets` slots of
//!   [`MAX_PAYLOAD`] bytes); slot = extended sequence number modulo the slot count, so every
//!   buffered packet lies in `[next_seq, next_seq + max_packets)`. Insertion, duplicate
//!   detection and playout are O(1) in the common case; nothing allocates per packet.
//! * **Playout clock.** [`JitterBuffer::pop`] is called once per frame tick. The buffer keeps a
//!   playout timestamp `play_ts` (extended RTP timestamp) that advances by `frame_samples` per
//!   tick; the packet whose timestamp is `play_ts` is played, a gap in sequence numbers is
//!   concealed ([`Playout::Missing`]), a timestamp gap without a sequence gap is silence (DTX,
//!   suppressed silence: [`Playout::Waiting`]).
//! * **Delay measurement.** For each packet, `d = arrival − timestamp` (both in µs); over a
//!   sliding window of 10 s (at most 512 packets, so 5.12 s at 10 ms packets),
//!   `r = d − min(d)` is the packet's delay relative to the fastest one. The *target delay*
//!   is the 95th percentile of `r`, rounded up to whole frames and clamped to
//!   `[min_delay, max_delay]`. The *current delay* is
//!   `now − time(play_ts) − min(d)`: a packet is on time exactly when its `r` is at most the
//!   current delay. Because `min(d)` follows the window, a sender clock running slightly fast
//!   or slow (skew) shows up as a drifting current delay, which the adaptation below corrects.
//! * **Adaptation** (the documented choice: discard/insert whole frames; time-stretching comes
//!   later, media.md §6 item 4):
//!   - *grow fast*: a late packet raises the target at once to its own `r`; while the current
//!     delay is below target, a tick does not advance the playout clock: during silence it
//!     lengthens the silence (free), during speech it returns `Missing { next: None }` so the
//!     decoder extends the signal (counted in `inserted_frames`, not as loss);
//!   - *shrink slowly*: the target falls by at most one frame per second, and only after the
//!     high delays have left the 10 s window; excess delay (current ≥ target + 1¼ frames) is
//!     removed by shortening silence, or during speech by discarding at most one frame per
//!     500 ms (pjmedia's "static" discard); above `max_delay` + 1 frame frames are discarded at
//!     once (`removed_frames`).
//! * **Resynchronisation** ([`ResyncReason`]): a new SSRC; two consecutive packets far off the
//!   sequence (RFC 3550 A.1 `MAX_DROPOUT` 3000 ahead or `MAX_MISORDER` 100 behind; the first
//!   is dropped as [`PushOutcome::OutOfRange`]); a timestamp whose `r` is beyond
//!   `max_delay + 0.5 s` or below −0.5 s; a marker packet (or eight packets in a row) that would
//!   be late while the buffer is empty (a new talkspurt on a new timeline). A resync flushes the
//!   buffer, clears the delay window, keeps the target delay, and buffers up to the target
//!   again before playing.
//!
//! Deviations from NetEQ: no time-stretching (accelerate/preemptive expand) — whole frames are
//! inserted/discarded; a packet longer or shorter than `frame_samples` is played whole (the
//! line keeps the rest for the next ticks and reports the length with
//! [`JitterBuffer::set_played_samples`]);
//! a late copy of an already played packet is counted as late, not duplicate.

use std::time::Duration;

use crate::error::{MediaError, Result};
use crate::rtp::stats::InterarrivalJitter;
pub use crate::rtp::stats::ResyncReason;
use crate::time::{extend_seq, extend_ts};

/// Largest payload a slot holds (an Ethernet MTU's worth); bigger payloads are refused.
pub const MAX_PAYLOAD: usize = 1500;
/// Upper bound on `max_packets` (memory: `MAX_PACKETS_LIMIT × MAX_PAYLOAD` ≈ 1.5 MB).
pub const MAX_PACKETS_LIMIT: usize = 1024;
const MIN_PACKETS: usize = 4;
const WINDOW: Duration = Duration::from_secs(10);
const WINDOW_CAP: usize = 512;
const RECOMPUTE_EVERY: u32 = 8;
const MAX_DROPOUT: u64 = 3000;
const MAX_MISORDER: u64 = 100;
const TS_JUMP_MARGIN_US: i64 = 500_000;
const LATE_RUN_RESYNC: u32 = 8;
const SPEECH_DISCARD_INTERVAL: Duration = Duration::from_millis(500);
const TARGET_DECAY_INTERVAL: Duration = Duration::from_secs(1);
const UNDERRUN_TO_SILENCE_US: i64 = 100_000;
const HIST_BUCKET_MS: u32 = 5;
const HIST_BUCKETS: usize = 400;

/// Configuration of one jitter buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate in Hz (8000 for G.711, 48000 for Opus).
    pub clock_rate: u32,
    /// Samples (timestamp units) per frame tick, i.e. per packet: 160 for 20 ms at 8 kHz.
    pub frame_samples: u32,
    /// Lowest target delay.
    pub min_delay: Duration,
    /// Highest target delay; also bounds how much audio the buffer holds.
    pub max_delay: Duration,
    /// Slots in the packet ring (clamped to 4..=1024).
    pub max_packets: usize,
}

impl JitterConfig {
    /// Defaults for voice: 20 ms minimum, 500 ms maximum, 64 packets.
    pub fn voice(clock_rate: u32, frame_samples: u32) -> Self {
        Self {
            clock_rate,
            frame_samples,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
            max_packets: 64,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.clock_rate == 0 || self.frame_samples == 0 {
            return Err(MediaError::invalid(
                "jitter buffer: clock_rate and frame_samples must be positive",
            ));
        }
        if u64::from(self.frame_samples) > u64::from(self.clock_rate) {
            return Err(MediaError::invalid(
                "jitter buffer: a frame longer than one second",
            ));
        }
        if self.min_delay > self.max_delay || self.max_delay > Duration::from_secs(10) {
            return Err(MediaError::invalid(
                "jitter buffer: need min_delay <= max_delay <= 10 s",
            ));
        }
        Ok(())
    }
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored (in order or reordered).
    Accepted,
    /// The same sequence number is already buffered; dropped.
    Duplicate,
    /// Its frame was already played or concealed; dropped (counted in `packets_late`).
    Late,
    /// Stored, but the ring was full and the oldest buffered packets were discarded.
    Overflow,
    /// The buffer started over at this packet (which is stored).
    Resync(ResyncReason),
    /// Far from the sequence; dropped. A second packet continuing from it causes a resync.
    OutOfRange,
    /// Empty or larger than [`MAX_PAYLOAD`]; dropped.
    Invalid,
}

/// What to play for one frame tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    /// Decode and play this payload.
    Packet(&'a [u8]),
    /// Conceal one frame. `next` is the packet following the gap when it is already buffered
    /// (Opus in-band FEC can rebuild the missing frame from it); the caller must not count it as
    /// played, it is returned again by a later `pop`.
    Missing {
        /// The next packet's payload, if buffered.
        next: Option<&'a [u8]>,
    },
    /// Nothing to play: before playout starts, or during silence. Play comfort silence.
    Waiting,
}

/// Counters and delays, named after WebRTC NetEQ's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JitterStats {
    /// Current playout delay beyond the fastest packet's path, ms.
    pub current_delay_ms: u32,
    /// Target delay, ms.
    pub target_delay_ms: u32,
    /// Mean time packets waited in the buffer before playout, ms.
    pub mean_delay_ms: f64,
    /// 95th percentile of that waiting time (5 ms resolution), ms.
    pub p95_delay_ms: u32,
    /// Packets given to `push` (all outcomes).
    pub packets_received: u64,
    /// Packets dropped as late.
    pub packets_late: u64,
    /// Sequence numbers skipped at playout that never arrived.
    pub packets_lost: u64,
    /// Duplicates dropped.
    pub packets_duplicate: u64,
    /// Packets that arrived after a higher sequence number (still played).
    pub packets_reordered: u64,
    /// Packets discarded because the ring was full.
    pub packets_overflow: u64,
    /// Packets dropped as out of range or invalid.
    pub packets_discarded: u64,
    /// Frames played from packets.
    pub frames_played: u64,
    /// Frames concealed for lost or late packets.
    pub concealed_frames: u64,
    /// Runs of consecutive concealed frames.
    pub concealment_events: u64,
    /// Frames inserted to grow the delay (also returned as `Missing`).
    pub inserted_frames: u64,
    /// Frames discarded to shrink the delay.
    pub removed_frames: u64,
    /// Resynchronisations.
    pub resyncs: u64,
    /// `packets_late / packets_received`.
    pub late_loss_rate: f64,
    /// `concealed_frames / (frames_played + concealed_frames)`.
    pub concealment_rate: f64,
    /// RFC 3550 interarrival jitter in timestamp units.
    pub interarrival_jitter: u32,
    /// The same in milliseconds.
    pub interarrival_jitter_ms: f64,
    /// Packets currently buffered.
    pub buffered_packets: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    used: bool,
    ext_seq: u64,
    ext_ts: u64,
    arrival: Duration,
    len: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Prefetch,
    Playing,
}

/// The jitter buffer of one RTP stream. See the module documentation for the model.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    frame_us: i64,
    slots: Vec<Slot>,
    data: Vec<u8>,
    state: State,
    ssrc: Option<u32>,
    next_seq: u64,
    highest_seq: u64,
    ts_ref: u64,
    anchor_ts: u64,
    play_ts: u64,
    buffered: usize,
    probation: Option<(u32, u16)>,
    // Delay window.
    win_arrival: Vec<i64>,
    win_d: Vec<i64>,
    win_head: usize,
    win_len: usize,
    scratch: Vec<i64>,
    min_d: Option<i64>,
    target_us: i64,
    since_recompute: u32,
    last_target_decay: Duration,
    // Playout state.
    in_silence: bool,
    underrun_us: i64,
    in_concealment: bool,
    last_discard: Option<Duration>,
    consecutive_late: u32,
    current_us: i64,
    ia_jitter: InterarrivalJitter,
    hist: [u32; HIST_BUCKETS],
    wait_sum_us: u128,
    stats: JitterStats,
}

/// Time values are kept within ±i64::MAX/8 µs (about 36,000 years) so that the sums and
/// differences below cannot overflow whatever `now` or timestamps a caller passes.
const TIME_LIMIT_US: i64 = i64::MAX / 8;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros())
        .unwrap_or(TIME_LIMIT_US)
        .min(TIME_LIMIT_US)
}

impl JitterBuffer {
    /// A jitter buffer for `cfg`. An invalid configuration (zero clock rate or frame, frames
    /// longer than 1 s, `min_delay > max_delay`, `max_delay` above 10 s) is replaced by
    /// [`JitterConfig::voice`] at 8 kHz / 20 ms; use [`JitterBuffer::try_new`] to get an error.
    pub fn new(cfg: JitterConfig) -> Self {
        match Self::try_new(cfg) {
            Ok(jb) => jb,
            Err(_) => Self::build(JitterConfig::voice(8000, 160)),
        }
    }

    /// Like [`JitterBuffer::new`] but rejects an invalid configuration with
    /// [`MediaError::InvalidArgument`].
    pub fn try_new(cfg: JitterConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self::build(cfg))
    }

    fn build(mut cfg: JitterConfig) -> Self {
        cfg.max_packets = cfg.max_packets.clamp(MIN_PACKETS, MAX_PACKETS_LIMIT);
        let frame_us =
            (i64::from(cfg.frame_samples) * 1_000_000 / i64::from(cfg.clock_rate)).max(1);
        Self {
            frame_us,
            slots: vec![Slot::default(); cfg.max_packets],
            data: vec![0; cfg.max_packets * MAX_PAYLOAD],
            state: State::Idle,
            ssrc: None,
            next_seq: 0,
            highest_seq: 0,
            ts_ref: 0,
            anchor_ts: 0,
            play_ts: 0,
            buffered: 0,
            probation: None,
            win_arrival: vec![0; WINDOW_CAP],
            win_d: vec![0; WINDOW_CAP],
            win_head: 0,
            win_len: 0,
            scratch: Vec::with_capacity(WINDOW_CAP),
            min_d: None,
            target_us: micros(cfg.min_delay),
            since_recompute: 0,
            last_target_decay: Duration::ZERO,
            in_silence: false,
            underrun_us: 0,
            in_concealment: false,
            last_discard: None,
            consecutive_late: 0,
            current_us: 0,
            ia_jitter: InterarrivalJitter::new(),
            hist: [0; HIST_BUCKETS],
            wait_sum_us: 0,
            stats: JitterStats::default(),
            cfg,
        }
    }

    /// The configuration in use (with `max_packets` clamped).
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// The SSRC being played, if any.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Packets currently buffered.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Heap and inline bytes this buffer holds (fixed at construction): about
    /// `max_packets × 1540 + 12.5 KiB`.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.data.capacity()
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + (self.win_arrival.capacity() + self.win_d.capacity() + self.scratch.capacity())
                * std::mem::size_of::<i64>()
    }

    /// The current target delay.
    pub fn target_delay(&self) -> Duration {
        Duration::from_micros(self.target_us.max(0) as u64)
    }

    fn ts_us(&self, ext_ts: u64) -> i64 {
        let units = i128::from(ext_ts) - i128::from(self.anchor_ts);
        let us = units * 1_000_000 / i128::from(self.cfg.clock_rate);
        us.clamp(i128::from(-TIME_LIMIT_US), i128::from(TIME_LIMIT_US)) as i64
    }

    fn clear_slots(&mut self) {
        for s in &mut self.slots {
            s.used = false;
        }
        self.buffered = 0;
    }

    fn start_stream(&mut self, ssrc: u32, seq: u16, ts: u32) {
        self.clear_slots();
        self.ssrc = Some(ssrc);
        self.next_seq = (1u64 << 16) | u64::from(seq);
        self.highest_seq = self.next_seq;
        self.ts_ref = (1u64 << 32) | u64::from(ts);
        self.anchor_ts = self.ts_ref;
        self.play_ts = self.ts_ref;
        self.state = State::Prefetch;
        self.probation = None;
        self.win_head = 0;
        self.win_len = 0;
        self.min_d = None;
        self.since_recompute = 0;
        self.in_silence = false;
        self.underrun_us = 0;
        self.in_concealment = false;
        self.consecutive_late = 0;
        self.ia_jitter.restart();
    }

    fn round_up_frames(&self, us: i64) -> i64 {
        let f = self.frame_us;
        ((us.max(0) + f - 1) / f) * f
    }

    fn clamp_target(&self, us: i64) -> i64 {
        us.clamp(micros(self.cfg.min_delay), micros(self.cfg.max_delay))
    }

    fn add_sample(&mut self, arrival_us: i64, d: i64) {
        let idx = (self.win_head + self.win_len) % WINDOW_CAP;
        if self.win_len == WINDOW_CAP {
            self.win_arrival[self.win_head] = arrival_us;
            self.win_d[self.win_head] = d;
            self.win_head = (self.win_head + 1) % WINDOW_CAP;
        } else {
            self.win_arrival[idx] = arrival_us;
            self.win_d[idx] = d;
            self.win_len += 1;
        }
        if self.min_d.is_none_or(|m| d < m) {
            self.min_d = Some(d);
        }
    }

    fn recompute_target(&mut self, now: Duration) {
        let horizon = micros(now) - micros(WINDOW);
        while self.win_len > 1 && self.win_arrival[self.win_head] < horizon {
            self.win_head = (self.win_head + 1) % WINDOW_CAP;
            self.win_len -= 1;
        }
        let mut min = i64::MAX;
        for i in 0..self.win_len {
            min = min.min(self.win_d[(self.win_head + i) % WINDOW_CAP]);
        }
        if self.win_len == 0 {
            return;
        }
        self.min_d = Some(min);
        self.scratch.clear();
        for i in 0..self.win_len {
            self.scratch
                .push(self.win_d[(self.win_head + i) % WINDOW_CAP] - min);
        }
        let k = (self.scratch.len() * 95).div_ceil(100).saturating_sub(1);
        let p95 = match self.scratch.get(k) {
            Some(_) => *self.scratch.select_nth_unstable(k).1,
            None => 0,
        };
        let wanted = self.clamp_target(self.round_up_frames(p95));
        if wanted > self.target_us {
            self.target_us = wanted;
            self.last_target_decay = now;
        } else if wanted < self.target_us
            && now.saturating_sub(self.last_target_decay) >= TARGET_DECAY_INTERVAL
        {
            self.target_us = (self.target_us - self.frame_us).max(wanted);
            self.last_target_decay = now;
        }
    }

    fn slot_of(&self, ext_seq: u64) -> usize {
        (ext_seq % self.slots.len() as u64) as usize
    }

    /// The slot index of the lowest buffered sequence number.
    fn head(&self) -> Option<usize> {
        if self.buffered == 0 {
            return None;
        }
        let span =
            (self.highest_seq.saturating_sub(self.next_seq) + 1).min(self.slots.len() as u64);
        (0..span)
            .map(|i| self.slot_of(self.next_seq + i))
            .find(|&i| {
                let s = &self.slots[i];
                s.used && s.ext_seq >= self.next_seq
            })
    }

    fn payload(&self, slot: usize) -> &[u8] {
        let start = slot * MAX_PAYLOAD;
        let len = usize::from(self.slots[slot].len);
        self.data.get(start..start + len).unwrap_or(&[])
    }

    fn free(&mut self, slot: usize) {
        if self.slots[slot].used {
            self.slots[slot].used = false;
            self.buffered -= 1;
        }
    }

    /// Offers one received packet (its RTP header fields and payload) at time `now`.
    ///
    /// Never panics; memory stays within what [`JitterBuffer::new`] allocated.
    pub fn push(
        &mut self,
        now: Duration,
        seq: u16,
        timestamp: u32,
        ssrc: u32,
        marker: bool,
        payload: &[u8],
    ) -> PushOutcome {
        self.stats.packets_received += 1;
        if payload.is_empty() || payload.len() > MAX_PAYLOAD {
            self.stats.packets_discarded += 1;
            return PushOutcome::Invalid;
        }
        let arrival_us = micros(now);
        let mut resync = None;
        match self.ssrc {
            None => self.start_stream(ssrc, seq, timestamp),
            Some(s) if s != ssrc => resync = Some(ResyncReason::SsrcChanged),
            Some(_) => {}
        }
        let mut ext_seq = extend_seq(self.highest_seq, seq);
        let mut ext_ts = extend_ts(self.ts_ref, timestamp);
        if resync.is_none() {
            let far_ahead = ext_seq > self.highest_seq + MAX_DROPOUT;
            let far_behind = ext_seq + MAX_MISORDER < self.next_seq;
            if far_ahead || far_behind {
                if self.probation == Some((ssrc, seq)) {
                    resync = Some(ResyncReason::SequenceJump);
                } else {
                    self.probation = Some((ssrc, seq.wrapping_add(1)));
                    self.stats.packets_discarded += 1;
                    return PushOutcome::OutOfRange;
                }
            }
        }
        if resync.is_none() {
            if let Some(min) = self.min_d {
                let r = arrival_us - self.ts_us(ext_ts) - min;
                if r > micros(self.cfg.max_delay) + TS_JUMP_MARGIN_US || r < -TS_JUMP_MARGIN_US {
                    resync = Some(ResyncReason::TimestampJump);
                }
            }
        }
        if resync.is_none() && self.state == State::Playing {
            let slot = self.slot_of(ext_seq);
            if self.slots[slot].used && self.slots[slot].ext_seq == ext_seq {
                self.stats.packets_duplicate += 1;
                return PushOutcome::Duplicate;
            }
            if ext_seq < self.next_seq || ext_ts < self.play_ts {
                self.consecutive_late += 1;
                if self.buffered == 0 && (marker || self.consecutive_late >= LATE_RUN_RESYNC) {
                    resync = Some(if marker {
                        ResyncReason::Talkspurt
                    } else {
                        ResyncReason::TimestampJump
                    });
                } else {
                    self.stats.packets_late += 1;
                    if ext_seq >= self.next_seq {
                        // Late by timestamp before its sequence number was skipped: skip it now
                        // so playout does not also count it as lost.
                        let before_head =
                            self.head().is_none_or(|h| self.slots[h].ext_seq > ext_seq);
                        if before_head {
                            self.next_seq = ext_seq + 1;
                        }
                    } else {
                        self.stats.packets_lost = self.stats.packets_lost.saturating_sub(1);
                    }
                    let d = arrival_us - self.ts_us(ext_ts);
                    if let Some(min) = self.min_d {
                        let bumped = self.clamp_target(self.round_up_frames(d - min));
                        if bumped > self.target_us {
                            self.target_us = bumped;
                            self.last_target_decay = now;
                        }
                    }
                    self.add_sample(arrival_us, d);
                    return PushOutcome::Late;
                }
            }
        }
        if resync.is_some() {
            self.start_stream(ssrc, seq, timestamp);
            self.stats.resyncs += 1;
            ext_seq = self.next_seq;
            ext_ts = self.ts_ref;
        }
        self.consecutive_late = 0;
        let slot = self.slot_of(ext_seq);
        if self.slots[slot].used && self.slots[slot].ext_seq == ext_seq {
            self.stats.packets_duplicate += 1;
            return PushOutcome::Duplicate;
        }
        let cap = self.slots.len() as u64;
        if ext_seq < self.next_seq {
            // Only reachable while prefetching: a reordered packet before the first one.
            if self.highest_seq - ext_seq < cap {
                self.next_seq = ext_seq;
            } else {
                self.stats.packets_late += 1;
                return PushOutcome::Late;
            }
        }
        let mut outcome = match resync {
            Some(r) => PushOutcome::Resync(r),
            None => PushOutcome::Accepted,
        };
        if ext_seq.saturating_sub(self.next_seq) >= cap {
            let new_next = ext_seq + 1 - cap;
            for i in 0..self.slots.len() {
                if self.slots[i].used && self.slots[i].ext_seq < new_next {
                    self.free(i);
                    self.stats.packets_overflow += 1;
                }
            }
            self.next_seq = new_next;
            if let Some(h) = self.head() {
                self.play_ts = self.play_ts.max(self.slots[h].ext_ts.min(ext_ts));
            } else {
                self.play_ts = self.play_ts.max(ext_ts);
            }
            outcome = PushOutcome::Overflow;
        }
        if ext_seq < self.highest_seq {
            self.stats.packets_reordered += 1;
        }
        self.highest_seq = self.highest_seq.max(ext_seq);
        self.ts_ref = self.ts_ref.max(ext_ts);
        self.slots[slot] = Slot {
            used: true,
            ext_seq,
            ext_ts,
            arrival: now,
            len: payload.len() as u16,
        };
        let start = slot * MAX_PAYLOAD;
        if let Some(dst) = self.data.get_mut(start..start + payload.len()) {
            dst.copy_from_slice(payload);
        }
        self.buffered += 1;
        self.ia_jitter.update(now, timestamp, self.cfg.clock_rate);
        let d = arrival_us - self.ts_us(ext_ts);
        let grows = self.min_d.is_some_and(|m| d - m > self.target_us);
        self.add_sample(arrival_us, d);
        self.since_recompute += 1;
        if self.since_recompute >= RECOMPUTE_EVERY || grows {
            self.since_recompute = 0;
            self.recompute_target(now);
        }
        outcome
    }

    fn current_delay(&self, now: Duration) -> i64 {
        micros(now) - self.ts_us(self.play_ts) - self.min_d.unwrap_or(0)
    }

    fn record_wait(&mut self, waited: Duration) {
        let us = micros(waited);
        self.wait_sum_us += us.max(0) as u128;
        let bucket = (us / 1000 / i64::from(HIST_BUCKET_MS)).clamp(0, HIST_BUCKETS as i64 - 1);
        self.hist[bucket as usize] += 1;
    }

    fn conceal(&mut self) {
        self.stats.concealed_frames += 1;
        if !self.in_concealment {
            self.stats.concealment_events += 1;
            self.in_concealment = true;
        }
    }

    /// Returns what to play for the frame tick at `now`. Call exactly once per tick of
    /// `frame_samples`.
    pub fn pop(&mut self, now: Duration) -> Playout<'_> {
        let frame = u64::from(self.cfg.frame_samples);
        match self.state {
            State::Idle => return Playout::Waiting,
            State::Prefetch => {
                let Some(h) = self.head() else {
                    return Playout::Waiting;
                };
                let head_ts = self.slots[h].ext_ts;
                let cur = micros(now) - self.ts_us(head_ts) - self.min_d.unwrap_or(0);
                self.current_us = cur;
                if cur < self.target_us {
                    return Playout::Waiting;
                }
                self.state = State::Playing;
                self.play_ts = head_ts;
                self.next_seq = self.slots[h].ext_seq;
                self.in_silence = false;
            }
            State::Playing => {}
        }
        // Bounded loop: each pass either returns or discards one buffered packet.
        for _ in 0..=self.slots.len() {
            let cur = self.current_delay(now);
            self.current_us = cur;
            let Some(h) = self.head() else {
                // Empty buffer: conceal briefly, then treat as silence.
                if self.in_silence || self.underrun_us >= UNDERRUN_TO_SILENCE_US {
                    self.in_silence = true;
                    self.in_concealment = false;
                    if cur >= self.target_us {
                        self.play_ts += frame;
                    }
                    return Playout::Waiting;
                }
                self.underrun_us += self.frame_us;
                self.play_ts += frame;
                self.conceal();
                return Playout::Missing { next: None };
            };
            let slot = self.slots[h];
            let ahead = slot.ext_ts as i64 - self.play_ts as i64;
            if ahead >= frame as i64 {
                if slot.ext_seq == self.next_seq {
                    // Timestamp gap without a sequence gap: silence.
                    self.in_silence = true;
                    self.in_concealment = false;
                    if cur < self.target_us {
                        return Playout::Waiting;
                    }
                    let step = if cur >= self.target_us + self.frame_us + self.frame_us / 4
                        && ahead >= 2 * frame as i64
                    {
                        self.stats.removed_frames += 1;
                        2 * frame
                    } else {
                        frame
                    };
                    self.play_ts += step;
                    return Playout::Waiting;
                }
                // Sequence gap: the packet(s) before the head are lost or late.
                self.next_seq += 1;
                self.play_ts += frame;
                self.stats.packets_lost += 1;
                self.in_silence = false;
                self.conceal();
                let next = self.head().filter(|&n| {
                    self.slots[n].ext_seq == self.next_seq && self.slots[n].ext_ts == self.play_ts
                });
                return Playout::Missing {
                    next: next.map(|n| self.payload(n)),
                };
            }
            // The head is due now.
            if cur < self.target_us {
                if self.in_silence {
                    // Lengthen the silence before the talkspurt: growing costs nothing here.
                    return Playout::Waiting;
                }
                self.stats.inserted_frames += 1;
                return Playout::Missing { next: None };
            }
            let too_much = cur > micros(self.cfg.max_delay) + self.frame_us;
            let excess = cur >= self.target_us + self.frame_us + self.frame_us / 4;
            let may_discard = self
                .last_discard
                .is_none_or(|t| now.saturating_sub(t) >= SPEECH_DISCARD_INTERVAL);
            if (too_much || (excess && may_discard)) && self.buffered > 1 {
                self.stats.removed_frames += 1;
                self.last_discard = Some(now);
                self.free(h);
                self.next_seq = slot.ext_seq + 1;
                self.play_ts = slot.ext_ts + frame;
                continue;
            }
            self.stats.packets_lost += slot.ext_seq.saturating_sub(self.next_seq);
            self.free(h);
            self.next_seq = slot.ext_seq + 1;
            self.play_ts = slot.ext_ts + frame;
            self.in_silence = false;
            self.in_concealment = false;
            self.underrun_us = 0;
            self.stats.frames_played += 1;
            self.record_wait(now.saturating_sub(slot.arrival));
            return Playout::Packet(self.payload(h));
        }
        Playout::Waiting
    }

    /// Tells the buffer how many samples the packet just returned by [`JitterBuffer::pop`]
    /// really held, when that differs from `frame_samples` (a peer sending 30 ms packets to a
    /// 20 ms line). The playout clock then continues after that packet's end, so the next
    /// packet is due where it starts. Call it right after a [`Playout::Packet`]; `samples` of 0
    /// or above one second are ignored.
    pub fn set_played_samples(&mut self, samples: u32) {
        if samples == 0 || samples > self.cfg.clock_rate || samples == self.cfg.frame_samples {
            return;
        }
        let frame = u64::from(self.cfg.frame_samples);
        self.play_ts = self.play_ts - frame.min(self.play_ts) + u64::from(samples);
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.current_delay_ms = (self.current_us.max(0) / 1000) as u32;
        s.target_delay_ms = (self.target_us.max(0) / 1000) as u32;
        if s.frames_played > 0 {
            s.mean_delay_ms = self.wait_sum_us as f64 / s.frames_played as f64 / 1000.0;
            let want = (s.frames_played * 95).div_ceil(100);
            let mut acc = 0u64;
            for (i, &c) in self.hist.iter().enumerate() {
                acc += u64::from(c);
                if acc >= want {
                    s.p95_delay_ms = (i as u32 + 1) * HIST_BUCKET_MS;
                    break;
                }
            }
        }
        if s.packets_received > 0 {
            s.late_loss_rate = s.packets_late as f64 / s.packets_received as f64;
        }
        let frames = s.frames_played + s.concealed_frames;
        if frames > 0 {
            s.concealment_rate = s.concealed_frames as f64 / frames as f64;
        }
        s.interarrival_jitter = self.ia_jitter.jitter();
        s.interarrival_jitter_ms =
            f64::from(s.interarrival_jitter) * 1000.0 / f64::from(self.cfg.clock_rate);
        s.buffered_packets = self.buffered;
        s
    }
}
