//! Talk-off: the in-band DTMF detector must report no digit on real speech and music.
//!
//! Corpora (Debian packages, installed by scripts/setup from scripts/apt-packages.txt):
//! `asterisk-core-sounds-en-wav` (/usr/share/asterisk/sounds/en, ≈ 25 min of 8 kHz speech) and
//! `asterisk-moh-opsound-wav` (/usr/share/asterisk/moh, ≈ 18 min of 8 kHz music). The test is
//! skipped, with a message, when a folder is missing. Each file is checked as is and after a
//! G.711 A-law round trip (≈ 88 min of audio in all). It takes under 1 s in release mode
//! (`cargo test --release --no-default-features --test dsp_dtmf_talkoff`) and 5–20 s in debug
//! mode on a 2-core machine.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use media_core::codec::g711::Law;
use media_core::dtmf::goertzel::{DtmfDetector, DtmfEvent};

/// Reads a RIFF/WAVE file of 16-bit mono PCM; returns (sample rate, samples), or None for
/// anything else.
fn read_wav(path: &Path) -> Option<(u32, Vec<i16>)> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    let mut format = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        let body = bytes.get(pos + 8..(pos + 8 + len).min(bytes.len()))?;
        if id == b"fmt " && body.len() >= 16 {
            let tag = u16::from_le_bytes([body[0], body[1]]);
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes(body[4..8].try_into().ok()?);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            format = Some((tag, channels, rate, bits));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = format?;
            if tag != 1 || channels != 1 || bits != 16 {
                return None;
            }
            let samples = body
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            return Some((rate, samples));
        }
        pos += 8 + len + (len & 1);
    }
    None
}

fn wavs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs the detector over every 8 kHz WAV under `dir`, as is and after a G.711 A-law round
/// trip; returns (seconds of audio, false digits with their file).
fn talk_off(dir: &Path) -> (f64, Vec<String>) {
    let mut seconds = 0.0;
    let mut false_digits = Vec::new();
    for path in wavs(dir) {
        let Some((rate, pcm)) = read_wav(&path) else {
            continue;
        };
        if rate != 8000 {
            continue;
        }
        seconds += pcm.len() as f64 / 8000.0;
        let mut alaw = vec![0u8; pcm.len()];
        Law::A.encode(&pcm, &mut alaw);
        let mut through_alaw = vec![0i16; pcm.len()];
        Law::A.decode(&alaw, &mut through_alaw);
        for signal in [&pcm, &through_alaw] {
            let mut det = DtmfDetector::new(8000).unwrap();
            for frame in signal.chunks(160) {
                det.process(frame, |e| {
                    if let DtmfEvent::Begin { digit, start } = e {
                        false_digits.push(format!(
                            "{} at {:.2} s: {digit}",
                            path.display(),
                            start as f64 / 8000.0
                        ));
                    }
                });
            }
        }
    }
    (seconds, false_digits)
}

#[test]
fn no_digits_in_speech() {
    let dir = Path::new("/usr/share/asterisk/sounds/en");
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED: {} missing (Debian package asterisk-core-sounds-en-wav)",
            dir.display()
        );
        return;
    }
    let (seconds, false_digits) = talk_off(dir);
    eprintln!(
        "speech: {:.1} min, {} false digits",
        seconds / 60.0,
        false_digits.len()
    );
    assert!(seconds >= 600.0, "only {seconds:.0} s of speech found");
    assert!(false_digits.is_empty(), "{false_digits:#?}");
}

#[test]
fn no_digits_in_music() {
    let dir = Path::new("/usr/share/asterisk/moh");
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED: {} missing (Debian package asterisk-moh-opsound-wav)",
            dir.display()
        );
        return;
    }
    let (seconds, false_digits) = talk_off(dir);
    eprintln!(
        "music: {:.1} min, {} false digits",
        seconds / 60.0,
        false_digits.len()
    );
    assert!(seconds >= 300.0, "only {seconds:.0} s of music found");
    assert!(false_digits.is_empty(), "{false_digits:#?}");
}
