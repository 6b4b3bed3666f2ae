//! RTCP (RFC 3550 §6): compound packets parsed without copying, written into a caller's buffer;
//! NTP timestamps, round-trip time from report blocks, and the report interval (§6.3).
//!
//! Parsed: SR (200), RR (201), SDES (202), BYE (203). Other packet types (APP, RTPFB, PSFB, XR)
//! are returned as [`RtcpPacket::Unknown`] and otherwise ignored.

use std::time::Duration;

use super::packet::SplitMix64;
use crate::error::{MediaError, Result};

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// RTCP packet types (RFC 3550 §12.1).
const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_SDES: u8 = 202;
const PT_BYE: u8 = 203;

/// A 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, fraction in the low 32
/// (RFC 3550 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// The NTP time of a wall-clock instant given as a duration since the Unix epoch.
    pub fn from_unix(since_unix: Duration) -> Self {
        Self::from_since_1900(since_unix.saturating_add(Duration::from_secs(NTP_UNIX_OFFSET)))
    }

    /// The NTP time for a duration since 1900 (wraps at the era boundary like NTP itself).
    pub fn from_since_1900(d: Duration) -> Self {
        let secs = d.as_secs() & 0xFFFF_FFFF;
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        Self((secs << 32) | frac)
    }

    /// The middle 32 bits (16.16 fixed point), the form LSR and RTT arithmetic use (§6.4.1).
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }

    /// Converts a 16.16 "NTP short" value (LSR, DLSR, RTT) to a duration.
    pub fn short_to_duration(v: u32) -> Duration {
        let secs = u64::from(v >> 16);
        let nanos = (u64::from(v & 0xFFFF) * 1_000_000_000) >> 16;
        Duration::new(secs, nanos as u32)
    }

    /// Converts a duration to 16.16 units, saturating at `u32::MAX` (about 18 hours).
    pub fn duration_to_short(d: Duration) -> u32 {
        let units = d.as_nanos().saturating_mul(65_536) / 1_000_000_000;
        u32::try_from(units).unwrap_or(u32::MAX)
    }
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, a 24-bit signed value (-8388608..=8388607).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP time, 0 if none.
    pub lsr: u32,
    /// Delay since that SR in 1/65536 s, 0 if none.
    pub dlsr: u32,
}

impl ReportBlock {
    const LEN: usize = 24;

    fn parse(b: &[u8]) -> Option<Self> {
        let b = b.get(..Self::LEN)?;
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost24 = word(4) & 0x00FF_FFFF;
        // Sign-extend the 24-bit field.
        let cumulative_lost = ((lost24 << 8) as i32) >> 8;
        Some(Self {
            ssrc: word(0),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: word(8),
            jitter: word(12),
            lsr: word(16),
            dlsr: word(20),
        })
    }

    fn write(&self, out: &mut [u8]) {
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        out[4..8].copy_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.lsr.to_be_bytes());
        out[20..24].copy_from_slice(&self.dlsr.to_be_bytes());
    }

    /// Round-trip time from this block, received at NTP time `arrival` (RFC 3550 §6.4.1,
    /// Figure 2): `A - LSR - DLSR` in 16.16 units.
    ///
    /// `None` when the block carries no LSR (no SR received by the peer yet) or the result would
    /// be negative (clock trouble).
    pub fn round_trip(&self, arrival: NtpTime) -> Option<Duration> {
        if self.lsr == 0 {
            return None;
        }
        let rtt = arrival
            .middle32()
            .wrapping_sub(self.lsr)
            .wrapping_sub(self.dlsr);
        if rtt > 0x8000_0000 {
            return None;
        }
        Some(NtpTime::short_to_duration(rtt))
    }
}

/// The sender-information part of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// Wall-clock time when the report was sent.
    pub ntp: NtpTime,
    /// The same instant in the RTP timestamp units of the stream.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

/// A report block list inside an SR or RR, iterated without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a>(&'a [u8]);

