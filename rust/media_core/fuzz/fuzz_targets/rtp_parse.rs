//! Fuzzes RTP parsing: any bytes either parse into a packet whose parts lie inside the input,
//! or give an error; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media_core::rtp::RtpPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(data) {
        assert!(p.payload.len() + 12 <= data.len());
        assert!(p.payload_type < 128);
        let _ = p.csrcs().count();
        let _ = p.extension.map(|e| e.kind());
    }
});
