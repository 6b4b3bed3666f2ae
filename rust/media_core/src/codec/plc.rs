//! G.711 packet-loss concealment after the method of ITU-T G.711 Appendix I, and the G.711
//! [`Encoder`]/[`Decoder`] pair that uses it.
//!
//! The concealer keeps the last 48.75 ms of good audio (390 samples at 8 kHz: three of the
//! longest pitch periods plus a quarter period). When a frame is lost it:
//!
//! 1. estimates the pitch period (2.5–15 ms, 66–400 Hz) by normalised cross-correlation of the
//!    last 20 ms against the history, a coarse search at every other lag then a fine one;
//! 2. repeats the last pitch period, smoothing the wrap-around with a quarter-period overlap-add
//!    of the samples that precede the repeated period (so each repetition flows into the next),
//!    and removes the step at the very start of the loss with a quarter-period correction ramp —
//!    unlike Appendix I this adds no algorithmic delay, because the correction acts on the
//!    synthetic signal instead of on already played samples;
//! 3. after 10 ms widens the repeated segment to two and after 20 ms to three pitch periods, so a
//!    long loss does not sound like a buzz;
//! 4. attenuates linearly by 20 % per 10 ms from 10 ms on, reaching silence at 60 ms;
//! 5. on the first good frame, cross-fades from the continued synthetic signal into the real one
//!    over 4 ms, plus 4 ms for each further 10 ms lost, at most 10 ms.
//!
//! Written from the algorithm's description; no reference code was used. Nothing allocates after
//! construction.

use crate::codec::g711::Law;
use crate::codec::{Decoder, Encoder};
use crate::error::{MediaError, Result};

/// History length at 8 kHz: 3 × 120-sample maximum pitch + 30-sample quarter period.
const HIST_8K: usize = 390;
/// Shortest pitch period at 8 kHz (200 Hz would be 40; Appendix I's bound).
const PITCH_MIN_8K: usize = 40;
/// Longest pitch period at 8 kHz (66.7 Hz).
const PITCH_MAX_8K: usize = 120;
/// Correlation window at 8 kHz (20 ms).
const CORR_8K: usize = 160;
/// 10 ms at 8 kHz.
const MS10_8K: usize = 80;

/// G.711 Appendix I-style concealment state for one stream.
#[derive(Debug, Clone)]
pub struct G711Concealer {
    sample_rate: u32,
    /// Samples per 8 kHz sample (1, 2, 3, 4 or 6).
    scale: usize,
    /// The last `hist.len()` output samples, oldest first.
    hist: Vec<i16>,
    /// Snapshot of `hist` as floats, taken when a loss starts.
    pbuf: Vec<f32>,
    /// Samples concealed in the current loss; 0 when not in a loss.
    lost: usize,
    /// Pitch period found at the start of the loss, in samples.
    pitch: usize,
    /// Pitch periods being repeated (1..=3).
    periods: usize,
    /// Position in the repeated segment (0..periods × pitch).
    pos: usize,
    /// Step between the last real sample and the synthetic signal, ramped out over `quarter`.
    offset: f32,
}

impl G711Concealer {
    /// Creates a concealer for PCM at `sample_rate`: 8000 Hz (G.711's rate) or 16000, 24000,
    /// 32000, 48000 Hz (all time constants scale with the rate).
    pub fn new(sample_rate: u32) -> Result<Self> {
        if sample_rate % 8000 != 0 || !(8000..=48000).contains(&sample_rate) || sample_rate == 40000
        {
            return Err(MediaError::invalid(format!(
                "G.711 concealment runs at 8000, 16000, 24000, 32000 or 48000 Hz, not {sample_rate}"
            )));
        }
        Ok(Self::with_scale((sample_rate / 8000) as usize))
    }

    /// A concealer at `scale` × 8000 Hz (`scale` already validated).
    fn with_scale(scale: usize) -> Self {
        Self {
            sample_rate: 8000 * scale as u32,
            scale,
            hist: vec![0; HIST_8K * scale],
            pbuf: vec![0.0; HIST_8K * scale],
            lost: 0,
            pitch: PITCH_MIN_8K * scale,
            periods: 1,
            pos: 0,
            offset: 0.0,
        }
    }

    /// The sample rate given to [`G711Concealer::new`].
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Whether the last call was a concealment (the stream is inside a loss).
    pub fn in_loss(&self) -> bool {
        self.lost > 0
    }

