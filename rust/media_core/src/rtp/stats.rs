//! Receiver statistics for one RTP source (RFC 3550 §6.4.1, Appendix A.1, A.3, A.8), and the
//! detection of source changes and sequence/timestamp jumps that call for a resynchronisation.

use std::time::Duration;

use super::rtcp::{NtpTime, ReportBlock};
use crate::time::{duration_to_ts, extend_seq, ts_delta};

/// Interarrival jitter estimator of RFC 3550 §6.4.1 / Appendix A.8, in timestamp units.
///
/// Uses the A.8 fixed-point form: the state holds 16 × J so the division by 16 keeps precision.
#[derive(Debug, Clone, Default)]
pub struct InterarrivalJitter {
    jitter16: u64,
    last_transit: Option<u32>,
}

impl InterarrivalJitter {
    /// A fresh estimator (J = 0).
    pub const fn new() -> Self {
        Self {
            jitter16: 0,
            last_transit: None,
        }
    }

    /// Feeds one packet: `arrival` (receiver time) and its RTP `timestamp` at `clock_rate`.
    ///
    /// `transit = arrival(in timestamp units) - timestamp`; `D = transit - last transit`;
    /// `J += (|D| - J) / 16` (A.8: `jitter += d - ((jitter + 8) >> 4)`).
    pub fn update(&mut self, arrival: Duration, timestamp: u32, clock_rate: u32) {
        let arrival_units = duration_to_ts(arrival, clock_rate) as u32;
        let transit = arrival_units.wrapping_sub(timestamp);
        if let Some(last) = self.last_transit {
            let d = u64::from(ts_delta(transit, last).unsigned_abs());
            self.jitter16 = (self.jitter16 + d).saturating_sub((self.jitter16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// The current estimate J in timestamp units (the value an RTCP report block carries).
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter16 >> 4).unwrap_or(u32::MAX)
    }

    /// Forgets the previous transit time (after a resynchronisation) but keeps J.
    pub fn restart(&mut self) {
        self.last_transit = None;
    }
}

/// Why a receiver (or a jitter buffer) started over on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// A packet from a new SSRC.
    SsrcChanged,
    /// Two consecutive packets far away from the expected sequence number (RFC 3550 A.1
    /// `MAX_DROPOUT`/`MAX_MISORDER`: the sender restarted).
    SequenceJump,
    /// The timestamp moved far from what the arrival time predicts.
    TimestampJump,
    /// A marker bit after a long silence, arriving where the old timeline would drop it.
    Talkspurt,
}

/// What [`ReceiverStats::update`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveOutcome {
    /// Counted; carries the extended sequence number.
    Counted(u64),
    /// The statistics restarted at this packet; carries the new extended sequence number.
    Resync(ResyncReason, u64),
    /// A stray packet far from the sequence: not counted; a second one in sequence after it
    /// restarts the statistics (A.1 `bad_seq`).
    Stray,
}

/// RFC 3550 A.1 limits.
const MAX_DROPOUT: u64 = 3000;
const MAX_MISORDER: u64 = 100;
/// A timestamp moving more than this many seconds away from the arrival clock is a jump.
const TS_JUMP_SECONDS: u64 = 10;

/// Per-source reception statistics from which RTCP report blocks are built.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    clock_rate: u32,
    ssrc: Option<u32>,
    base_seq: u64,
    max_seq: u64,
    bad_seq: Option<(u32, u16)>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    jitter: InterarrivalJitter,
    last_transit_ts: Option<(Duration, u32)>,
    last_sr: Option<(u32, Duration)>,
    resyncs: u64,
}