impl<'a> ReportBlocks<'a> {
    /// The blocks in order.
    pub fn iter(&self) -> impl Iterator<Item = ReportBlock> + 'a {
        self.0
            .chunks_exact(ReportBlock::LEN)
            .filter_map(ReportBlock::parse)
    }
    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.0.len() / ReportBlock::LEN
    }
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One SDES item (RFC 3550 §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    /// The source the item describes.
    pub ssrc: u32,
    /// Item type (1 = CNAME).
    pub kind: u8,
    /// The item's text, as bytes (UTF-8 per the RFC, not checked).
    pub value: &'a [u8],
}

/// The items of an SDES packet, validated at parse time and iterated without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesChunks<'a> {
    body: &'a [u8],
    count: usize,
}

impl<'a> SdesChunks<'a> {
    /// Walks chunks; returns the items, or `None` on malformed input.
    fn walk(body: &'a [u8], count: usize, mut f: impl FnMut(SdesItem<'a>)) -> Option<()> {
        let mut pos = 0usize;
        for _ in 0..count {
            let s = body.get(pos..pos + 4)?;
            let ssrc = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
            pos += 4;
            loop {
                let kind = *body.get(pos)?;
                if kind == 0 {
                    // End of list: skip to the next 32-bit boundary.
                    pos = (pos + 4) & !3;
                    break;
                }
                let len = usize::from(*body.get(pos + 1)?);
                let value = body.get(pos + 2..pos + 2 + len)?;
                f(SdesItem { ssrc, kind, value });
                pos += 2 + len;
            }
        }
        Some(())
    }

    /// All items in order.
    pub fn items(&self) -> impl Iterator<Item = SdesItem<'a>> {
        SdesIter {
            body: self.body,
            count: self.count,
            index: 0,
        }
    }

    /// The CNAME (item type 1) of `ssrc`, if present.
    pub fn cname(&self, ssrc: u32) -> Option<&'a [u8]> {
        self.items()
            .find(|i| i.ssrc == ssrc && i.kind == 1)
            .map(|i| i.value)
    }
}

/// Iterator over SDES items (re-walks from the start each step; SDES packets are tiny).
struct SdesIter<'a> {
    body: &'a [u8],
    count: usize,
    index: usize,
}

impl<'a> Iterator for SdesIter<'a> {
    type Item = SdesItem<'a>;
    fn next(&mut self) -> Option<SdesItem<'a>> {
        let mut n = 0usize;
        let mut found = None;
        SdesChunks::walk(self.body, self.count, |item| {
            if n == self.index {
                found = Some(item);
            }
            n += 1;
        })?;
        self.index += 1;
        found
    }
}

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// Sender report (PT 200).
    SenderReport {
        /// The sender's SSRC.
        ssrc: u32,
        /// Its sender information.
        info: SenderInfo,
        /// Its reception reports.
        blocks: ReportBlocks<'a>,
    },
    /// Receiver report (PT 201).
    ReceiverReport {
        /// The reporter's SSRC.
        ssrc: u32,
        /// Its reception reports.
        blocks: ReportBlocks<'a>,
    },
    /// Source description (PT 202).
    SourceDescription(SdesChunks<'a>),
    /// Goodbye (PT 203).
    Bye {
        /// The raw SSRC/CSRC list (4 bytes each); see [`RtcpPacket::bye_sources`].
        sources: &'a [u8],
        /// The optional reason text.
        reason: Option<&'a [u8]>,
    },
    /// Any other packet type, skipped.
    Unknown {
        /// The packet type.
        packet_type: u8,
        /// The count/subtype field (low 5 bits of the first byte).
        count: u8,
        /// The body after the 4-byte header, without padding.
        body: &'a [u8],
    },
}

