//! The DSP stages chained as a gateway line uses them: in-band DTMF generated at 48 kHz,
//! down-sampled, carried through Opus and G.711, and detected on the 8 kHz side.

#![allow(clippy::unwrap_used)]

use media_core::codec::g711::Law;
use media_core::codec::opus::{OpusDecoder, OpusEncoder, OpusSettings};
use media_core::codec::plc::{G711Decoder, G711Encoder};
use media_core::codec::{Decoder, Encoder};
use media_core::dtmf::goertzel::{DtmfDetector, DtmfEvent};
use media_core::dtmf::tones::{ToneGenerator, ToneSettings};
use media_core::resample::Resampler;

const DIGITS: &str = "123A456B789C*0#D";

/// Generates all 16 digits (100 ms on, 60 ms off) at `rate` in 20 ms frames.
fn tones(rate: u32) -> Vec<i16> {
    let mut g = ToneGenerator::new(rate, &ToneSettings::default()).unwrap();
    for d in DIGITS.chars() {
        g.queue(d).unwrap();
    }
    let mut out = Vec::new();
    let mut frame = vec![0i16; rate as usize / 50];
    while g.fill(&mut frame) {
        out.extend_from_slice(&frame);
    }
    out.extend(std::iter::repeat_n(0, rate as usize / 5));
    out
}

fn detect_8k(pcm: &[i16]) -> String {
    let mut det = DtmfDetector::new(8000).unwrap();
    let mut got = String::new();
    for f in pcm.chunks(160) {
        det.process(f, |e| {
            if let DtmfEvent::Begin { digit, .. } = e {
                got.push(digit);
            }
        });
    }
    got
}

#[test]
fn dtmf_48k_resampled_through_alaw_is_detected() {
    let pcm48 = tones(48000);
    let mut down = Resampler::new(48000, 8000).unwrap();
    let mut enc = G711Encoder::new(Law::A);
    let mut dec = G711Decoder::new(Law::A);
    let mut out = Vec::new();
    let (mut pcm8, mut codes, mut back) = ([0i16; 160], [0u8; 160], [0i16; 160]);
    for f in pcm48.chunks(960) {
        let n = down.process(f, &mut pcm8);
        let m = enc.encode(&pcm8[..n], &mut codes).unwrap();
        let k = dec.decode(&codes[..m], &mut back).unwrap();
        out.extend_from_slice(&back[..k]);
    }
    assert_eq!(detect_8k(&out), DIGITS);
}

#[test]
fn dtmf_through_opus_24kbps_decoded_to_8k_is_detected() {
    // media.md §4: tones survive Opus at 24 kbps; the gateway detects on the 8 kHz side.
    for (enc_rate, cx) in [(8000u32, 5u8), (48000, 5), (8000, 0)] {
        let pcm = tones(enc_rate);
        let settings = OpusSettings {
            complexity: cx,
            ..OpusSettings::default()
        };
        let mut enc = OpusEncoder::new(enc_rate, 1, &settings).unwrap();
        let mut dec = OpusDecoder::new(8000, 1).unwrap();
        let mut out = Vec::new();
        let mut pkt = [0u8; 1500];
        let mut frame = [0i16; 160];
        for f in pcm.chunks(enc_rate as usize / 50) {
            let n = enc.encode(f, &mut pkt).unwrap();
            let m = dec.decode(&pkt[..n], &mut frame).unwrap();
            out.extend_from_slice(&frame[..m]);
        }
        assert_eq!(detect_8k(&out), DIGITS, "Opus at {enc_rate} Hz cx{cx}");
    }
}

#[test]
fn g711_loss_is_concealed_without_false_digits() {
    // Speech-like audio with every fifth frame lost: concealment must not invent DTMF.
    let mut enc = G711Encoder::new(Law::Mu);
    let mut dec = G711Decoder::new(Law::Mu);
    let mut det = DtmfDetector::new(8000).unwrap();
    let mut digits = 0;
    let (mut codes, mut pcm) = ([0u8; 160], [0i16; 160]);
    let mut phase = 0.0f64;
    for i in 0..500 {
        let mut frame = [0i16; 160];
        for (n, s) in frame.iter_mut().enumerate() {
            let t = (i * 160 + n) as f64 / 8000.0;
            let f0 = 120.0 + 40.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
            phase += 2.0 * std::f64::consts::PI * f0 / 8000.0;
            let v = (1..12)
                .map(|k| (k as f64 * phase).sin() / k as f64)
                .sum::<f64>();
            *s = (v * 5000.0) as i16;
        }
        enc.encode(&frame, &mut codes).unwrap();
        if i % 5 == 4 {
            dec.conceal(None, &mut pcm).unwrap();
        } else {
            dec.decode(&codes, &mut pcm).unwrap();
        }
        det.process(&pcm, |e| {
            if matches!(e, DtmfEvent::Begin { .. }) {
                digits += 1;
            }
        });
    }
    assert_eq!(digits, 0);
}
