//! In-band DTMF detection with Goertzel filters, to the receiver profile of media.md §7.1
//! (ITU-T Q.24 / Bellcore figures).
//!
//! # Method
//!
//! The input is cut into blocks of 102 samples at 8 kHz (12.75 ms; 204 at 16 kHz, 612 at
//! 48 kHz: the filters run at the input rate, no decimation, so every threshold is the same at
//! every rate). A 102-sample block puts neighbouring row frequencies about one DFT bin apart, so a
//! tone leaves its neighbours near a null. Each block is two halves; a Goertzel filter per DTMF
//! frequency gives one complex value per half. For each block:
//!
//! 1. *Energy*: the strongest row and column tone must each reach `min_level_dbm0` (−38 dBm0 by
//!    default: 26 dB of dynamic range below a −10 dBm0 sender with 8 dB twist to spare, and
//!    safely above the −42 dBm0 that must never be detected).
//! 2. *Relative peak*: every other tone of each group is at least 6 dB below the strongest.
//! 3. *Frequency*: the phase advance from half to half (over the block and from the previous
//!    block's second half) gives each tone's actual frequency; both must lie within ±2.5 % of
//!    nominal — half-way between the ±1.5 % that must be accepted and the ±3.5 % that must be
//!    rejected (a fixed-length Goertzel cannot make that distinction at both 697 and 1633 Hz by
//!    magnitude alone). Each tone's power is then corrected for the Goertzel loss at its
//!    measured offset.
//! 4. *Twist*: the column tone may be up to `normal_twist_db` (8 dB) weaker or
//!    `reverse_twist_db` (4 dB) stronger than the row tone, plus 2.5 dB of allowance for the
//!    other tone's leakage, which moves single-block readings by up to about ±1.5 dB.
//! 5. *Purity*: the two corrected tone powers carry at least −0.8 dB of the block's total energy
//!    (speech and music spread their energy; a DTMF pair does not). This is the main talk-off
//!    defence.
//!
//! A digit begins after **two successive blocks** agree (so ≥ 25.5 ms of tone; a 40 ms tone always
//! spans two whole blocks) and ends after **three successive blocks** do not (up to two missed
//! blocks are ridden over, so a sample slip or an interruption of up to 10 ms does not split a
//! digit; a 40 ms pause always fails at least three blocks, the partly filled ones at its edges
//! failing the purity check). Positions are sample counts since the detector was created.
//!
//! Cost: 8 Goertzel updates per sample plus a few dozen operations per block; no allocation.

use crate::dtmf::{keypad, COL_HZ, DBM0_PEAK, ROW_HZ};
use crate::error::{MediaError, Result};

/// Block length at 8 kHz.
const BLOCK_8K: usize = 102;

/// Detector thresholds (defaults per media.md §7.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorParams {
    /// Lowest accepted level of each tone, dBm0 (default −38).
    pub min_level_dbm0: f32,
    /// Largest accepted normal twist (column tone weaker than row tone), dB (default 8).
    pub normal_twist_db: f32,
    /// Largest accepted reverse twist (column tone stronger than row tone), dB (default 4).
    pub reverse_twist_db: f32,
    /// Smallest margin of the strongest tone of a group over the others, dB (default 6: with
    /// 8 dB of normal twist, the strong row tone's leakage plus the weak column tone's own put a
    /// neighbouring column bin only about 8 dB down, so 8 dB would reject valid digits such as
    /// `0`).
    pub relative_peak_db: f32,
    /// Smallest share of the block's energy in the two tones after correcting each tone's power
    /// for its measured frequency offset, dB (default −0.8: valid digits measured down to about
    /// −0.5 dB in the tests; −1.5 dB already let speech through on the talk-off corpus).
    pub purity_db: f32,
    /// Largest accepted frequency deviation, fraction of nominal (default 0.025).
    pub max_deviation: f32,
}

impl Default for DetectorParams {
    fn default() -> Self {
        Self {
            min_level_dbm0: -38.0,
            normal_twist_db: 8.0,
            reverse_twist_db: 4.0,
            relative_peak_db: 6.0,
            purity_db: -0.8,
            max_deviation: 0.025,
        }
    }
}