impl<'a> RtcpPacket<'a> {
    /// The SSRCs leaving, for a BYE; empty otherwise.
    pub fn bye_sources(&self) -> impl Iterator<Item = u32> + 'a {
        let raw: &'a [u8] = match self {
            Self::Bye { sources, .. } => sources,
            _ => &[],
        };
        raw.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    fn parse(pt: u8, count: u8, body: &'a [u8]) -> Result<Self> {
        let count_us = usize::from(count);
        let bad = |what: &str| MediaError::Parse(format!("RTCP {what} (type {pt})"));
        let word = |b: &[u8], i: usize| -> Option<u32> {
            b.get(i..i + 4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        };
        match pt {
            PT_SR => {
                let ssrc = word(body, 0).ok_or_else(|| bad("sender report truncated"))?;
                let hi = word(body, 4).ok_or_else(|| bad("sender info truncated"))?;
                let lo = word(body, 8).ok_or_else(|| bad("sender info truncated"))?;
                let rtp_timestamp = word(body, 12).ok_or_else(|| bad("sender info truncated"))?;
                let packet_count = word(body, 16).ok_or_else(|| bad("sender info truncated"))?;
                let octet_count = word(body, 20).ok_or_else(|| bad("sender info truncated"))?;
                let blocks = body
                    .get(24..24 + count_us * ReportBlock::LEN)
                    .ok_or_else(|| bad("report blocks run past the packet"))?;
                Ok(Self::SenderReport {
                    ssrc,
                    info: SenderInfo {
                        ntp: NtpTime((u64::from(hi) << 32) | u64::from(lo)),
                        rtp_timestamp,
                        packet_count,
                        octet_count,
                    },
                    blocks: ReportBlocks(blocks),
                })
            }
            PT_RR => {
                let ssrc = word(body, 0).ok_or_else(|| bad("receiver report truncated"))?;
                let blocks = body
                    .get(4..4 + count_us * ReportBlock::LEN)
                    .ok_or_else(|| bad("report blocks run past the packet"))?;
                Ok(Self::ReceiverReport {
                    ssrc,
                    blocks: ReportBlocks(blocks),
                })
            }
            PT_SDES => {
                SdesChunks::walk(body, count_us, |_| {})
                    .ok_or_else(|| bad("SDES chunk malformed"))?;
                Ok(Self::SourceDescription(SdesChunks {
                    body,
                    count: count_us,
                }))
            }
            PT_BYE => {
                let sources = body
                    .get(..count_us * 4)
                    .ok_or_else(|| bad("BYE source list runs past the packet"))?;
                let rest = &body[count_us * 4..];
                let reason = match rest.first() {
                    Some(&len) if len > 0 => Some(
                        rest.get(1..1 + usize::from(len))
                            .ok_or_else(|| bad("BYE reason runs past the packet"))?,
                    ),
                    _ => None,
                };
                Ok(Self::Bye { sources, reason })
            }
            _ => Ok(Self::Unknown {
                packet_type: pt,
                count,
                body,
            }),
        }
    }
}

/// A validated compound RTCP packet (RFC 3550 §6.1), borrowing the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpCompound<'a> {
    buf: &'a [u8],
}

/// Splits one packet off the front: (packet type, count, body without padding, total length).
fn split_one(buf: &[u8]) -> Result<(u8, u8, &[u8], usize)> {
    let head = buf
        .get(..4)
        .ok_or_else(|| MediaError::Parse(format!("RTCP: {} bytes left, header is 4", buf.len())))?;
    let version = head[0] >> 6;
    if version != 2 {
        return Err(MediaError::Parse(format!(
            "RTCP: version {version}, expected 2"
        )));
    }
    let padding = head[0] & 0x20 != 0;
    let count = head[0] & 0x1F;
    let pt = head[1];
    let total = (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1) * 4;
    let packet = buf.get(..total).ok_or_else(|| {
        MediaError::Parse(format!(
            "RTCP: length field says {total} bytes, only {} left",
            buf.len()
        ))
    })?;
    let mut end = total;
    if padding {
        let pad = usize::from(packet[total - 1]);
        if pad == 0 || pad > total - 4 {
            return Err(MediaError::Parse(format!(
                "RTCP: padding count {pad} invalid for a {total}-byte packet"
            )));
        }
        end -= pad;
    }
    Ok((pt, count, &packet[4..end], total))
}

