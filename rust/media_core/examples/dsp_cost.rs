//! Prints the cost in µs per 20 ms frame of each signal-processing stage of the media core.
//!
//! Run in release mode: `cargo run --release --no-default-features --example dsp_cost`.
//! Times are CPU time of the measuring thread (from /proc/thread-self/schedstat), so a busy
//! machine inflates them less than wall-clock time would.
//! Input is real speech from /usr/share/asterisk/sounds/en (Debian asterisk-core-sounds-en-wav)
//! when present, else a synthetic voice-like signal.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use media_core::codec::g711::Law;
use media_core::codec::opus::{libopus_version, OpusDecoder, OpusEncoder, OpusSettings};
use media_core::codec::plc::G711Concealer;
use media_core::dtmf::goertzel::DtmfDetector;
use media_core::resample::Resampler;

/// Up to `max` seconds of 8 kHz 16-bit mono speech from WAV files in `dir`.
fn speech(dir: &Path, max: usize) -> Option<Vec<i16>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let Ok(b) = std::fs::read(&f) else { continue };
        // Canonical 44-byte header of 8 kHz mono 16-bit PCM.
        if b.len() > 44 && &b[0..4] == b"RIFF" && b[22] == 1 && b[24..28] == 8000u32.to_le_bytes() {
            out.extend(
                b[44..]
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]])),
            );
        }
        if out.len() >= max * 8000 {
            break;
        }
    }
    (out.len() >= 8000).then_some(out)
}

fn synthetic(len: usize) -> Vec<i16> {
    (0..len)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let w = 2.0 * std::f64::consts::PI * 130.0 * t;
            let env = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            (env * (3000.0 * w.sin() + 2000.0 * (3.0 * w).sin() + 1000.0 * (7.0 * w).sin())) as i16
        })
        .collect()
}