/// Successive non-matching blocks that end a digit. Two can be spanned by an interruption of up
/// to 10 ms (which must not split a digit); a 40 ms pause always yields at least three.
const MISSES_TO_END: u8 = 3;

/// Allowance added to both twist limits for the Goertzel loss of an off-frequency tone and
/// block-to-block leakage.
const TWIST_ALLOWANCE_DB: f32 = 2.5;

/// A power ratio from decibels.
fn db(x: f32) -> f32 {
    10f32.powf(x / 10.0)
}

/// What the detector reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEvent {
    /// A digit was recognised; `start` is the sample position where its first block began.
    Begin {
        /// The digit (`0-9`, `*`, `#`, `A-D`).
        digit: char,
        /// First sample of the tone (block resolution).
        start: u64,
    },
    /// The digit ended; `end` is one past the last sample of its last matching block.
    End {
        /// The digit.
        digit: char,
        /// As in [`DtmfEvent::Begin`].
        start: u64,
        /// End position (block resolution); `end - start` is the duration in samples.
        end: u64,
    },
}

/// Streaming in-band DTMF detector for one direction of one call.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    sample_rate: u32,
    params: DetectorParams,
    half: usize,
    /// 2 cos ω per frequency (rows then columns).
    coef: [f32; 8],
    cos_w: [f32; 8],
    sin_w: [f32; 8],
    /// e^{-jωh} per frequency (h = half block).
    rot: [(f32, f32); 8],
    /// ω × h per frequency, for the deviation estimate.
    wh: [f32; 8],
    s1: [f32; 8],
    s2: [f32; 8],
    /// First half's Goertzel outputs.
    first: [(f32, f32); 8],
    /// The previous block's second-half outputs.
    prev_second: [(f32, f32); 8],
    in_half: usize,
    second_half: bool,
    energy: f32,
    /// Thresholds in Goertzel-power units for a full block.
    min_power: f32,
    /// Power ratios of the normal and reverse twist, relative peak and purity limits.
    factors: [f32; 4],
    pos: u64,
    block_start: u64,
    prev_hit: Option<char>,
    prev_start: u64,
    current: Option<(char, u64)>,
    last_match_end: u64,
    misses: u8,
}

impl DtmfDetector {
    /// A detector at `sample_rate` (8000, 16000 or 48000 Hz) with default thresholds.
    pub fn new(sample_rate: u32) -> Result<Self> {
        Self::with_params(sample_rate, DetectorParams::default())
    }

    /// A detector with explicit thresholds.
    pub fn with_params(sample_rate: u32, params: DetectorParams) -> Result<Self> {
        if !matches!(sample_rate, 8000 | 16000 | 48000) {
            return Err(MediaError::invalid(format!(
                "DTMF detection runs at 8000, 16000 or 48000 Hz, not {sample_rate}"
            )));
        }
        let scale = (sample_rate / 8000) as usize;
        let block = BLOCK_8K * scale;
        let half = block / 2;
        let mut coef = [0.0; 8];
        let mut cos_w = [0.0; 8];
        let mut sin_w = [0.0; 8];
        let mut rot = [(0.0, 0.0); 8];
        let mut wh = [0.0; 8];
        for (k, f) in ROW_HZ.iter().chain(COL_HZ.iter()).enumerate() {
            let w = 2.0 * std::f64::consts::PI * f64::from(*f) / f64::from(sample_rate);
            coef[k] = (2.0 * w.cos()) as f32;
            cos_w[k] = w.cos() as f32;
            sin_w[k] = w.sin() as f32;
            let a = w * half as f64;
            rot[k] = (a.cos() as f32, (-a.sin()) as f32);
            wh[k] = a as f32;
        }
        // A tone of amplitude A gives |X|² = (A·N/2)² over a block of N samples; its level in
        // dBm0 is 20·log10(A / DBM0_PEAK).
        let a_min = DBM0_PEAK * 10f32.powf(params.min_level_dbm0 / 20.0);
        let min_power = (a_min * block as f32 / 2.0).powi(2);
        Ok(Self {
            sample_rate,
            params,
            half,
            coef,
            cos_w,
            sin_w,
            rot,
            wh,
            s1: [0.0; 8],
            s2: [0.0; 8],
            first: [(0.0, 0.0); 8],
            prev_second: [(0.0, 0.0); 8],
            in_half: 0,
            second_half: false,
            energy: 0.0,
            min_power,
            factors: [
                db(params.normal_twist_db + TWIST_ALLOWANCE_DB),
                db(params.reverse_twist_db + TWIST_ALLOWANCE_DB),
                db(params.relative_peak_db),
                db(params.purity_db),
            ],
            pos: 0,
            block_start: 0,
            prev_hit: None,
            prev_start: 0,
            current: None,
            last_match_end: 0,
            misses: 0,
        })
    }