impl ReceiverStats {
    /// Statistics for a stream with an RTP clock of `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            ssrc: None,
            base_seq: 0,
            max_seq: 0,
            bad_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter: InterarrivalJitter::new(),
            last_transit_ts: None,
            last_sr: None,
            resyncs: 0,
        }
    }

    fn restart(&mut self, ssrc: u32, seq: u16) -> u64 {
        let ext = (1u64 << 16) | u64::from(seq);
        self.ssrc = Some(ssrc);
        self.base_seq = ext;
        self.max_seq = ext;
        self.bad_seq = None;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
        self.jitter.restart();
        self.last_transit_ts = None;
        ext
    }

    /// Counts one received packet (RFC 3550 A.1 `update_seq`, simplified: no probation for a
    /// new source, which SIP peers announce in SDP anyway).
    ///
    /// Detects a new SSRC, sequence jumps (two in-sequence packets beyond `MAX_DROPOUT`) and
    /// timestamp jumps (more than 10 s away from the arrival clock) and restarts on them.
    pub fn update(&mut self, now: Duration, seq: u16, timestamp: u32, ssrc: u32) -> ReceiveOutcome {
        let mut reason = None;
        match self.ssrc {
            None => {
                self.restart(ssrc, seq);
            }
            Some(s) if s != ssrc => {
                self.restart(ssrc, seq);
                reason = Some(ResyncReason::SsrcChanged);
            }
            Some(_) => {
                let ext = extend_seq(self.max_seq, seq);
                let ahead = ext.wrapping_sub(self.max_seq);
                let behind = self.max_seq.wrapping_sub(ext);
                let in_range = ext >= self.max_seq && ahead < MAX_DROPOUT
                    || ext < self.max_seq && behind <= MAX_MISORDER;
                if !in_range {
                    if self.bad_seq == Some((ssrc, seq)) {
                        self.restart(ssrc, seq);
                        reason = Some(ResyncReason::SequenceJump);
                    } else {
                        self.bad_seq = Some((ssrc, seq.wrapping_add(1)));
                        return ReceiveOutcome::Stray;
                    }
                } else if let Some((t0, ts0)) = self.last_transit_ts {
                    let elapsed =
                        i64::try_from(duration_to_ts(now.saturating_sub(t0), self.clock_rate))
                            .unwrap_or(i64::MAX);
                    let moved = i64::from(ts_delta(timestamp, ts0));
                    let limit = i64::from(self.clock_rate) * TS_JUMP_SECONDS as i64;
                    if moved.saturating_sub(elapsed).saturating_abs() > limit {
                        self.restart(ssrc, seq);
                        reason = Some(ResyncReason::TimestampJump);
                    }
                }
            }
        }
        let ext = extend_seq(self.max_seq, seq);
        if ext > self.max_seq {
            self.max_seq = ext;
        }
        self.bad_seq = None;
        self.received += 1;
        self.jitter.update(now, timestamp, self.clock_rate);
        self.last_transit_ts = Some((now, timestamp));
        match reason {
            Some(r) => {
                self.resyncs += 1;
                ReceiveOutcome::Resync(r, ext)
            }
            None => ReceiveOutcome::Counted(ext),
        }
    }

    /// Records a sender report's NTP time arriving at `now`, for LSR/DLSR (RFC 3550 §6.4.1).
    pub fn on_sender_report(&mut self, now: Duration, ntp: NtpTime) {
        self.last_sr = Some((ntp.middle32(), now));
    }

    /// The SSRC being received, if any.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }
    /// Packets counted since the last restart (duplicates included, as RFC 3550 counts them).
    pub fn received(&self) -> u64 {
        self.received
    }
    /// Packets expected since the last restart: extended highest - base + 1 (A.3).
    pub fn expected(&self) -> u64 {
        if self.ssrc.is_none() {
            0
        } else {
            self.max_seq - self.base_seq + 1
        }
    }
    /// Cumulative lost = expected - received (A.3), negative with duplicates.
    pub fn cumulative_lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }
    /// The extended highest sequence number as RTCP carries it (cycles in the high 16 bits,
    /// counted from the first packet, A.1).
    pub fn extended_highest(&self) -> u32 {
        (self.max_seq - (1u64 << 16)) as u32
    }
    /// Interarrival jitter in timestamp units (A.8).
    pub fn jitter(&self) -> u32 {
        self.jitter.jitter()
    }
    /// Times the statistics restarted on a resynchronisation.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Builds the report block for this source at `now` and starts a new reporting interval
    /// (fraction lost is per interval, A.3). `None` before the first packet.
    pub fn report_block(&mut self, now: Duration) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let cumulative = self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF) as i32;
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (lsr, NtpTime::duration_to_short(now.saturating_sub(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: cumulative,
            highest_seq: self.extended_highest(),
            jitter: self.jitter(),
            lsr,
            dlsr,
        })
    }
}
