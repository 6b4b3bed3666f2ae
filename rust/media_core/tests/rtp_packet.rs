//! RTP packets (RFC 3550 §5.1, §5.3.1; RFC 8285): hand-made byte vectors with CSRCs, header
//! extensions and padding; malformed packets rejected with a parse error; round trips of
//! written packets; the sender's sequence/timestamp/marker behaviour; the payload-type map.

use media_core::rtp::{
    looks_like_rtcp, write_rtp, ExtensionProfile, PayloadMap, RtpHeader, RtpPacket, RtpSender,
};
use media_core::MediaError;
use proptest::prelude::*;

#[test]
fn parses_minimal_pcmu_packet() {
    let bytes = [
        0x80, 0x00, 0x12, 0x34, 0x00, 0x00, 0x01, 0x40, 0xDE, 0xAD, 0xBE, 0xEF, 0xFF, 0x7F,
    ];
    let p = RtpPacket::parse(&bytes).expect("valid");
    assert!(!p.marker);
    assert_eq!(p.payload_type, 0);
    assert_eq!(p.sequence, 0x1234);
    assert_eq!(p.timestamp, 320);
    assert_eq!(p.ssrc, 0xDEAD_BEEF);
    assert_eq!(p.payload, &[0xFF, 0x7F]);
    assert_eq!(p.padding, 0);
    assert!(p.extension.is_none());
}

#[test]
fn skips_csrcs_extension_and_padding() {
    // V=2 P=1 X=1 CC=2, M=1 PT=111.
    let mut b = vec![
        0xB2,
        0x80 | 111,
        0xFF,
        0xFF,
        0x12,
        0x34,
        0x56,
        0x78,
        0,
        0,
        0,
        7,
    ];
    b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // CSRCs 1, 2
    b.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01]); // one-byte profile, 1 word
    b.extend_from_slice(&[0x10, 0xAA, 0x00, 0x00]); // id 1 len 1, padding
    b.extend_from_slice(b"opus"); // payload
    b.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
    let p = RtpPacket::parse(&b).expect("valid");
    assert!(p.marker);
    assert_eq!(p.payload_type, 111);
    assert_eq!(p.sequence, 65535);
    assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![1, 2]);
    let ext = p.extension.expect("extension");
    assert_eq!(ext.kind(), ExtensionProfile::OneByte);
    assert_eq!(ext.data, &[0x10, 0xAA, 0, 0]);
    assert_eq!(p.payload, b"opus");
    assert_eq!(p.padding, 3);
}

#[test]
fn two_byte_and_other_extension_profiles() {
    for (profile, kind) in [
        (0x1000u16, ExtensionProfile::TwoByte),
        (0x100F, ExtensionProfile::TwoByte),
        (0xABCD, ExtensionProfile::Other(0xABCD)),
    ] {
        let mut b = vec![0x90, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&profile.to_be_bytes());
        b.extend_from_slice(&[0, 0]); // zero-length extension
        b.push(0xD5);
        let p = RtpPacket::parse(&b).expect("valid");
        assert_eq!(p.extension.map(|e| e.kind()), Some(kind));
        assert_eq!(p.payload, &[0xD5]);
    }
}

fn parse_error(bytes: &[u8]) -> String {
    match RtpPacket::parse(bytes) {
        Err(MediaError::Parse(m)) => m,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn malformed_packets_are_errors() {
    assert!(parse_error(&[0x80, 0, 0]).contains("shorter"));
    assert!(parse_error(&[0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).contains("version 1"));
    // CC=3 but no CSRCs.
    assert!(parse_error(&[0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]).contains("CSRC"));
    // X set, extension header truncated.
    assert!(parse_error(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE]).contains("extension"));
    // Extension says 2 words, only one present.
    let ext = [
        0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 2, 1, 2, 3, 4,
    ];
    assert!(parse_error(&ext).contains("extension"));
    // Padding longer than the packet body.
    assert!(parse_error(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9]).contains("padding"));
    // Padding count zero.
    assert!(parse_error(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]).contains("zero"));
}

#[test]
fn write_then_parse_round_trips() {
    let h = RtpHeader {
        marker: true,
        payload_type: 101,
        sequence: 65535,
        timestamp: u32::MAX,
        ssrc: 0x0102_0304,
    };
    let mut out = [0u8; 64];
    let n = write_rtp(&h, b"payload", &mut out).expect("fits");
    assert_eq!(n, 19);
    let p = RtpPacket::parse(&out[..n]).expect("valid");
    assert_eq!(
        (p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc),
        (true, 101, 65535, u32::MAX, 0x0102_0304)
    );
    assert_eq!(p.payload, b"payload");
    assert!(write_rtp(&h, b"payload", &mut out[..18]).is_err());
    let bad = RtpHeader {
        payload_type: 128,
        ..h
    };
    assert!(matches!(
        write_rtp(&bad, b"", &mut out),
        Err(MediaError::InvalidArgument(_))
    ));
}

