//! The "NetEQ-lite" jitter buffer (media.md §6) on a virtual clock: no sleeping, every packet
//! arrives at a computed instant and the receiver ticks every 20 ms, so the assertions are about
//! the policy, not the machine's speed. Loss follows a Gilbert-Elliott model (the two-state
//! model of ITU-T G.191's `eid`), delay a seeded random jitter model.

use std::time::Duration;

use media_core::jitter::{JitterBuffer, JitterConfig, Playout, PushOutcome, ResyncReason};
use media_core::rtp::SplitMix64;
use proptest::prelude::*;

const FRAME: u32 = 160;
const TICK: Duration = Duration::from_millis(20);

fn cfg() -> JitterConfig {
    JitterConfig {
        clock_rate: 8000,
        frame_samples: FRAME,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(400),
        max_packets: 64,
    }
}

fn payload(seq: u16) -> [u8; 4] {
    let b = seq.to_be_bytes();
    [b[0], b[1], 0xAB, 0xCD]
}

fn seq_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[0], p[1]])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Play(u16),
    Missing(Option<u16>),
    Wait,
}

fn pop(jb: &mut JitterBuffer, now: Duration) -> Out {
    match jb.pop(now) {
        Playout::Packet(p) => Out::Play(seq_of(p)),
        Playout::Missing { next } => Out::Missing(next.map(seq_of)),
        Playout::Waiting => Out::Wait,
    }
}

/// Ticks from tick `from` on until the buffer is empty (at most `count` ticks), so trailing
/// underrun concealment after the end of a stream is not counted.
fn ticks(jb: &mut JitterBuffer, from: u64, count: u64) -> Vec<Out> {
    let mut outs = Vec::new();
    for i in from..from + count {
        if jb.buffered() == 0 {
            break;
        }
        outs.push(pop(jb, TICK * i as u32));
    }
    outs
}

fn played(outs: &[Out]) -> Vec<u16> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Play(s) => Some(*s),
            _ => None,
        })
        .collect()
}

#[test]
fn in_order_stream_plays_every_packet_once() {
    let mut jb = JitterBuffer::new(cfg());
    let mut outs = Vec::new();
    for i in 0..100u64 {
        let now = TICK * i as u32 + Duration::from_millis(5);
        let seq = 1000 + i as u16;
        assert_eq!(
            jb.push(now, seq, 160 * i as u32, 1, i == 0, &payload(seq)),
            PushOutcome::Accepted
        );
        outs.push(pop(&mut jb, TICK * (i as u32 + 1)));
    }
    outs.extend(ticks(&mut jb, 101, 5));
    let p = played(&outs);
    assert_eq!(p, (1000..1100).collect::<Vec<u16>>());
    let s = jb.stats();
    assert_eq!(
        (s.concealed_frames, s.packets_late, s.packets_lost),
        (0, 0, 0)
    );
    assert_eq!(s.target_delay_ms, 20);
    assert_eq!(s.interarrival_jitter, 0);
}

#[test]
fn reordered_and_duplicated_packets() {
    let mut jb = JitterBuffer::new(cfg());
    // Pairs swapped: 1,0,3,2,...; every 10th packet duplicated.
    let mut order = Vec::new();
    for i in (0..60u16).step_by(2) {
        order.push(i + 1);
        order.push(i);
    }
    let mut outs = Vec::new();
    let mut dups = 0;
    for (k, &seq) in order.iter().enumerate() {
        let now = TICK * k as u32;
        let r = jb.push(now, seq, 160 * u32::from(seq), 9, false, &payload(seq));
        assert!(matches!(r, PushOutcome::Accepted), "{seq}: {r:?}");
        if seq % 10 == 0 {
            assert_eq!(
                jb.push(now, seq, 160 * u32::from(seq), 9, false, &payload(seq)),
                PushOutcome::Duplicate
            );
            dups += 1;
        }
        outs.push(pop(&mut jb, now + Duration::from_millis(10)));
    }
    outs.extend(ticks(&mut jb, 61, 10));
    assert_eq!(played(&outs), (0..60).collect::<Vec<u16>>());
    let s = jb.stats();
    assert_eq!(s.packets_duplicate, dups);
    assert_eq!(s.packets_reordered, 30);
    assert_eq!(s.concealed_frames, 0);
}