    /// The input sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Samples consumed so far (the position of the next sample).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The digit currently being heard, if any.
    pub fn current_digit(&self) -> Option<char> {
        self.current.map(|c| c.0)
    }

    /// Feeds PCM (any length, typically one 10 or 20 ms frame) and calls `on_event` for each digit
    /// that begins or ends within it, in order.
    pub fn process<F: FnMut(DtmfEvent)>(&mut self, pcm: &[i16], mut on_event: F) {
        let mut rest = pcm;
        while !rest.is_empty() {
            let take = (self.half - self.in_half).min(rest.len());
            let (now, later) = rest.split_at(take);
            rest = later;
            let (mut s1, mut s2) = (self.s1, self.s2);
            let mut energy = self.energy;
            for &x in now {
                let x = f32::from(x);
                energy += x * x;
                for k in 0..8 {
                    let s = x + self.coef[k] * s1[k] - s2[k];
                    s2[k] = s1[k];
                    s1[k] = s;
                }
            }
            self.s1 = s1;
            self.s2 = s2;
            self.energy = energy;
            self.in_half += take;
            self.pos += take as u64;
            if self.in_half == self.half {
                self.end_half(&mut on_event);
            }
        }
    }

    /// Clears the filters and the digit state without reporting an end (the sample position keeps
    /// counting).
    pub fn reset(&mut self) {
        self.s1 = [0.0; 8];
        self.s2 = [0.0; 8];
        self.first = [(0.0, 0.0); 8];
        self.prev_second = [(0.0, 0.0); 8];
        self.in_half = 0;
        self.second_half = false;
        self.energy = 0.0;
        self.block_start = self.pos;
        self.prev_hit = None;
        self.current = None;
        self.misses = 0;
    }

    /// Ends a digit in progress (for example when the call ends), reporting its end.
    pub fn flush<F: FnMut(DtmfEvent)>(&mut self, mut on_event: F) {
        if let Some((digit, start)) = self.current.take() {
            on_event(DtmfEvent::End {
                digit,
                start,
                end: self.last_match_end,
            });
        }
        self.prev_hit = None;
        self.misses = 0;
    }

    fn end_half<F: FnMut(DtmfEvent)>(&mut self, on_event: &mut F) {
        let mut y = [(0.0f32, 0.0f32); 8];
        for (k, out) in y.iter_mut().enumerate() {
            *out = (
                self.s1[k] - self.cos_w[k] * self.s2[k],
                self.sin_w[k] * self.s2[k],
            );
        }
        self.s1 = [0.0; 8];
        self.s2 = [0.0; 8];
        self.in_half = 0;
        if !self.second_half {
            self.first = y;
            self.second_half = true;
            return;
        }
        self.second_half = false;
        let hit = self.classify(&y);
        self.prev_second = y;
        self.energy = 0.0;
        let block_end = self.pos;
        let block_start = self.block_start;
        self.block_start = block_end;
        self.decide(hit, block_start, block_end, on_event);
    }

