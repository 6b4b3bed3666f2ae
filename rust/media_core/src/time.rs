//! Wrap-safe sequence numbers and timestamps, and RTP clock conversions.
//!
//! RTP sequence numbers (16 bits) and timestamps (32 bits) wrap around. The extenders here map
//! them onto monotonic 64-bit values by choosing, for each new value, the cycle that puts it
//! nearest to the highest value seen so far (RFC 3550 §A.1 keeps a cycle count the same way).
//! The first value is placed in cycle 1, so a packet that arrives slightly *before* the first
//! one (reordering across a wrap) still gets a non-negative extended value.

use std::time::Duration;

/// Extends `value` (the low `bits` bits of a counter) to the 64-bit value nearest `reference`.
///
/// Ties (exactly half a cycle away) resolve forwards. The result never underflows: values that
/// would fall below zero saturate to the same cycle as `reference`.
#[inline]
fn extend_nearest(reference: u64, value: u64, bits: u32) -> u64 {
    let cycle = 1u64 << bits;
    let mask = cycle - 1;
    let half = cycle >> 1;
    let candidate = (reference & !mask) | (value & mask);
    if candidate.wrapping_add(half) < reference && candidate <= u64::MAX - cycle {
        candidate + cycle
    } else if candidate > reference.saturating_add(half) && candidate >= cycle {
        candidate - cycle
    } else {
        candidate
    }
}

/// Extends a 16-bit sequence number to the 64-bit value nearest `reference` (a previously
/// extended sequence number). Pure function: use it to classify a packet without updating state.
#[inline]
pub fn extend_seq(reference: u64, seq: u16) -> u64 {
    extend_nearest(reference, u64::from(seq), 16)
}

/// Extends a 32-bit RTP timestamp to the 64-bit value nearest `reference`.
#[inline]
pub fn extend_ts(reference: u64, ts: u32) -> u64 {
    extend_nearest(reference, u64::from(ts), 32)
}

/// Signed distance `a - b` between two 16-bit sequence numbers, modulo 2^16 (RFC 1982 style).
#[inline]
pub fn seq_delta(a: u16, b: u16) -> i16 {
    a.wrapping_sub(b) as i16
}

/// Signed distance `a - b` between two 32-bit RTP timestamps, modulo 2^32.
#[inline]
pub fn ts_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Maps 16-bit RTP sequence numbers to monotonic 64-bit ones (RFC 3550 §A.1 cycle counting).
///
/// `extend` updates the highest value seen; `peek` classifies without updating.
#[derive(Debug, Clone, Default)]
pub struct SeqExtender {
    highest: Option<u64>,
}

impl SeqExtender {
    /// A fresh extender: the first sequence number lands in cycle 1 (`65536 + seq`).
    pub const fn new() -> Self {
        Self { highest: None }
    }

    /// Extends `seq` and remembers it as the highest value if it is newer.
    pub fn extend(&mut self, seq: u16) -> u64 {
        let ext = self.peek(seq);
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ext
    }

    /// Extends `seq` without changing the state.
    pub fn peek(&self, seq: u16) -> u64 {
        match self.highest {
            Some(h) => extend_seq(h, seq),
            None => (1u64 << 16) | u64::from(seq),
        }
    }

    /// The highest extended sequence number seen, if any.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Forgets all state (use on SSRC change or resynchronisation).
    pub fn reset(&mut self) {
        self.highest = None;
    }
}

/// Maps 32-bit RTP timestamps to monotonic 64-bit ones; the first lands in cycle 1.
#[derive(Debug, Clone, Default)]
pub struct TsExtender {
    highest: Option<u64>,
}

impl TsExtender {
    /// A fresh extender.
    pub const fn new() -> Self {
        Self { highest: None }
    }

    /// Extends `ts` and remembers it as the highest value if it is newer.
    pub fn extend(&mut self, ts: u32) -> u64 {
        let ext = self.peek(ts);
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ext
    }

    /// Extends `ts` without changing the state.
    pub fn peek(&self, ts: u32) -> u64 {
        match self.highest {
            Some(h) => extend_ts(h, ts),
            None => (1u64 << 32) | u64::from(ts),
        }
    }

    /// The highest extended timestamp seen, if any.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Forgets all state.
    pub fn reset(&mut self) {
        self.highest = None;
    }
}

/// Converts a count of RTP timestamp units at `clock_rate` Hz to a duration.
///
/// A `clock_rate` of 0 yields `Duration::ZERO` (never panics).
pub fn ts_to_duration(units: u64, clock_rate: u32) -> Duration {
    if clock_rate == 0 {
        return Duration::ZERO;
    }
    let rate = u64::from(clock_rate);
    let secs = units / rate;
    let rem = units % rate;
    // rem < rate <= u32::MAX, so rem * 1e9 fits in u64.
    let nanos = rem * 1_000_000_000 / rate;
    Duration::new(secs, nanos as u32)
}

/// Converts a duration to RTP timestamp units at `clock_rate` Hz, rounding down and saturating.
pub fn duration_to_ts(d: Duration, clock_rate: u32) -> u64 {
    let rate = u128::from(clock_rate);
    let units = d.as_nanos().saturating_mul(rate) / 1_000_000_000;
    u64::try_from(units).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_wraps_forward_and_back() {
        let mut e = SeqExtender::new();
        let a = e.extend(65534);
        let b = e.extend(65535);
        let c = e.extend(0);
        let d = e.extend(1);
        assert_eq!([b - a, c - b, d - c], [1, 1, 1]);
        // A late packet from before the wrap stays below.
        assert_eq!(e.extend(65533), a - 1);
        assert_eq!(e.highest(), Some(d));
    }

    #[test]
    fn first_value_reordered_before_start() {
        let mut e = SeqExtender::new();
        let first = e.extend(0);
        let before = e.extend(65535);
        assert_eq!(first - before, 1);
    }

    #[test]
    fn ts_wraps() {
        let mut e = TsExtender::new();
        let a = e.extend(u32::MAX - 159);
        let b = e.extend(0);
        assert_eq!(b - a, 160);
    }

    #[test]
    fn conversions() {
        assert_eq!(ts_to_duration(160, 8000), Duration::from_millis(20));
        assert_eq!(
            ts_to_duration(48_000 * 3 + 960, 48_000),
            Duration::from_millis(3020)
        );
        assert_eq!(duration_to_ts(Duration::from_millis(20), 48_000), 960);
        assert_eq!(ts_to_duration(5, 0), Duration::ZERO);
        assert_eq!(duration_to_ts(Duration::MAX, u32::MAX), u64::MAX);
        assert_eq!(seq_delta(0, 65535), 1);
        assert_eq!(ts_delta(5, u32::MAX), 6);
    }
}