#[test]
fn lost_packet_is_concealed_with_the_next_for_fec() {
    let mut jb = JitterBuffer::new(JitterConfig {
        min_delay: Duration::from_millis(60),
        ..cfg()
    });
    let mut outs = Vec::new();
    for i in 0..20u16 {
        if i != 7 {
            jb.push(
                TICK * u32::from(i),
                i,
                160 * u32::from(i),
                3,
                false,
                &payload(i),
            );
        }
        outs.push(pop(&mut jb, TICK * u32::from(i) + Duration::from_millis(1)));
    }
    outs.extend(ticks(&mut jb, 21, 5));
    let i = outs
        .iter()
        .position(|o| matches!(o, Out::Missing(_)))
        .expect("a concealed frame");
    assert_eq!(outs[i], Out::Missing(Some(8)));
    assert_eq!(outs[i - 1], Out::Play(6));
    assert_eq!(outs[i + 1], Out::Play(8));
    let s = jb.stats();
    assert_eq!(
        (s.packets_lost, s.concealed_frames, s.concealment_events),
        (1, 1, 1)
    );
}

#[test]
fn late_packet_is_dropped_and_raises_the_target() {
    let mut jb = JitterBuffer::new(cfg());
    let mut outs = Vec::new();
    for i in 0..40u16 {
        let now = TICK * u32::from(i);
        if i != 10 {
            jb.push(now, i, 160 * u32::from(i), 3, false, &payload(i));
        }
        if i == 20 {
            // Packet 10 arrives 200 ms late.
            assert_eq!(
                jb.push(now, 10, 1600, 3, false, &payload(10)),
                PushOutcome::Late
            );
        }
        outs.push(pop(&mut jb, now + Duration::from_millis(1)));
    }
    let s = jb.stats();
    assert_eq!(s.packets_late, 1);
    assert_eq!(s.packets_lost, 0, "a late arrival is not a loss");
    assert!(s.target_delay_ms >= 200, "{}", s.target_delay_ms);
    assert!(!played(&outs).contains(&10));
}

#[test]
fn sequence_and_timestamp_wrap_around() {
    let mut jb = JitterBuffer::new(cfg());
    let mut outs = Vec::new();
    let ts0 = u32::MAX - 160 * 5 + 1;
    for i in 0..30u32 {
        let seq = 65520u16.wrapping_add(i as u16);
        let r = jb.push(
            TICK * i,
            seq,
            ts0.wrapping_add(160 * i),
            4,
            false,
            &payload(seq),
        );
        assert_eq!(r, PushOutcome::Accepted);
        outs.push(pop(&mut jb, TICK * i + Duration::from_millis(1)));
    }
    outs.extend(ticks(&mut jb, 31, 4));
    let want: Vec<u16> = (0..30u16).map(|i| 65520u16.wrapping_add(i)).collect();
    assert_eq!(played(&outs), want);
    assert_eq!(jb.stats().concealed_frames, 0);
}