    /// Runs the per-block checks; returns the digit if the block holds a valid DTMF pair.
    fn classify(&self, second: &[(f32, f32); 8]) -> Option<char> {
        let mut power = [0.0f32; 8];
        for k in 0..8 {
            let (a, b) = (self.first[k], second[k]);
            let (r0, r1) = self.rot[k];
            // Full-block value: first half + e^{-jωh} × second half.
            let re = a.0 + r0 * b.0 - r1 * b.1;
            let im = a.1 + r0 * b.1 + r1 * b.0;
            power[k] = re * re + im * im;
        }
        let best = |range: std::ops::Range<usize>| {
            let mut i = range.start;
            for k in range {
                if power[k] > power[i] {
                    i = k;
                }
            }
            i
        };
        let r = best(0..4);
        let c = best(4..8);
        if power[r] < self.min_power || power[c] < self.min_power {
            return None;
        }
        let [normal, reverse, peak, purity] = self.factors;
        for (k, &pk) in power.iter().enumerate() {
            if k != r && k != c && pk * peak > if k < 4 { power[r] } else { power[c] } {
                return None;
            }
        }
        // Frequency of each tone, and its power corrected for the Goertzel loss at that offset.
        let mut corrected = [0.0f32; 2];
        for (slot, k) in [r, c].into_iter().enumerate() {
            let (p, a, b) = (self.prev_second[k], self.first[k], second[k]);
            // x × conj(y) over the two half-to-half steps ending in this block (the previous
            // block's second half to this block's first, and first to second), summed so that
            // strong halves weigh more; its angle rotated by e^{-jωh} is φ = h·(ω' − ω).
            let zr = b.0 * a.0 + b.1 * a.1 + a.0 * p.0 + a.1 * p.1;
            let zi = b.1 * a.0 - b.0 * a.1 + a.1 * p.0 - a.0 * p.1;
            let (r0, r1) = self.rot[k];
            let (wr, wi) = (zr * r0 - zi * r1, zr * r1 + zi * r0);
            let phi = wi.atan2(wr);
            if (phi / self.wh[k]).abs() > self.params.max_deviation {
                return None;
            }
            // A tone Δf off a rectangular 2h-sample filter loses (sin φ / φ)², φ = π·Δf·2h/fs,
            // which is the same φ.
            let loss = if phi.abs() < 1e-3 {
                1.0
            } else {
                (phi.sin() / phi).powi(2)
            };
            corrected[slot] = power[k] / loss.max(0.25);
        }
        let [pr, pc] = corrected;
        if pc < pr / normal || pc > pr * reverse {
            return None;
        }
        // Two tones of mean squares m_r, m_c give |X|² = m·N²/2 each; the block's energy is
        // (m_r + m_c)·N.
        let n = (2 * self.half) as f32;
        if (pr + pc) * 2.0 / (n * n) < self.energy / n * purity {
            return None;
        }
        Some(keypad(r, c - 4))
    }