    /// Records a correctly received frame. After a loss, first cross-fades the start of `pcm`
    /// from the synthetic signal into the real one (modifying `pcm` in place), then stores it as
    /// history. Frames of any length are accepted.
    pub fn good_frame(&mut self, pcm: &mut [i16]) {
        if self.lost > 0 {
            let ms10 = MS10_8K * self.scale;
            let extra = (self.lost - 1) / ms10;
            let ola = ((4 + 4 * extra).min(10) * 8 * self.scale).min(pcm.len());
            for (i, s) in pcm[..ola].iter_mut().enumerate() {
                let synth = self.next_synthetic();
                let w = (i + 1) as f32 / (ola + 1) as f32;
                *s = saturate(w * f32::from(*s) + (1.0 - w) * synth);
            }
            self.lost = 0;
        }
        self.push_history(pcm);
    }

    /// Fills `out` with a concealment of lost audio, continuing from earlier calls in the same
    /// loss. Silence before any good frame was seen and after 60 ms of continuous loss.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if self.lost == 0 {
            self.start_loss();
        }
        for s in out.iter_mut() {
            *s = saturate(self.next_synthetic());
        }
        // The concealment is history for a loss that continues into a later good frame's merge,
        // but a new loss must search the pitch on real audio, so `hist` is left untouched.
    }

    fn push_history(&mut self, pcm: &[i16]) {
        let h = self.hist.len();
        if pcm.len() >= h {
            self.hist.copy_from_slice(&pcm[pcm.len() - h..]);
        } else {
            self.hist.copy_within(pcm.len().., 0);
            self.hist[h - pcm.len()..].copy_from_slice(pcm);
        }
    }

    fn start_loss(&mut self) {
        for (p, &h) in self.pbuf.iter_mut().zip(&self.hist) {
            *p = f32::from(h);
        }
        self.pitch = self.find_pitch();
        self.periods = 1;
        self.pos = 0;
        let end = self.pbuf.len();
        // The loop restarts at pbuf[end - pitch], which naturally follows pbuf[end - pitch - 1];
        // the real signal ended at pbuf[end - 1]. Their difference is the step to ramp out.
        self.offset = self.pbuf[end - 1] - self.pbuf[end - self.pitch - 1];
    }

    /// Pitch period by normalised cross-correlation of the newest `CORR` samples with the history
    /// `lag` samples earlier (coarse search at even lags on every `scale`-th sample, then a fine
    /// search around the best coarse lag).
    fn find_pitch(&self) -> usize {
        let x = &self.pbuf;
        let end = x.len();
        let sc = self.scale;
        let corr = CORR_8K * sc;
        let (pmin, pmax) = (PITCH_MIN_8K * sc, PITCH_MAX_8K * sc);
        let score = |lag: usize, step: usize| -> f32 {
            let (mut xy, mut yy) = (0.0f32, 0.0f32);
            let mut i = end - corr;
            while i < end {
                let y = x[i - lag];
                xy += x[i] * y;
                yy += y * y;
                i += step;
            }
            if yy <= 0.0 {
                0.0
            } else {
                xy / yy.sqrt()
            }
        };
        let mut best = (f32::MIN, pmin);
        let mut lag = pmin;
        while lag <= pmax {
            let s = score(lag, sc);
            if s > best.0 {
                best = (s, lag);
            }
            lag += 2 * sc;
        }
        let lo = best.1.saturating_sub(2 * sc).max(pmin);
        let hi = (best.1 + 2 * sc).min(pmax);
        let mut fine = (f32::MIN, best.1);
        for lag in lo..=hi {
            let s = score(lag, 1);
            if s > fine.0 {
                fine = (s, lag);
            }
        }
        fine.1
    }

    /// One synthetic sample: the repeated pitch segment with its wrap-around overlap-add, the
    /// start-of-loss correction ramp and the loss-length attenuation. Advances the loss clock.
    fn next_synthetic(&mut self) -> f32 {
        let sc = self.scale;
        let ms10 = MS10_8K * sc;
        let p = self.pitch;
        let quarter = (p / 4).max(1);
        // Widen the repeated segment at 10 and 20 ms; the same phase lies one period further in.
        if (self.lost == ms10 || self.lost == 2 * ms10) && self.periods < 3 {
            self.periods += 1;
            self.pos += p;
        }
        let len = self.periods * p;
        let end = self.pbuf.len();
        let start = end - len;
        let k = self.pos;
        let mut v = self.pbuf[start + k];
        if k >= len - quarter {
            let j = k - (len - quarter);
            let a = (j + 1) as f32 / (quarter + 1) as f32;
            v = (1.0 - a) * v + a * self.pbuf[start - quarter + j];
        }
        if self.lost < quarter {
            v += self.offset * (1.0 - (self.lost + 1) as f32 / quarter as f32);
        }
        let gain = if self.lost < ms10 {
            1.0
        } else {
            (1.0 - 0.2 * (self.lost - ms10) as f32 / ms10 as f32).max(0.0)
        };
        self.pos = (k + 1) % len;
        self.lost = self.lost.saturating_add(1);
        v * gain
    }
}

