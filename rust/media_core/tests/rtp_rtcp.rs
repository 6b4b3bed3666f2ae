//! RTCP (RFC 3550 §6): compound packets built and parsed back, unknown packet types skipped,
//! malformed packets rejected; receiver statistics (§6.4.1, A.1, A.3, A.8) against worked
//! examples; round-trip time from RFC 3550 Figure 2's numbers; the report interval (§6.3).

use std::time::Duration;

use media_core::rtp::{
    InterarrivalJitter, NtpTime, ReceiveOutcome, ReceiverStats, ReportBlock, ResyncReason,
    RtcpCompound, RtcpPacket, RtcpScheduler, RtcpWriter, SenderInfo,
};
use proptest::prelude::*;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[test]
fn compound_round_trip() {
    let block = ReportBlock {
        ssrc: 0x1111_2222,
        fraction_lost: 64,
        cumulative_lost: -3,
        highest_seq: 0x0001_0005,
        jitter: 42,
        lsr: 0xB705_2000,
        dlsr: 0x0005_4000,
    };
    let info = SenderInfo {
        ntp: NtpTime(0xE000_0000_8000_0000),
        rtp_timestamp: 160_000,
        packet_count: 1000,
        octet_count: 160_000,
    };
    let mut buf = [0u8; 512];
    let mut w = RtcpWriter::new(&mut buf);
    w.sender_report(0xAAAA_BBBB, &info, &[block]).expect("fits");
    w.sdes_cname(0xAAAA_BBBB, b"tgsip@example").expect("fits");
    w.bye(&[0xAAAA_BBBB], Some(b"hangup")).expect("fits");
    let n = w.finish();
    assert_eq!(n % 4, 0);
    let c = RtcpCompound::parse(&buf[..n]).expect("valid");
    let packets: Vec<_> = c.packets().collect();
    assert_eq!(packets.len(), 3);
    match packets[0] {
        RtcpPacket::SenderReport {
            ssrc,
            info: got,
            blocks,
        } => {
            assert_eq!(ssrc, 0xAAAA_BBBB);
            assert_eq!(got, info);
            assert_eq!(blocks.iter().collect::<Vec<_>>(), vec![block]);
        }
        other => panic!("expected SR, got {other:?}"),
    }
    match packets[1] {
        RtcpPacket::SourceDescription(s) => {
            assert_eq!(s.cname(0xAAAA_BBBB), Some(&b"tgsip@example"[..]));
            assert_eq!(s.cname(1), None);
        }
        other => panic!("expected SDES, got {other:?}"),
    }
    assert_eq!(
        packets[2].bye_sources().collect::<Vec<_>>(),
        vec![0xAAAA_BBBB]
    );
    assert!(matches!(
        packets[2],
        RtcpPacket::Bye {
            reason: Some(b"hangup"),
            ..
        }
    ));
}

#[test]
fn receiver_report_and_unknown_types() {
    let mut buf = [0u8; 256];
    let mut w = RtcpWriter::new(&mut buf);
    w.receiver_report(5, &[]).expect("fits");
    let mut n = w.finish();
    // Append an RTPFB (205) generic NACK the parser does not interpret.
    buf[n..n + 12].copy_from_slice(&[0x81, 205, 0, 2, 0, 0, 0, 5, 0, 0, 0, 9]);
    n += 12;
    let c = RtcpCompound::parse(&buf[..n]).expect("valid");
    let p: Vec<_> = c.packets().collect();
    assert!(matches!(p[0], RtcpPacket::ReceiverReport { ssrc: 5, blocks } if blocks.is_empty()));
    assert!(matches!(
        p[1],
        RtcpPacket::Unknown {
            packet_type: 205,
            count: 1,
            ..
        }
    ));
}

#[test]
fn cumulative_lost_is_24_bit_signed() {
    for lost in [-0x80_0000, -1, 0, 1, 0x7F_FFFF] {
        let b = ReportBlock {
            cumulative_lost: lost,
            ..ReportBlock::default()
        };
        let mut buf = [0u8; 64];
        let mut w = RtcpWriter::new(&mut buf);
        w.receiver_report(1, &[b]).expect("fits");
        let n = w.finish();
        let c = RtcpCompound::parse(&buf[..n]).expect("valid");
        let got = match c.packets().next() {
            Some(RtcpPacket::ReceiverReport { blocks, .. }) => blocks.iter().next(),
            _ => None,
        };
        assert_eq!(got.map(|b| b.cumulative_lost), Some(lost));
    }
}