#[test]
fn ssrc_change_resyncs() {
    let mut jb = JitterBuffer::new(cfg());
    for i in 0..10u16 {
        jb.push(
            TICK * u32::from(i),
            i,
            160 * u32::from(i),
            1,
            false,
            &payload(i),
        );
        pop(&mut jb, TICK * u32::from(i) + Duration::from_millis(1));
    }
    let r = jb.push(TICK * 10, 5000, 99_999, 2, true, &payload(5000));
    assert_eq!(r, PushOutcome::Resync(ResyncReason::SsrcChanged));
    assert_eq!(jb.ssrc(), Some(2));
    let mut outs = Vec::new();
    for i in 11..30u16 {
        let seq = 5000 + i - 10;
        jb.push(
            TICK * u32::from(i),
            seq,
            99_999 + 160 * u32::from(i - 10),
            2,
            false,
            &payload(seq),
        );
        outs.push(pop(&mut jb, TICK * u32::from(i) + Duration::from_millis(1)));
    }
    let p = played(&outs);
    assert_eq!(p.first(), Some(&5000));
    assert!(p.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(jb.stats().resyncs, 1);
}

#[test]
fn sequence_jump_needs_two_packets() {
    let mut jb = JitterBuffer::new(cfg());
    for i in 0..10u16 {
        jb.push(
            TICK * u32::from(i),
            i,
            160 * u32::from(i),
            1,
            false,
            &payload(i),
        );
    }
    assert_eq!(
        jb.push(TICK * 10, 30_000, 1600, 1, false, &payload(1)),
        PushOutcome::OutOfRange
    );
    assert_eq!(
        jb.push(TICK * 11, 30_001, 1760, 1, false, &payload(1)),
        PushOutcome::Resync(ResyncReason::SequenceJump)
    );
}

#[test]
fn silence_gap_waits_then_resumes() {
    let mut jb = JitterBuffer::new(cfg());
    let mut outs = Vec::new();
    // 10 packets, then 1 s of suppressed silence (timestamps advance), then a talkspurt.
    for i in 0..100u16 {
        let now = TICK * u32::from(i);
        if !(10..60).contains(&i) {
            let marker = i == 60;
            jb.push(
                now,
                if i < 10 { i } else { i - 50 },
                160 * u32::from(i),
                1,
                marker,
                &payload(i),
            );
        }
        outs.push(pop(&mut jb, now + Duration::from_millis(1)));
    }
    outs.extend(ticks(&mut jb, 101, 5));
    let p = played(&outs);
    assert_eq!(p.len(), 50);
    assert!(p.contains(&60) && p.contains(&99));
    let s = jb.stats();
    assert!(s.concealed_frames <= 5, "{s:?}");
    assert_eq!(s.packets_late, 0);
}

/// Sender, channel and receiver on a virtual clock.
struct Channel {
    rng: SplitMix64,
    /// Gilbert-Elliott: P(good -> bad), P(bad -> good), loss probability in bad.
    p_gb: f64,
    p_bg: f64,
    loss_bad: f64,
    bad: bool,
}

impl Channel {
    fn lost(&mut self) -> bool {
        let u = self.rng.next_f64();
        if self.bad {
            if u < self.p_bg {
                self.bad = false;
            }
        } else if u < self.p_gb {
            self.bad = true;
        }
        self.bad && self.rng.next_f64() < self.loss_bad
    }
}

struct SimResult {
    jb: JitterBuffer,
    /// (time, target ms, current ms, buffered) sampled every second.
    trace: Vec<(Duration, u32, u32, usize)>,
    played: u64,
}

/// Runs `seconds` of a 20 ms stream. `jitter_ms(t)` gives the maximum extra delay at sender
/// time t; `skew` scales the sender's clock (1.001 = 0.1 % fast).
fn simulate(
    seconds: u64,
    skew: f64,
    seed: u64,
    mut channel: Option<Channel>,
    jitter_ms: impl Fn(f64) -> f64,
) -> SimResult {
    let mut jb = JitterBuffer::new(cfg());
    let mut rng = SplitMix64::new(seed);
    let packets = seconds * 50;
    // Generate arrivals, then sort them by arrival time.
    let mut arrivals: Vec<(Duration, u16, u32)> = Vec::with_capacity(packets as usize);
    for i in 0..packets {
        let send = Duration::from_secs_f64(i as f64 * 0.020 / skew);
        if let Some(c) = channel.as_mut() {
            if c.lost() {
                continue;
            }
        }
        let extra = rng.next_f64() * jitter_ms(send.as_secs_f64());
        let arrive = send + Duration::from_millis(30) + Duration::from_secs_f64(extra / 1000.0);
        arrivals.push((arrive, i as u16, (i as u32).wrapping_mul(FRAME)));
    }
    arrivals.sort_by_key(|a| a.0);
    let mut trace = Vec::new();
    let mut played = 0;
    let mut next = 0usize;
    let total_ticks = seconds * 50 + 50;
    for t in 0..total_ticks {
        let now = TICK * t as u32;
        while next < arrivals.len() && arrivals[next].0 <= now {
            let (at, seq, ts) = arrivals[next];
            jb.push(at, seq, ts, 0x5EED, false, &payload(seq));
            next += 1;
        }
        if let Playout::Packet(_) = jb.pop(now) {
            played += 1;
        }
        if t % 50 == 0 {
            let s = jb.stats();
            trace.push((
                now,
                s.target_delay_ms,
                s.current_delay_ms,
                s.buffered_packets,
            ));
        }
    }
    SimResult { jb, trace, played }
}

fn target_at(trace: &[(Duration, u32, u32, usize)], secs: u64) -> u32 {
    trace
        .iter()
        .find(|t| t.0 >= Duration::from_secs(secs))
        .map(|t| t.1)
        .unwrap_or(0)
}

#[test]
fn adapts_up_on_high_jitter_and_back_down_with_gilbert_elliott_loss() {
    let channel = Channel {
        rng: SplitMix64::new(77),
        p_gb: 0.01,
        p_bg: 0.3,
        loss_bad: 0.7,
        bad: false,
    };
    // 0-40 s: up to 10 ms jitter; 40-100 s: up to 150 ms; 100-180 s: up to 10 ms again.
    let r = simulate(180, 1.0, 5, Some(channel), |t| {
        if (40.0..100.0).contains(&t) {
            150.0
        } else {
            10.0
        }
    });
    let s = r.jb.stats();
    let low = target_at(&r.trace, 35);
    let high = target_at(&r.trace, 95);
    let back = target_at(&r.trace, 175);
    eprintln!("targets low={low} high={high} back={back}; stats {s:?}");
    assert!(low <= 40, "low-jitter target {low} ms");
    assert!(high >= 120, "high-jitter target {high} ms");
    assert!(back <= 40, "target after jitter fell: {back} ms");
    assert!(
        s.late_loss_rate < 0.02,
        "late-loss rate {}",
        s.late_loss_rate
    );
    // Gilbert-Elliott losses (~2 % here) are concealed, not counted late.
    assert!(s.packets_lost > 50 && s.concealment_rate < 0.06, "{s:?}");
    assert!(r.played > 8000);
}

#[test]
fn clock_skew_keeps_the_buffer_bounded_over_ten_minutes() {
    for skew in [1.001, 0.999] {
        let r = simulate(600, skew, 11, None, |_| 20.0);
        let s = r.jb.stats();
        let max_current = r.trace.iter().map(|t| t.2).max().unwrap_or(0);
        let max_buffered = r.trace.iter().map(|t| t.3).max().unwrap_or(0);
        eprintln!("skew {skew}: max current {max_current} ms, max buffered {max_buffered}, {s:?}");
        // 0.1 % of 600 s is 600 ms of drift: without correction the level would run away.
        assert!(max_current <= s.target_delay_ms + 60, "{max_current} ms");
        assert!(max_buffered <= 8, "{max_buffered} packets");
        assert!(s.late_loss_rate < 0.01, "{}", s.late_loss_rate);
        if skew > 1.0 {
            assert!(s.removed_frames >= 20, "{s:?}");
        } else {
            assert!(s.inserted_frames >= 20 || s.concealed_frames >= 20, "{s:?}");
        }
    }
}

#[test]
fn hostile_stream_keeps_memory_bounded() {
    let mut jb = JitterBuffer::new(cfg());
    let mut rng = SplitMix64::new(0xBAD);
    for i in 0..100_000u32 {
        let x = rng.next_u64();
        let now = Duration::from_micros(u64::from(i) * 500);
        let ssrc = if x & 0xF == 0 { (x >> 8) as u32 } else { 1 };
        let len = ((x >> 40) % 1600) as usize;
        let body = [0u8; 1600];
        jb.push(
            now,
            (x >> 16) as u16,
            (x >> 32) as u32,
            ssrc,
            x & 0x100 != 0,
            &body[..len],
        );
        if i % 3 == 0 {
            let _ = jb.pop(now);
        }
        assert!(jb.buffered() <= 64);
    }
    let s = jb.stats();
    assert!(s.buffered_packets <= 64);
    assert!(s.target_delay_ms <= 400);
    // Extreme clock values from a confused caller do not overflow anything.
    for now in [
        Duration::MAX,
        Duration::ZERO,
        Duration::from_secs(u64::MAX / 2),
    ] {
        jb.push(now, 1, u32::MAX, 1, true, &[1]);
        jb.push(now, 2, 0, 1, false, &[1]);
        let _ = jb.pop(now);
    }
}

#[test]
fn invalid_config_is_reported_by_try_new() {
    assert!(JitterBuffer::try_new(JitterConfig {
        clock_rate: 0,
        ..cfg()
    })
    .is_err());
    assert!(JitterBuffer::try_new(JitterConfig {
        min_delay: Duration::from_secs(1),
        ..cfg()
    })
    .is_err());
    let jb = JitterBuffer::new(JitterConfig {
        max_packets: 1_000_000,
        ..cfg()
    });
    assert_eq!(jb.config().max_packets, 1024);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_push_pop_sequences_never_panic(
        ops in proptest::collection::vec((any::<u16>(), any::<u32>(), 0u32..3, any::<bool>(), 0usize..40, any::<bool>(), 0u64..100), 0..400)
    ) {
        let mut jb = JitterBuffer::new(JitterConfig { max_packets: 8, ..cfg() });
        let mut now = Duration::ZERO;
        for (seq, ts, ssrc, marker, len, do_pop, dt) in ops {
            now += Duration::from_millis(dt);
            let body = [7u8; 40];
            jb.push(now, seq, ts, ssrc, marker, &body[..len]);
            if do_pop {
                let _ = jb.pop(now);
            }
            prop_assert!(jb.buffered() <= 8);
        }
        let _ = jb.stats();
    }
}

#[test]
fn full_ring_discards_the_oldest() {
    let mut jb = JitterBuffer::new(JitterConfig {
        max_packets: 8,
        ..cfg()
    });
    // A burst of 12 packets at once before any playout.
    let mut outcomes = Vec::new();
    for i in 0..12u16 {
        outcomes.push(jb.push(Duration::ZERO, i, 160 * u32::from(i), 1, false, &payload(i)));
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == PushOutcome::Overflow)
            .count(),
        4
    );
    assert_eq!(jb.buffered(), 8);
    assert_eq!(jb.stats().packets_overflow, 4);
    let outs = ticks(&mut jb, 1, 20);
    assert_eq!(played(&outs).first(), Some(&4));
}

#[test]
fn marker_after_a_pause_without_timestamp_advance_resyncs() {
    let mut jb = JitterBuffer::new(cfg());
    for i in 0..10u16 {
        jb.push(
            TICK * u32::from(i),
            i,
            160 * u32::from(i),
            1,
            i == 0,
            &payload(i),
        );
        pop(&mut jb, TICK * u32::from(i) + Duration::from_millis(1));
    }
    // 0.3 s pause, the sender's timestamps did not advance (held call): the new talkspurt's
    // first packet would be late on the old timeline.
    for t in 10..25u32 {
        pop(&mut jb, TICK * t + Duration::from_millis(1));
    }
    let r = jb.push(TICK * 25, 10, 1600, 1, true, &payload(10));
    assert_eq!(r, PushOutcome::Resync(ResyncReason::Talkspurt));
    let mut outs = Vec::new();
    for i in 26..40u32 {
        let seq = (i - 15) as u16;
        jb.push(TICK * i, seq, 160 * u32::from(seq), 1, false, &payload(seq));
        outs.push(pop(&mut jb, TICK * i + Duration::from_millis(1)));
    }
    assert_eq!(played(&outs).first(), Some(&10));
}
