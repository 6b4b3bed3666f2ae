//! Fuzzes RTCP compound parsing and walks every parsed packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media_core::rtp::{NtpTime, RtcpCompound, RtcpPacket};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = RtcpCompound::parse(data) {
        for p in c.packets() {
            match p {
                RtcpPacket::SenderReport { blocks, .. } | RtcpPacket::ReceiverReport { blocks, .. } => {
                    for b in blocks.iter() {
                        let _ = b.round_trip(NtpTime(u64::MAX));
                    }
                }
                RtcpPacket::SourceDescription(s) => {
                    let _ = s.items().count();
                }
                other => {
                    let _ = other.bye_sources().count();
                }
            }
        }
    }
});