    fn decide<F: FnMut(DtmfEvent)>(
        &mut self,
        hit: Option<char>,
        start: u64,
        end: u64,
        on_event: &mut F,
    ) {
        if let Some((digit, dstart)) = self.current {
            if hit == Some(digit) {
                self.misses = 0;
                self.last_match_end = end;
            } else {
                self.misses += 1;
                if self.misses >= MISSES_TO_END {
                    on_event(DtmfEvent::End {
                        digit,
                        start: dstart,
                        end: self.last_match_end,
                    });
                    self.current = None;
                    self.misses = 0;
                }
            }
        } else if let Some(d) = hit {
            if self.prev_hit == Some(d) {
                self.current = Some((d, self.prev_start));
                self.last_match_end = end;
                self.misses = 0;
                on_event(DtmfEvent::Begin {
                    digit: d,
                    start: self.prev_start,
                });
            }
        }
        self.prev_hit = hit;
        self.prev_start = start;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dtmf::digit_frequencies;

    /// An independent tone synthesiser (f64 sines, not the generator in `tones`).
    fn tone(rate: u32, f1: f64, f2: f64, dbm1: f64, dbm2: f64, ms: u32) -> Vec<f64> {
        let a1 = f64::from(DBM0_PEAK) * 10f64.powf(dbm1 / 20.0);
        let a2 = f64::from(DBM0_PEAK) * 10f64.powf(dbm2 / 20.0);
        let n = (rate * ms / 1000) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                a1 * (2.0 * std::f64::consts::PI * f1 * t).sin()
                    + a2 * (2.0 * std::f64::consts::PI * f2 * t).sin()
            })
            .collect()
    }

    fn to_pcm(x: &[f64]) -> Vec<i16> {
        x.iter()
            .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    /// Digits detected (Begin events) over `pcm`, fed in 20 ms frames.
    fn detect(rate: u32, pcm: &[i16]) -> String {
        let mut det = DtmfDetector::new(rate).unwrap();
        let mut got = String::new();
        for chunk in pcm.chunks(rate as usize / 50) {
            det.process(chunk, |e| {
                if let DtmfEvent::Begin { digit, .. } = e {
                    got.push(digit);
                }
            });
        }
        got
    }

    fn digit_signal(
        rate: u32,
        digit: char,
        dev: f64,
        lo_dbm: f64,
        hi_dbm: f64,
        ms: u32,
    ) -> Vec<i16> {
        let (r, c) = digit_frequencies(digit).unwrap();
        let mut x = vec![0.0; rate as usize / 20];
        x.extend(tone(
            rate,
            f64::from(r) * (1.0 + dev),
            f64::from(c) * (1.0 + dev),
            lo_dbm,
            hi_dbm,
            ms,
        ));
        x.extend(vec![0.0; rate as usize / 10]);
        to_pcm(&x)
    }

    #[test]
    fn all_digits_at_all_rates() {
        for rate in [8000, 16000, 48000] {
            for d in "123A456B789C*0#D".chars() {
                let got = detect(rate, &digit_signal(rate, d, 0.0, -10.0, -10.0, 60));
                assert_eq!(got, d.to_string(), "{rate} Hz digit {d}");
            }
        }
    }

    #[test]
    fn event_positions_and_duration() {
        let pcm = digit_signal(8000, '5', 0.0, -10.0, -10.0, 100);
        let mut det = DtmfDetector::new(8000).unwrap();
        let mut events = Vec::new();
        det.process(&pcm, |e| events.push(e));
        assert_eq!(events.len(), 2, "{events:?}");
        let DtmfEvent::End { digit, start, end } = events[1] else {
            panic!("{events:?}")
        };
        assert_eq!(digit, '5');
        // Tone from sample 400 to 1200: block resolution is 102 samples.
        assert!((400..=502).contains(&start), "start {start}");
        let dur = end - start;
        assert!((600..=900).contains(&dur), "duration {dur}");
    }

    #[test]
    fn frequency_deviation_accept_and_reject() {
        // Equal levels, 8 dB normal twist near the bottom of the range, 4 dB reverse twist at it.
        for (lo, hi) in [(-10.0, -10.0), (-18.0, -26.0), (-26.0, -22.0), (-3.0, -3.0)] {
            for d in "123A456B789C*0#D".chars() {
                for dev in [-0.015, -0.01, 0.0, 0.01, 0.015] {
                    let got = detect(8000, &digit_signal(8000, d, dev, lo, hi, 60));
                    assert_eq!(got, d.to_string(), "{d} at {dev:+}, {lo}/{hi} dBm0");
                }
                for dev in [-0.05, -0.035, 0.035, 0.05] {
                    let got = detect(8000, &digit_signal(8000, d, dev, lo, hi, 60));
                    assert_eq!(got, "", "{d} at {dev:+}, {lo}/{hi} dBm0 must be rejected");
                }
            }
        }
    }

    #[test]
    fn twist_limits() {
        for d in "1596*#D".chars() {
            // Normal twist (column weaker) 8 dB, reverse twist (column stronger) 4 dB: accepted.
            assert_eq!(
                detect(8000, &digit_signal(8000, d, 0.0, -8.0, -16.0, 60)),
                d.to_string()
            );
            assert_eq!(
                detect(8000, &digit_signal(8000, d, 0.0, -12.0, -8.0, 60)),
                d.to_string()
            );
            // Well beyond: rejected.
            assert_eq!(
                detect(8000, &digit_signal(8000, d, 0.0, -6.0, -20.0, 60)),
                ""
            );
            assert_eq!(
                detect(8000, &digit_signal(8000, d, 0.0, -18.0, -8.0, 60)),
                ""
            );
        }
    }

    #[test]
    fn minimum_duration_and_pause() {
        for d in "3#0".chars() {
            assert_eq!(
                detect(8000, &digit_signal(8000, d, 0.0, -10.0, -10.0, 40)),
                d.to_string()
            );
            assert_eq!(
                detect(8000, &digit_signal(8000, d, 0.0, -10.0, -10.0, 20)),
                ""
            );
        }
        // The same digit twice with a 40 ms pause is two digits; with a 10 ms gap it is one.
        for (pause, expect) in [(40u32, "77"), (50, "77"), (10, "7")] {
            for offset in 0..15 {
                let (r, c) = digit_frequencies('7').unwrap();
                let mut x = vec![0.0; 7 * offset];
                x.extend(tone(8000, f64::from(r), f64::from(c), -10.0, -10.0, 50));
                x.extend(vec![0.0; (pause * 8) as usize]);
                x.extend(tone(8000, f64::from(r), f64::from(c), -10.0, -10.0, 50));
                x.extend(vec![0.0; 800]);
                assert_eq!(
                    detect(8000, &to_pcm(&x)),
                    expect,
                    "pause {pause} offset {offset}"
                );
            }
        }
    }

    #[test]
    fn level_range() {
        for d in "159D".chars() {
            for dbm in [0.0, -10.0, -20.0, -26.0, -30.0] {
                let got = detect(8000, &digit_signal(8000, d, 0.0, dbm, dbm, 60));
                assert_eq!(got, d.to_string(), "{d} at {dbm} dBm0");
            }
            for dbm in [-42.0, -45.0, -55.0] {
                let got = detect(8000, &digit_signal(8000, d, 0.0, dbm, dbm, 60));
                assert_eq!(got, "", "{d} at {dbm} dBm0 must not be detected");
            }
        }
    }

    #[test]
    fn noise_at_15_db_snr() {
        let mut rng = 0x9E37_79B9u32;
        let mut noise = || {
            // Sum of uniforms ≈ Gaussian, unit variance.
            let mut s = 0.0;
            for _ in 0..12 {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                s += f64::from(rng) / f64::from(u32::MAX);
            }
            s - 6.0
        };
        let mut detected = 0;
        let digits = "123A456B789C*0#D";
        for d in digits.chars() {
            let (r, c) = digit_frequencies(d).unwrap();
            let sig = tone(8000, f64::from(r), f64::from(c), -20.0, -20.0, 60);
            let p: f64 = sig.iter().map(|v| v * v).sum::<f64>() / sig.len() as f64;
            let sigma = (p / 10f64.powf(1.5)).sqrt();
            let mut x: Vec<f64> = (0..400).map(|_| 0.0).collect();
            x.extend(sig);
            x.extend((0..800).map(|_| 0.0));
            let x: Vec<f64> = x.iter().map(|v| v + sigma * noise()).collect();
            if detect(8000, &to_pcm(&x)) == d.to_string() {
                detected += 1;
            }
        }
        assert_eq!(detected, 16);
    }

    #[test]
    fn all_digits_through_alaw_at_the_profile_edges() {
        use crate::codec::g711::Law;
        for d in "123A456B789C*0#D".chars() {
            for (dev, lo, hi) in [
                (0.015, -26.0, -26.0),
                (-0.015, -26.0, -26.0),
                (0.015, -18.0, -26.0),
                (-0.015, -26.0, -22.0),
                (0.0, -3.0, -3.0),
            ] {
                let pcm = digit_signal(8000, d, dev, lo, hi, 45);
                let mut codes = vec![0u8; pcm.len()];
                Law::A.encode(&pcm, &mut codes);
                let mut back = vec![0i16; pcm.len()];
                Law::A.decode(&codes, &mut back);
                assert_eq!(
                    detect(8000, &back),
                    d.to_string(),
                    "{d} dev {dev} at {lo}/{hi} dBm0"
                );
            }
        }
    }

    #[test]
    fn reset_and_flush() {
        let pcm = digit_signal(8000, '9', 0.0, -10.0, -10.0, 200);
        let mut det = DtmfDetector::new(8000).unwrap();
        let mut events = Vec::new();
        det.process(&pcm[..1200], |e| events.push(e));
        assert_eq!(det.current_digit(), Some('9'));
        det.flush(|e| events.push(e));
        assert!(matches!(
            events[..],
            [DtmfEvent::Begin { .. }, DtmfEvent::End { digit: '9', .. }]
        ));
        det.reset();
        assert_eq!(det.current_digit(), None);
        det.process(&pcm[1200..], |e| events.push(e));
        assert!(matches!(events[2], DtmfEvent::Begin { digit: '9', .. }));
        assert_eq!(det.position(), pcm.len() as u64);
    }

    #[test]
    fn rejects_unsupported_rate() {
        assert!(DtmfDetector::new(44100).is_err());
    }
}