#[test]
fn malformed_rtcp_is_rejected() {
    let cases: [&[u8]; 7] = [
        &[],
        &[0x80, 201],
        &[0x40, 201, 0, 1, 0, 0, 0, 1],                   // version 1
        &[0x80, 201, 0, 5, 0, 0, 0, 1],                   // length past the end
        &[0x81, 201, 0, 1, 0, 0, 0, 1],                   // one block announced, none there
        &[0xA0, 201, 0, 1, 0, 0, 0, 9],                   // padding 9 > packet
        &[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', b'b'], // SDES item runs past
    ];
    for case in cases {
        assert!(RtcpCompound::parse(case).is_err(), "{case:?} accepted");
    }
    let mut buf = [0u8; 16];
    let mut w = RtcpWriter::new(&mut buf);
    assert!(w.receiver_report(1, &[ReportBlock::default()]).is_err());
    assert!(w.receiver_report(1, &[ReportBlock::default(); 32]).is_err());
    assert!(w.is_empty());
}

#[test]
fn round_trip_time_rfc3550_figure_2() {
    // RFC 3550 §6.4.1 Figure 2: A = 0xb710:8000, LSR = 0xb705:2000, DLSR = 0x0005:4000 -> 6.125 s.
    let block = ReportBlock {
        lsr: 0xB705_2000,
        dlsr: 0x0005_4000,
        ..ReportBlock::default()
    };
    let arrival = NtpTime(0x0000_B710_8000_0000);
    assert_eq!(arrival.middle32(), 0xB710_8000);
    assert_eq!(block.round_trip(arrival), Some(Duration::from_millis(6125)));
    // No SR seen by the peer yet.
    let none = ReportBlock::default();
    assert_eq!(none.round_trip(arrival), None);
    // Arrival before LSR + DLSR: nonsense, not a huge RTT.
    assert_eq!(block.round_trip(NtpTime(0x0000_B705_0000_0000)), None);
}

#[test]
fn ntp_conversions() {
    let t = NtpTime::from_unix(Duration::new(0, 500_000_000));
    assert_eq!(t.0 >> 32, 2_208_988_800);
    assert_eq!(t.0 & 0xFFFF_FFFF, 0x8000_0000);
    assert_eq!(
        NtpTime::duration_to_short(Duration::from_millis(5250)),
        0x0005_4000
    );
    assert_eq!(
        NtpTime::short_to_duration(0x0005_4000),
        Duration::from_millis(5250)
    );
}

#[test]
fn interarrival_jitter_worked_example() {
    // 8 kHz, 20 ms packets (160 units). Arrivals at 0, 30, 40, 60 ms: transits 0, 80, 0, 0.
    // A.8 fixed point: J16 = 0 -> 80 -> 80+80-5 = 155 -> 155+0-10 = 145, so J = 5, 9, 9.
    let mut j = InterarrivalJitter::new();
    let mut seen = Vec::new();
    for (i, arrival) in [0u64, 30, 40, 60].into_iter().enumerate() {
        j.update(ms(arrival), 160 * i as u32, 8000);
        seen.push(j.jitter());
    }
    assert_eq!(seen, vec![0, 5, 9, 9]);
    // Float form of §6.4.1 for comparison: 5, 9.6875, 9.08 -> the fixed point stays within 1.
}

#[test]
fn receiver_stats_loss_fraction_and_report() {
    let mut r = ReceiverStats::new(8000);
    // 65530..=65535, 0..=3 with 65533 and 1 lost and 2 duplicated.
    let seqs: [u16; 9] = [65530, 65531, 65532, 65534, 65535, 0, 2, 2, 3];
    for (i, s) in seqs.iter().enumerate() {
        let out = r.update(ms(20 * i as u64), *s, 160 * i as u32, 77);
        assert!(matches!(out, ReceiveOutcome::Counted(_)), "{out:?}");
    }
    assert_eq!(r.expected(), 10);
    assert_eq!(r.received(), 9);
    assert_eq!(r.cumulative_lost(), 1);
    assert_eq!(r.extended_highest(), 0x0001_0003);
    r.on_sender_report(ms(100), NtpTime(0x0000_1234_5678_0000));
    let b = r.report_block(ms(1100)).expect("block");
    assert_eq!(b.ssrc, 77);
    assert_eq!(b.fraction_lost, (256 / 10) as u8);
    assert_eq!(b.cumulative_lost, 1);
    assert_eq!(b.lsr, 0x1234_5678);
    assert_eq!(b.dlsr, 0x0001_0000);
    // Next interval: nothing lost.
    r.update(ms(300), 4, 1600, 77);
    assert_eq!(r.report_block(ms(1200)).map(|b| b.fraction_lost), Some(0));
}

#[test]
fn receiver_stats_resyncs() {
    let mut r = ReceiverStats::new(8000);
    r.update(ms(0), 100, 0, 1);
    r.update(ms(20), 101, 160, 1);
    assert!(matches!(
        r.update(ms(40), 5, 320, 2),
        ReceiveOutcome::Resync(ResyncReason::SsrcChanged, _)
    ));
    // A jump of 10000: first packet stray, the next in sequence restarts.
    assert_eq!(r.update(ms(60), 10_006, 480, 2), ReceiveOutcome::Stray);
    assert!(matches!(
        r.update(ms(80), 10_007, 640, 2),
        ReceiveOutcome::Resync(ResyncReason::SequenceJump, _)
    ));
    // Timestamp jumps by a minute in 20 ms.
    assert!(matches!(
        r.update(ms(100), 10_008, 640 + 8000 * 60, 2),
        ReceiveOutcome::Resync(ResyncReason::TimestampJump, _)
    ));
    assert_eq!(r.resyncs(), 3);
}

#[test]
fn rtcp_interval_is_randomised_around_five_seconds() {
    let mut s = RtcpScheduler::new(Duration::ZERO, 9);
    let first = s.poll_timeout();
    assert!(first >= ms(1000) && first <= ms(3100), "{first:?}");
    assert!(!s.due(first - ms(1)));
    let mut now = first;
    let mut intervals = Vec::new();
    for _ in 0..200 {
        assert!(s.due(now));
        let next = s.poll_timeout();
        intervals.push(next - now);
        now = next;
    }
    let lo = intervals.iter().min().copied().unwrap_or_default();
    let hi = intervals.iter().max().copied().unwrap_or_default();
    assert!(lo >= ms(2050) && hi <= ms(6160), "{lo:?} {hi:?}");
    let mean = intervals.iter().sum::<Duration>() / intervals.len() as u32;
    assert!(mean > ms(3700) && mean < ms(4500), "{mean:?}");
}

proptest! {
    #[test]
    fn random_rtcp_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(c) = RtcpCompound::parse(&bytes) {
            for p in c.packets() {
                if let RtcpPacket::SourceDescription(s) = p {
                    let _ = s.items().count();
                }
                let _ = p.bye_sources().count();
            }
        }
    }

    #[test]
    fn random_rtcp_with_valid_header_never_panics(
        count in 0u8..32, pt in 192u8..=223, body in proptest::collection::vec(any::<u8>(), 0..200)
    ) {
        let words = body.len() / 4;
        let mut b = vec![0x80 | count, pt];
        b.extend_from_slice(&(words as u16).to_be_bytes());
        b.extend_from_slice(&body[..words * 4]);
        if let Ok(c) = RtcpCompound::parse(&b) {
            let _ = c.packets().count();
        }
    }
}

#[test]
fn extreme_times_do_not_panic() {
    let mut s = RtcpScheduler::new(Duration::MAX, 1);
    assert!(s.due(Duration::MAX));
    let mut r = ReceiverStats::new(48_000);
    r.update(Duration::ZERO, 1, 0, 1);
    r.update(Duration::MAX, 2, u32::MAX, 1);
    r.on_sender_report(Duration::ZERO, NtpTime(u64::MAX));
    let _ = r.report_block(Duration::MAX);
}
