//! A line's RTCP (RFC 3550 §6): receiver statistics of the incoming stream, sender and receiver
//! reports every ~5 s, and the round-trip time and loss the far end reports about our stream.
//!
//! Reports travel on the RTP port (RFC 5761 multiplexing) when the line is opened with
//! `rtcp_mux`; otherwise the line still keeps the receiver statistics (they appear in its stats)
//! but sends no reports.

use std::time::Duration;

use crate::rtp::{NtpTime, ReceiverStats, RtcpCompound, RtcpPacket, RtcpScheduler, RtcpWriter};
use crate::rtp::{ReportBlock, SenderInfo};

/// What the far end told us about our stream, and the round trip.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RemoteReport {
    /// Round-trip time from the last report block that carried an LSR, in ms.
    pub rtt_ms: Option<f64>,
    /// The far end's fraction lost of our stream, 0..=1.
    pub fraction_lost: f64,
    /// The far end's cumulative lost count of our stream.
    pub cumulative_lost: i64,
    /// The far end's interarrival jitter of our stream, in RTP timestamp units.
    pub jitter: u32,
    /// Reports received.
    pub reports: u64,
}

pub(super) struct RtcpSession {
    scheduler: RtcpScheduler,
    rx: ReceiverStats,
    /// Unix time at the engine's epoch: `now` plus this is the wall clock for NTP fields.
    wall_offset: Duration,
    send: bool,
    packets_sent: u32,
    octets_sent: u32,
    remote: RemoteReport,
    buf: Vec<u8>,
}

/// Room for an SR with one block, SDES CNAME and padding.
const RTCP_BYTES: usize = 256;

impl RtcpSession {
    pub(super) fn new(
        now: Duration,
        seed: u64,
        clock_rate: u32,
        wall_offset: Duration,
        send: bool,
    ) -> Self {
        Self {
            scheduler: RtcpScheduler::new(now, seed),
            rx: ReceiverStats::new(clock_rate),
            wall_offset,
            send,
            packets_sent: 0,
            octets_sent: 0,
            remote: RemoteReport::default(),
            buf: vec![0; RTCP_BYTES],
        }
    }

    fn ntp(&self, now: Duration) -> NtpTime {
        NtpTime::from_unix(self.wall_offset + now)
    }

    pub(super) fn on_rtp(&mut self, now: Duration, seq: u16, ts: u32, ssrc: u32) {
        self.rx.update(now, seq, ts, ssrc);
    }

    pub(super) fn on_sent(&mut self, payload_len: usize) {
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload_len as u32);
    }

    /// Takes a received compound RTCP packet; malformed ones are ignored (returns false).
    pub(super) fn on_rtcp(&mut self, now: Duration, data: &[u8], our_ssrc: u32) -> bool {
        let Ok(compound) = RtcpCompound::parse(data) else {
            return false;
        };
        let arrival = self.ntp(now);
        for pkt in compound.packets() {
            let blocks = match pkt {
                RtcpPacket::SenderReport { info, blocks, .. } => {
                    self.rx.on_sender_report(now, info.ntp);
                    blocks
                }
                RtcpPacket::ReceiverReport { blocks, .. } => blocks,
                _ => continue,
            };
            for b in blocks.iter().filter(|b| b.ssrc == our_ssrc) {
                self.remote.reports += 1;
                self.remote.fraction_lost = f64::from(b.fraction_lost) / 256.0;
                self.remote.cumulative_lost = i64::from(b.cumulative_lost);
                self.remote.jitter = b.jitter;
                if let Some(rtt) = b.round_trip(arrival) {
                    self.remote.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
                }
            }
        }
        true
    }

    /// The report to send now, if one is due: an SR when we have sent media, else an RR, each
    /// with a report block on the incoming stream and our CNAME.
    pub(super) fn poll_send(&mut self, now: Duration, our_ssrc: u32, rtp_ts: u32) -> Option<&[u8]> {
        if !self.send || !self.scheduler.due(now) {
            return None;
        }
        let ntp = self.ntp(now);
        let block: Option<ReportBlock> = self.rx.report_block(now);
        let blocks = block.as_slice();
        let mut cname = [0u8; 17];
        let cname = {
            let text = format!("tgsip-{our_ssrc:08x}");
            let n = text.len().min(cname.len());
            cname[..n].copy_from_slice(&text.as_bytes()[..n]);
            &cname[..n]
        };
        let mut w = RtcpWriter::new(&mut self.buf);
        let written = if self.packets_sent > 0 {
            let info = SenderInfo {
                ntp,
                rtp_timestamp: rtp_ts,
                packet_count: self.packets_sent,
                octet_count: self.octets_sent,
            };
            w.sender_report(our_ssrc, &info, blocks)
        } else {
            w.receiver_report(our_ssrc, blocks)
        };
        written.ok()?;
        w.sdes_cname(our_ssrc, cname).ok()?;
        let n = w.finish();
        Some(&self.buf[..n])
    }

    /// A BYE for our source, sent when the line closes.
    pub(super) fn bye(&mut self, our_ssrc: u32) -> Option<&[u8]> {
        if !self.send {
            return None;
        }
        let mut w = RtcpWriter::new(&mut self.buf);
        w.receiver_report(our_ssrc, &[]).ok()?;
        w.bye(&[our_ssrc], None).ok()?;
        let n = w.finish();
        Some(&self.buf[..n])
    }

    pub(super) fn remote(&self) -> RemoteReport {
        self.remote
    }

    /// Loss of the incoming stream as RFC 3550 counts it: (expected, lost).
    pub(super) fn incoming(&self) -> (u64, i64) {
        (self.rx.expected(), self.rx.cumulative_lost())
    }
}