impl<'a> RtcpCompound<'a> {
    /// Validates every packet of a compound packet (version 2, lengths, padding, and the inner
    /// structure of SR, RR, SDES and BYE). Errors with [`MediaError::Parse`]; never panics.
    ///
    /// RFC 3550 §6.1 wants compound packets to start with SR or RR; RFC 5506 reduced-size RTCP
    /// relaxes that, so it is not enforced.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        if buf.is_empty() {
            return Err(MediaError::Parse("RTCP: empty packet".into()));
        }
        let mut rest = buf;
        while !rest.is_empty() {
            let (pt, count, body, total) = split_one(rest)?;
            RtcpPacket::parse(pt, count, body)?;
            rest = &rest[total..];
        }
        Ok(Self { buf })
    }

    /// The packets in order.
    pub fn packets(&self) -> impl Iterator<Item = RtcpPacket<'a>> {
        let mut rest = self.buf;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (pt, count, body, total) = split_one(rest).ok()?;
            rest = rest.get(total..).unwrap_or(&[]);
            RtcpPacket::parse(pt, count, body).ok()
        })
    }
}

/// Writes a compound RTCP packet into a caller's buffer, one packet at a time.
///
/// Each method errors ([`MediaError::InvalidArgument`]) if the packet does not fit or a list is
/// longer than 31 entries; the buffer is then left as it was before the call.
#[derive(Debug)]
pub struct RtcpWriter<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl<'a> RtcpWriter<'a> {
    /// A writer over `out`.
    pub fn new(out: &'a mut [u8]) -> Self {
        Self { out, len: 0 }
    }

    fn reserve(&mut self, total: usize) -> Result<&mut [u8]> {
        let start = self.len;
        let room = self.out.len() - start;
        let dst = self.out.get_mut(start..start + total).ok_or_else(|| {
            MediaError::invalid(format!("RTCP buffer: {total} bytes needed, {room} left"))
        })?;
        Ok(dst)
    }

    fn header(dst: &mut [u8], count: usize, pt: u8, total: usize) {
        dst[0] = 0x80 | (count as u8 & 0x1F);
        dst[1] = pt;
        dst[2..4].copy_from_slice(&((total / 4 - 1) as u16).to_be_bytes());
    }

    fn check_count(n: usize) -> Result<()> {
        if n > 31 {
            return Err(MediaError::invalid(format!(
                "RTCP: {n} entries, at most 31 fit one packet"
            )));
        }
        Ok(())
    }

    /// Appends a sender report (§6.4.1).
    pub fn sender_report(
        &mut self,
        ssrc: u32,
        info: &SenderInfo,
        blocks: &[ReportBlock],
    ) -> Result<()> {
        Self::check_count(blocks.len())?;
        let total = 28 + blocks.len() * ReportBlock::LEN;
        let dst = self.reserve(total)?;
        Self::header(dst, blocks.len(), PT_SR, total);
        dst[4..8].copy_from_slice(&ssrc.to_be_bytes());
        dst[8..16].copy_from_slice(&info.ntp.0.to_be_bytes());
        dst[16..20].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
        dst[20..24].copy_from_slice(&info.packet_count.to_be_bytes());
        dst[24..28].copy_from_slice(&info.octet_count.to_be_bytes());
        for (i, b) in blocks.iter().enumerate() {
            let at = 28 + i * ReportBlock::LEN;
            b.write(&mut dst[at..at + ReportBlock::LEN]);
        }
        self.len += total;
        Ok(())
    }

    /// Appends a receiver report (§6.4.2).
    pub fn receiver_report(&mut self, ssrc: u32, blocks: &[ReportBlock]) -> Result<()> {
        Self::check_count(blocks.len())?;
        let total = 8 + blocks.len() * ReportBlock::LEN;
        let dst = self.reserve(total)?;
        Self::header(dst, blocks.len(), PT_RR, total);
        dst[4..8].copy_from_slice(&ssrc.to_be_bytes());
        for (i, b) in blocks.iter().enumerate() {
            let at = 8 + i * ReportBlock::LEN;
            b.write(&mut dst[at..at + ReportBlock::LEN]);
        }
        self.len += total;
        Ok(())
    }

