//! Two lines wired back to back in memory on a virtual clock: no sockets, no sleeping.

use std::net::SocketAddr;
use std::time::Duration;

use media_core::line::{CodecKind, Line, LineConfig, LineEvent};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn sine(freq: f64, rate: u32, n: usize, start: usize, amp: f64) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = (start + i) as f64 / f64::from(rate);
            (amp * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// Amplitude of `freq` in `x` (projection onto sine and cosine).
fn amplitude(x: &[i16], freq: f64, rate: u32) -> f64 {
    let (mut c, mut s) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let w = 2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate);
        c += f64::from(v) * w.cos();
        s += f64::from(v) * w.sin();
    }
    2.0 * (c * c + s * s).sqrt() / x.len() as f64
}

/// Runs `a` → `b` for `ms` of virtual time, pushing a sine into `a` and collecting `b`'s output.
/// `lose(seq_index)` drops packets on the way.
fn run(cfg: LineConfig, ms: u64, lose: impl Fn(u64) -> bool) -> (Vec<i16>, Line, Line) {
    run_pair(cfg.clone(), cfg, ms, lose)
}

/// As [`run`], with separate configurations for the sender `a` and the receiver `b`.
fn run_pair(
    cfg_a: LineConfig,
    cfg: LineConfig,
    ms: u64,
    lose: impl Fn(u64) -> bool,
) -> (Vec<i16>, Line, Line) {
    let mut a = Line::new(cfg_a, 1, 100, 1000).expect("line a");
    let mut b = Line::new(cfg.clone(), 2, 200, 2000).expect("line b");
    let now0 = Duration::ZERO;
    a.start(now0, addr(2));
    b.start(now0, addr(1));
    let rate = cfg.pcm_rate;
    let frame = (rate / 100) as usize;
    let mut out = Vec::new();
    let mut sent_index = 0u64;
    let mut wire: Vec<(Duration, Vec<u8>)> = Vec::new();
    for step in 0..ms / 10 {
        let now = Duration::from_millis(step * 10);
        a.push_pcm(&sine(700.0, rate, frame, step as usize * frame, 8000.0));
        a.tick(now, &mut |_, bytes| {
            if !lose(sent_index) {
                wire.push((now + Duration::from_millis(5), bytes.to_vec()));
            }
            sent_index += 1;
        });
        let due: Vec<_> = wire.iter().filter(|(t, _)| *t <= now).cloned().collect();
        wire.retain(|(t, _)| *t > now);
        for (_, pkt) in due {
            b.handle_rtp(now, addr(1), &pkt);
        }
        b.tick(now, &mut |_, _| {});
        let mut f = vec![0i16; frame];
        b.pull_pcm(&mut f);
        out.extend_from_slice(&f);
    }
    (out, a, b)
}

#[test]
fn g711_tone_arrives_at_the_right_level() {
    let cfg = LineConfig {
        stats_interval: Duration::ZERO,
        ..LineConfig::default()
    };
    let (out, _, b) = run(cfg, 2000, |_| false);
    let tail = &out[out.len() - 8000..];
    let amp = amplitude(tail, 700.0, 8000);
    assert!((amp - 8000.0).abs() < 400.0, "amplitude {amp}");
    let stats = b.stats();
    assert!(stats.packets_received >= 95, "{stats:?}");
    assert_eq!(stats.malformed, 0);
}

/// A peer's packet time need not match ours: 10, 30, 40 and 60 ms G.711 packets and 10, 40 and
/// 60 ms Opus packets all play on a 20 ms line, at the right level and without concealment.
#[test]
fn packets_of_another_packet_time_play_whole() {
    let cases = [
        (CodecKind::Pcma, 8, 8000, 10),
        (CodecKind::Pcma, 8, 8000, 30),
        (CodecKind::Pcmu, 0, 8000, 40),
        (CodecKind::Pcma, 8, 8000, 60),
        (CodecKind::Opus, 111, 16000, 10),
        (CodecKind::Opus, 111, 16000, 40),
        (CodecKind::Opus, 111, 48000, 60),
    ];
    for (codec, pt, rate, ptime) in cases {
        let ours = LineConfig {
            codec,
            payload_type: pt,
            pcm_rate: rate,
            stats_interval: Duration::ZERO,
            ..LineConfig::default()
        };
        let theirs = LineConfig {
            ptime_ms: ptime,
            ..ours.clone()
        };
        let (out, _, b) = run_pair(theirs, ours, 3000, |_| false);
        let tail = &out[out.len() - rate as usize..];
        let amp = amplitude(tail, 700.0, rate);
        let label = format!("{codec:?} at {ptime} ms");
        assert!(
            amp > 8000.0 * 0.85 && amp < 8000.0 * 1.15,
            "{label}: amplitude {amp}"
        );
        let jitter = b.stats().jitter;
        assert!(
            jitter.frames_played >= 3000 / u64::from(ptime) - 20,
            "{label}: {jitter:?}"
        );
        assert!(jitter.concealed_frames <= 3, "{label}: {jitter:?}");
    }
}