fn saturate(v: f32) -> i16 {
    v.round().clamp(-32768.0, 32767.0) as i16
}

/// G.711 encoder for the [`Encoder`] trait: one byte per 8 kHz sample (RFC 3551 PCMA/PCMU).
#[derive(Debug, Clone, Copy)]
pub struct G711Encoder {
    law: Law,
}

impl G711Encoder {
    /// An encoder for `law`.
    pub fn new(law: Law) -> Self {
        Self { law }
    }

    /// The law this encoder uses.
    pub fn law(&self) -> Law {
        self.law
    }
}

impl Encoder for G711Encoder {
    fn sample_rate(&self) -> u32 {
        8000
    }

    /// Errors with [`MediaError::InvalidArgument`] if `out` is shorter than `pcm`.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize> {
        if out.len() < pcm.len() {
            return Err(MediaError::invalid(format!(
                "G.711 output of {} bytes is shorter than the {} input samples",
                out.len(),
                pcm.len()
            )));
        }
        Ok(self.law.encode(pcm, out))
    }
}

/// G.711 decoder for the [`Decoder`] trait, with [`G711Concealer`] for lost frames.
#[derive(Debug, Clone)]
pub struct G711Decoder {
    law: Law,
    plc: G711Concealer,
}

impl G711Decoder {
    /// A decoder for `law` at 8 kHz.
    pub fn new(law: Law) -> Self {
        Self {
            law,
            plc: G711Concealer::with_scale(1),
        }
    }

    /// The law this decoder uses.
    pub fn law(&self) -> Law {
        self.law
    }
}

impl Decoder for G711Decoder {
    fn sample_rate(&self) -> u32 {
        8000
    }