#[test]
fn sender_advances_and_marks_talkspurts() {
    let mut s = RtpSender::new(7, 0, 65534, u32::MAX - 159);
    let mut out = [0u8; 200];
    let mut got = Vec::new();
    for _ in 0..3 {
        let n = s.write_frame(&[0xFF; 160], 160, &mut out).expect("fits");
        let p = RtpPacket::parse(&out[..n]).expect("valid");
        got.push((p.sequence, p.timestamp, p.marker));
    }
    assert_eq!(
        got,
        vec![
            (65534, u32::MAX - 159, true),
            (65535, 0, false),
            (0, 160, false)
        ]
    );
    s.skip(800);
    let n = s.write_frame(&[0xFF; 160], 160, &mut out).expect("fits");
    let p = RtpPacket::parse(&out[..n]).expect("valid");
    assert_eq!((p.sequence, p.timestamp, p.marker), (1, 1120, true));
    // An RFC 4733 event packet keeps its own timestamp and payload type.
    let n = s
        .write_packet(101, 1280, true, &[1, 0x8A, 0, 160], &mut out)
        .expect("fits");
    let p = RtpPacket::parse(&out[..n]).expect("valid");
    assert_eq!((p.payload_type, p.sequence, p.timestamp), (101, 2, 1280));
    assert_eq!(s.timestamp(), 1280);
    assert_eq!(s.packet_count(), 5);
    assert_eq!(s.octet_count(), 4 * 160 + 4);
    let a = RtpSender::from_seed(42, 8);
    let b = RtpSender::from_seed(42, 8);
    let c = RtpSender::from_seed(43, 8);
    assert_eq!((a.ssrc(), a.next_sequence()), (b.ssrc(), b.next_sequence()));
    assert_ne!(a.ssrc(), c.ssrc());
}

#[test]
fn payload_map_lookups_both_ways() {
    let mut m = PayloadMap::with_static();
    m.insert(111, "opus", 48000, 2).expect("valid");
    m.insert(101, "telephone-event", 8000, 1).expect("valid");
    m.insert(96, "telephone-event", 48000, 1).expect("valid");
    assert_eq!(m.get(0).map(|f| f.encoding.as_str()), Some("PCMU"));
    assert_eq!(
        m.get(111).map(|f| (f.clock_rate, f.channels)),
        Some((48000, 2))
    );
    assert_eq!(m.find("OPUS", 48000), Some(111));
    assert_eq!(m.find("telephone-event", 8000), Some(101));
    assert_eq!(m.find("telephone-event", 48000), Some(96));
    assert_eq!(m.find("pcma", 8000), Some(8));
    assert_eq!(m.find("G729", 16000), None);
    assert!(m.get(127).is_none());
    assert!(m.get(200).is_none());
    assert!(m.insert(128, "x", 8000, 1).is_err());
    assert!(m.insert(97, "", 8000, 1).is_err());
    assert!(m.insert(97, "x", 0, 1).is_err());
    m.insert(0, "PCMA", 8000, 1).expect("replace");
    assert_eq!(m.get(0).map(|f| f.encoding.as_str()), Some("PCMA"));
}

#[test]
fn rtcp_demultiplexing() {
    assert!(looks_like_rtcp(&[0x80, 200, 0, 6]));
    assert!(!looks_like_rtcp(&[0x80, 0, 0, 6]));
    assert!(!looks_like_rtcp(&[0x80, 96 | 0x80, 0, 6]));
    assert!(!looks_like_rtcp(&[0x80]));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(p) = RtpPacket::parse(&bytes) {
            prop_assert!(p.payload.len() + 12 <= bytes.len());
            prop_assert!(p.payload_type < 128);
        }
    }

    #[test]
    fn written_packets_parse_back(
        marker: bool, pt in 0u8..128, seq: u16, ts: u32, ssrc: u32,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let h = RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc };
        let mut out = vec![0u8; 400];
        let n = write_rtp(&h, &payload, &mut out).expect("fits");
        let p = RtpPacket::parse(&out[..n]).expect("valid");
        prop_assert_eq!((p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc), (marker, pt, seq, ts, ssrc));
        prop_assert_eq!(p.payload, &payload[..]);
    }
}