    /// Appends an SDES packet with one chunk holding a CNAME (§6.5.1; at most 255 bytes).
    pub fn sdes_cname(&mut self, ssrc: u32, cname: &[u8]) -> Result<()> {
        let n = u8::try_from(cname.len())
            .map_err(|_| MediaError::invalid("RTCP CNAME longer than 255 bytes"))?;
        // header 4 + ssrc 4 + type 1 + len 1 + text + at least one zero, padded to 4.
        let total = (4 + 4 + 2 + cname.len() + 1 + 3) & !3;
        let dst = self.reserve(total)?;
        Self::header(dst, 1, PT_SDES, total);
        dst[4..8].copy_from_slice(&ssrc.to_be_bytes());
        dst[8] = 1;
        dst[9] = n;
        dst[10..10 + cname.len()].copy_from_slice(cname);
        dst[10 + cname.len()..].fill(0);
        self.len += total;
        Ok(())
    }

    /// Appends a BYE for `sources` with an optional reason (§6.6; at most 255 bytes).
    pub fn bye(&mut self, sources: &[u32], reason: Option<&[u8]>) -> Result<()> {
        Self::check_count(sources.len())?;
        let reason = reason.unwrap_or(&[]);
        let rlen = u8::try_from(reason.len())
            .map_err(|_| MediaError::invalid("RTCP BYE reason longer than 255 bytes"))?;
        let body = sources.len() * 4
            + if reason.is_empty() {
                0
            } else {
                1 + reason.len()
            };
        let total = (4 + body + 3) & !3;
        let dst = self.reserve(total)?;
        Self::header(dst, sources.len(), PT_BYE, total);
        for (i, s) in sources.iter().enumerate() {
            dst[4 + i * 4..8 + i * 4].copy_from_slice(&s.to_be_bytes());
        }
        let at = 4 + sources.len() * 4;
        dst[at..].fill(0);
        if !reason.is_empty() {
            dst[at] = rlen;
            dst[at + 1..at + 1 + reason.len()].copy_from_slice(reason);
        }
        self.len += total;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finishes and returns the compound packet's length.
    pub fn finish(self) -> usize {
        self.len
    }
}

/// RTCP transmission timing, simplified from RFC 3550 §6.3 for two-party calls: a 5 s
/// deterministic interval (the §6.2 minimum), halved before the first report (§6.2 "initial"),
/// randomised uniformly in [0.5, 1.5] and divided by e − 3/2 ≈ 1.21828 (§6.3.1's
/// reconsideration compensation). Bandwidth-proportional scaling is not done: a call has two
/// members and its RTCP is far below 5 % of the session bandwidth at these intervals.
#[derive(Debug, Clone)]
pub struct RtcpScheduler {
    rng: SplitMix64,
    next: Duration,
    interval: Duration,
}

impl RtcpScheduler {
    /// The deterministic interval T.
    pub const INTERVAL: Duration = Duration::from_secs(5);

    /// A scheduler whose first report falls due around `now + 1.25 s` (randomised with `seed`).
    pub fn new(now: Duration, seed: u64) -> Self {
        let mut s = Self {
            rng: SplitMix64::new(seed),
            next: now,
            interval: Self::INTERVAL,
        };
        s.next = now.saturating_add(s.randomised(Self::INTERVAL / 2));
        s
    }

    fn randomised(&mut self, t: Duration) -> Duration {
        let factor = (0.5 + self.rng.next_f64()) / (std::f64::consts::E - 1.5);
        t.mul_f64(factor)
    }

    /// When the next report is due.
    pub fn poll_timeout(&self) -> Duration {
        self.next
    }

    /// True (once) when a report is due at `now`; schedules the following one.
    pub fn due(&mut self, now: Duration) -> bool {
        if now < self.next {
            return false;
        }
        let t = self.randomised(self.interval);
        self.next = now.saturating_add(t);
        true
    }
}