/// Nanoseconds this thread has spent on a CPU (Linux /proc/thread-self/schedstat), so other
/// processes on a busy machine do not inflate the figures; None where unavailable.
fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Runs `f` over every frame index `reps` times; returns µs of CPU time per call (wall-clock
/// time where the CPU clock is unavailable).
fn time<F: FnMut(usize)>(frames: usize, reps: usize, mut f: F) -> f64 {
    for i in 0..frames.min(50) {
        f(i);
    }
    let cpu = cpu_ns();
    let t = Instant::now();
    for _ in 0..reps {
        for i in 0..frames {
            f(i);
        }
    }
    let ns = match (cpu, cpu_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64,
        _ => t.elapsed().as_secs_f64() * 1e9,
    };
    ns / 1e3 / (frames * reps) as f64
}

fn main() -> media_core::Result<()> {
    let pcm8 = speech(Path::new("/usr/share/asterisk/sounds/en"), 60).unwrap_or_else(|| {
        eprintln!("speech corpus not found; using a synthetic signal");
        synthetic(8000 * 60)
    });
    let frames = pcm8.len() / 160;
    let pcm8 = &pcm8[..frames * 160];
    let mut up = Resampler::new(8000, 48000)?;
    let mut pcm48 = vec![0i16; frames * 960];
    up.process(pcm8, &mut pcm48);
    println!(
        "{} — {} s of input, {} frames",
        libopus_version(),
        frames / 50,
        frames
    );
    println!("{:<44} {:>8}", "stage", "µs/20ms");
    let mut pkt = [0u8; 1500];

    for (rate, cx, fec) in [
        (8000u32, 0u8, true),
        (8000, 5, true),
        (8000, 10, true),
        (48000, 5, true),
        (8000, 0, false),
        (8000, 5, false),
        (8000, 10, false),
        (48000, 5, false),
    ] {
        let input: &[i16] = if rate == 8000 { pcm8 } else { &pcm48 };
        let fl = rate as usize / 50;
        let settings = OpusSettings {
            complexity: cx,
            inband_fec: fec,
            ..Default::default()
        };
        let mut enc = OpusEncoder::new(rate, 1, &settings)?;
        let us = time(frames, 1, |i| {
            black_box(enc.encode(&input[i * fl..(i + 1) * fl], &mut pkt).ok());
        });
        println!(
            "{:<44} {:>8.1}",
            format!(
                "opus encode {} kHz cx{cx} 24 kbps, FEC {}",
                rate / 1000,
                if fec { "on" } else { "off" }
            ),
            us
        );
    }
    // Decode: packets of an 8 kHz cx5 stream and of a 48 kHz cx5 stream.
    for (enc_rate, dec_rate) in [(8000u32, 8000u32), (48000, 8000), (48000, 48000)] {
        let input: &[i16] = if enc_rate == 8000 { pcm8 } else { &pcm48 };
        let fl = enc_rate as usize / 50;
        let mut enc = OpusEncoder::new(enc_rate, 1, &OpusSettings::default())?;
        let mut packets = Vec::with_capacity(frames);
        for i in 0..frames {
            let n = enc.encode(&input[i * fl..(i + 1) * fl], &mut pkt)?;
            packets.push(pkt[..n].to_vec());
        }
        let mut dec = OpusDecoder::new(dec_rate, 1)?;
        let mut out = vec![0i16; dec_rate as usize / 50];
        let us = time(frames, 1, |i| {
            black_box(dec.decode(&packets[i], &mut out).ok());
        });
        println!(
            "{:<44} {:>8.1}",
            format!(
                "opus decode {} kHz stream to {} kHz",
                enc_rate / 1000,
                dec_rate / 1000
            ),
            us
        );
    }
    let mut up = Resampler::new(8000, 48000)?;
    let mut out48 = [0i16; 960];
    let us = time(frames, 3, |i| {
        black_box(up.process(&pcm8[i * 160..(i + 1) * 160], &mut out48));
    });
    println!("{:<44} {:>8.1}", "resample 8 -> 48 kHz", us);
    let mut down = Resampler::new(48000, 8000)?;
    let mut out8 = [0i16; 160];
    let us = time(frames, 3, |i| {
        black_box(down.process(&pcm48[i * 960..(i + 1) * 960], &mut out8));
    });
    println!("{:<44} {:>8.1}", "resample 48 -> 8 kHz", us);
    let mut det = DtmfDetector::new(8000)?;
    let mut count = 0usize;
    let us = time(frames, 10, |i| {
        det.process(&pcm8[i * 160..(i + 1) * 160], |_| count += 1);
    });
    println!("{:<44} {:>8.2}", "DTMF Goertzel detector, 8 kHz", us);
    black_box(count);
    let mut codes = [0u8; 160];
    let mut dec = [0i16; 160];
    let us = time(frames, 10, |i| {
        Law::A.encode(&pcm8[i * 160..(i + 1) * 160], &mut codes);
        Law::A.decode(&codes, &mut dec);
        black_box(&dec);
    });
    println!("{:<44} {:>8.2}", "G.711 A-law encode + decode", us);
    let mut plc = G711Concealer::new(8000)?;
    let mut frame = [0i16; 160];
    let us = time(frames, 10, |i| {
        frame.copy_from_slice(&pcm8[i * 160..(i + 1) * 160]);
        plc.good_frame(&mut frame);
        black_box(&frame);
    });
    println!("{:<44} {:>8.2}", "G.711 PLC good frame (history)", us);
    // Losses of one frame every fourth frame: the concealment frame plus the merge.
    let us = time(frames, 10, |i| {
        if i % 4 == 1 {
            plc.conceal(&mut frame);
        } else {
            frame.copy_from_slice(&pcm8[i * 160..(i + 1) * 160]);
            plc.good_frame(&mut frame);
        }
        black_box(&frame);
    }) * 4.0
        - us * 3.0;
    println!(
        "{:<44} {:>8.2}",
        "G.711 PLC concealed frame (incl. pitch search)", us
    );
    Ok(())
}