    /// Errors with [`MediaError::InvalidArgument`] if `out` is shorter than `payload`.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize> {
        if out.len() < payload.len() {
            return Err(MediaError::invalid(format!(
                "G.711 output of {} samples is shorter than the {}-byte payload",
                out.len(),
                payload.len()
            )));
        }
        let n = self.law.decode(payload, out);
        self.plc.good_frame(&mut out[..n]);
        Ok(n)
    }

    /// Fills all of `out` with [`G711Concealer::conceal`]; `next` is not used (G.711 carries no
    /// redundancy).
    fn conceal(&mut self, _next: Option<&[u8]>, out: &mut [i16]) -> Result<usize> {
        self.plc.conceal(out);
        Ok(out.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn periodic(len: usize, rate: u32) -> Vec<i16> {
        let f0 = 160.0;
        (0..len)
            .map(|n| {
                let t = n as f64 / f64::from(rate);
                let w = 2.0 * std::f64::consts::PI * f0 * t;
                (6000.0 * w.sin() + 3000.0 * (2.0 * w).sin() + 1500.0 * (3.0 * w + 0.5).sin())
                    as i16
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    /// Feeds `signal` in 10 ms frames, losing frames `lost`, and returns the output.
    fn run(rate: u32, signal: &[i16], lost: std::ops::Range<usize>) -> Vec<i16> {
        let frame = rate as usize / 100;
        let mut plc = G711Concealer::new(rate).unwrap();
        let mut out = Vec::new();
        for (i, chunk) in signal.chunks(frame).enumerate() {
            let mut buf = chunk.to_vec();
            if lost.contains(&i) {
                plc.conceal(&mut buf);
            } else {
                plc.good_frame(&mut buf);
            }
            out.extend_from_slice(&buf);
        }
        out
    }

    /// A voiced-speech-like signal: non-integer pitch period with 2 % vibrato.
    fn voiced(len: usize, rate: u32) -> Vec<i16> {
        let mut phase = 0.0f64;
        (0..len)
            .map(|n| {
                let t = n as f64 / f64::from(rate);
                let f0 = 147.3 * (1.0 + 0.02 * (2.0 * std::f64::consts::PI * 2.0 * t).sin());
                phase += 2.0 * std::f64::consts::PI * f0 / f64::from(rate);
                (6000.0 * phase.sin()
                    + 3000.0 * (2.0 * phase).sin()
                    + 1500.0 * (3.0 * phase + 0.5).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn short_loss_of_periodic_signal_stays_close() {
        for rate in [8000u32, 16000, 48000] {
            let frame = rate as usize / 100;
            for sig in [periodic(rate as usize, rate), voiced(rate as usize, rate)] {
                for start in [30, 41, 57] {
                    let out = run(rate, &sig, start..start + 1);
                    let span = start * frame..(start + 1) * frame;
                    let err: Vec<i16> = span
                        .clone()
                        .map(|i| sig[i].saturating_sub(out[i]))
                        .collect();
                    let snr = 20.0 * (rms(&sig[span]) / rms(&err).max(1e-9)).log10();
                    eprintln!("{rate} Hz: 10 ms loss at frame {start}: SNR {snr:.1} dB");
                    // Zero-filling gives 0 dB; a repeated period of a drifting pitch stays well above.
                    assert!(snr > 12.0, "{rate}: SNR {snr}");
                }
            }
        }
    }

    #[test]
    fn long_loss_fades_to_silence() {
        let sig = periodic(8000, 8000);
        let out = run(8000, &sig, 20..40);
        let r = |a: usize, b: usize| rms(&out[a * 80..b * 80]);
        let full = rms(&sig[..800]);
        assert!(r(20, 21) > 0.8 * full, "first 10 ms keep the level");
        assert!(r(22, 23) < r(21, 22), "decays");
        assert!(r(23, 24) < r(22, 23), "decays");
        assert!(r(26, 40) < 1.0, "silent after 60 ms: {}", r(26, 40));
        assert!(r(41, 50) > 0.9 * full, "recovers");
    }

    #[test]
    fn no_clicks_at_loss_start_or_merge() {
        let sig = periodic(8000, 8000);
        let max_step = sig.windows(2).map(|w| (w[1] - w[0]).abs()).max().unwrap();
        for lost in [10..11, 10..12, 10..14, 10..20] {
            let out = run(8000, &sig, lost.clone());
            let worst = out
                .windows(2)
                .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
                .max();
            let worst = worst.unwrap();
            assert!(
                worst <= i32::from(max_step) * 3 / 2,
                "{lost:?}: step {worst} vs signal's own {max_step}"
            );
        }
    }

    #[test]
    fn any_frame_lengths_are_safe() {
        for rate in [8000, 16000, 24000, 32000, 48000] {
            let mut plc = G711Concealer::new(rate).unwrap();
            let sig = periodic(rate as usize, rate);
            let mut at = 0;
            for (i, len) in [0usize, 1, 7, 160, 5000, 3, 0, 1000, 2, 40000]
                .iter()
                .enumerate()
            {
                let mut buf = vec![0i16; *len];
                for (k, b) in buf.iter_mut().enumerate() {
                    *b = sig[(at + k) % sig.len()];
                }
                at += len;
                if i % 3 == 1 {
                    plc.conceal(&mut buf);
                    assert!(plc.in_loss());
                } else {
                    plc.good_frame(&mut buf);
                }
            }
            // Full-scale square waves saturate without overflow.
            let mut sq: Vec<i16> = (0..2000)
                .map(|n| if n % 50 < 25 { i16::MAX } else { i16::MIN })
                .collect();
            plc.good_frame(&mut sq);
            plc.conceal(&mut sq[..800]);
            plc.good_frame(&mut sq[800..]);
        }
    }

    #[test]
    fn conceal_before_any_audio_is_silence() {
        let mut plc = G711Concealer::new(8000).unwrap();
        let mut buf = [123i16; 160];
        plc.conceal(&mut buf);
        assert!(buf.iter().all(|&s| s == 0));
        assert!(G711Concealer::new(44100).is_err());
        assert!(G711Concealer::new(40000).is_err());
    }

    #[test]
    fn decoder_trait_round_trip_and_conceal() {
        for law in [Law::A, Law::Mu] {
            let mut enc = G711Encoder::new(law);
            let mut dec = G711Decoder::new(law);
            let sig = periodic(1600, 8000);
            let mut payload = [0u8; 160];
            let mut pcm = [0i16; 160];
            for (i, chunk) in sig.chunks(160).enumerate() {
                assert_eq!(enc.encode(chunk, &mut payload).unwrap(), 160);
                if i == 5 {
                    assert_eq!(dec.conceal(Some(&payload), &mut pcm).unwrap(), 160);
                    assert!(rms(&pcm) > 1000.0);
                } else {
                    assert_eq!(dec.decode(&payload, &mut pcm).unwrap(), 160);
                }
            }
            assert!(enc.encode(&sig[..160], &mut payload[..10]).is_err());
            assert!(dec.decode(&payload, &mut pcm[..10]).is_err());
        }
    }
}
