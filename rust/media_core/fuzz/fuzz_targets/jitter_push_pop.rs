//! Fuzzes the jitter buffer with arbitrary push/pop sequences: 12-byte records of
//! (time step, seq, timestamp, ssrc selector, flags, length); memory must stay bounded.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use media_core::jitter::{JitterBuffer, JitterConfig};

fuzz_target!(|data: &[u8]| {
    let mut jb = JitterBuffer::new(JitterConfig {
        clock_rate: 8000,
        frame_samples: 160,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(300),
        max_packets: 16,
    });
    let body = [0x55u8; 1600];
    let mut now = Duration::ZERO;
    for r in data.chunks_exact(12) {
        now += Duration::from_millis(u64::from(r[0]));
        let seq = u16::from_be_bytes([r[1], r[2]]);
        let ts = u32::from_be_bytes([r[3], r[4], r[5], r[6]]);
        let ssrc = u32::from(r[7] & 3);
        let marker = r[8] & 1 != 0;
        let len = usize::from(u16::from_be_bytes([r[9], r[10]])) % body.len();
        jb.push(now, seq, ts, ssrc, marker, &body[..len]);
        if r[11] & 1 != 0 {
            let _ = jb.pop(now);
        }
        assert!(jb.buffered() <= 16);
    }
    let _ = jb.stats();
});