#[test]
fn opus_survives_ten_percent_loss() {
    let cfg = LineConfig {
        codec: CodecKind::Opus,
        payload_type: 111,
        pcm_rate: 16000,
        stats_interval: Duration::ZERO,
        ..LineConfig::default()
    };
    let (out, _, b) = run(cfg, 3000, |i| i % 10 == 3);
    let tail = &out[out.len() - 16000..];
    let amp = amplitude(tail, 700.0, 16000);
    assert!(amp > 8000.0 * 0.7, "amplitude {amp} after concealment");
    assert!(b.stats().jitter.packets_lost > 0 || b.stats().jitter.concealed_frames > 0);
}

#[test]
fn rtp_timeout_fires_once() {
    let cfg = LineConfig {
        rtp_timeout: Duration::from_millis(200),
        stats_interval: Duration::ZERO,
        ..LineConfig::default()
    };
    let mut a = Line::new(cfg, 1, 1, 1).expect("line");
    a.start(Duration::ZERO, addr(9));
    let mut timeouts = 0;
    for step in 0..100 {
        a.tick(Duration::from_millis(step * 10), &mut |_, _| {});
        while let Some(ev) = a.poll_event() {
            if matches!(ev, LineEvent::RtpTimeout { .. }) {
                timeouts += 1;
            }
        }
    }
    assert_eq!(timeouts, 1);
}

#[test]
fn garbage_never_panics() {
    let mut a = Line::new(LineConfig::default(), 1, 1, 1).expect("line");
    a.start(Duration::ZERO, addr(9));
    let mut x: u32 = 12345;
    for i in 0..20_000u32 {
        let len = (i % 200) as usize;
        let mut pkt = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            pkt.push(x as u8);
        }
        if i % 3 == 0 && len > 2 {
            pkt[0] = 0x80; // mostly-valid headers reach deeper code
            pkt[1] = if i % 2 == 0 { 8 } else { 101 };
        }
        a.handle_rtp(Duration::from_millis(u64::from(i)), addr(9), &pkt);
        if i % 20 == 0 {
            a.tick(Duration::from_millis(u64::from(i)), &mut |_, _| {});
        }
    }
}

#[test]
fn rtcp_reports_give_round_trip_and_loss() {
    let cfg = LineConfig {
        rtcp_mux: true,
        stats_interval: Duration::ZERO,
        ..LineConfig::default()
    };
    let mut a = Line::new(cfg.clone(), 11, 1, 1).expect("a");
    let mut b = Line::new(cfg, 22, 2, 2).expect("b");
    a.set_wall_clock(Duration::from_secs(1_800_000_000));
    b.set_wall_clock(Duration::from_secs(1_800_000_000));
    a.start(Duration::ZERO, addr(2));
    b.start(Duration::ZERO, addr(1));
    // A 30 ms one-way path each way; every 10th packet from a to b is lost.
    let delay = Duration::from_millis(30);
    let mut to_b: Vec<(Duration, Vec<u8>)> = Vec::new();
    let mut to_a: Vec<(Duration, Vec<u8>)> = Vec::new();
    let mut sent_a = 0u64;
    for step in 0..2000u64 {
        let now = Duration::from_millis(step * 10);
        a.push_pcm(&sine(500.0, 8000, 80, step as usize * 80, 4000.0));
        b.push_pcm(&sine(900.0, 8000, 80, step as usize * 80, 4000.0));
        a.tick(now, &mut |_, p| {
            let rtcp = p.len() > 1 && (200..=207).contains(&p[1]);
            if rtcp || sent_a % 10 != 5 {
                to_b.push((now + delay, p.to_vec()));
            }
            if !rtcp {
                sent_a += 1;
            }
        });
        b.tick(now, &mut |_, p| to_a.push((now + delay, p.to_vec())));
        for (queue, line, from) in [(&mut to_b, &mut b, addr(1)), (&mut to_a, &mut a, addr(2))] {
            let due: Vec<_> = queue.iter().filter(|(t, _)| *t <= now).cloned().collect();
            queue.retain(|(t, _)| *t > now);
            for (_, p) in due {
                line.handle_rtp(now, from, &p);
            }
        }
        let mut f = [0i16; 80];
        a.pull_pcm(&mut f);
        b.pull_pcm(&mut f);
    }
    let sa = a.stats();
    let sb = b.stats();
    assert!(
        sa.rtcp_received >= 3 && sb.rtcp_received >= 3,
        "{sa:?} {sb:?}"
    );
    let rtt = sa.remote.rtt_ms.expect("a round-trip time");
    // 60 ms of path plus up to one 10 ms tick of report scheduling on each side.
    assert!((55.0..=85.0).contains(&rtt), "rtt {rtt}");
    // b sees about 10 % of a's packets missing and says so in its reports to a.
    assert!(
        (0.05..=0.15).contains(&sa.remote.fraction_lost),
        "{:?}",
        sa.remote
    );
    let lost_ratio = sb.rtp_lost as f64 / sb.rtp_expected as f64;
    assert!((0.08..=0.12).contains(&lost_ratio), "b lost {lost_ratio}");
}
