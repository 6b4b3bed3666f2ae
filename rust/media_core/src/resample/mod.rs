//! Sample-rate conversion between 8, 16 and 48 kHz by integer factors (×2, ×3, ×6 and their
//! inverses) with a polyphase windowed-sinc FIR filter.
//!
//! # Filter
//!
//! One low-pass prototype per ratio `R`, designed at the higher rate: 56 × `R` − 1 taps
//! (odd, linear phase), Kaiser window with β = 6.2 (≈ 65 dB stop-band), cut-off half-way between
//! the pass-band edge at 0.85 × and the stop-band edge at 1.0 × the lower rate's Nyquist
//! frequency. For 8 kHz that is flat (< 0.01 dB ripple) to 3.4 kHz and ≥ 60 dB down from 4 kHz,
//! so nothing above the new Nyquist frequency aliases into the band and up-sampling leaves no
//! audible images. Each output sample costs 56 multiply-adds when up-sampling and 56 × `R` when
//! down-sampling.
//!
//! # Streaming
//!
//! The filter history is carried from one call to the next, so cutting a signal into frames of
//! any size gives exactly the same output as one call on the whole signal. Internal buffers are
//! allocated once in [`Resampler::new`]; [`Resampler::process`] never allocates. Equal rates make
//! an identity resampler that only copies.

use crate::error::{MediaError, Result};

/// Filter taps per polyphase branch (the prototype has `TAPS_PER_PHASE × R − 1` taps); a
/// multiple of 4 for the up-sampling kernel.
const TAPS_PER_PHASE: usize = 56;
/// Kaiser window β for about 65 dB stop-band attenuation (β = 0.1102 × (A − 8.7)).
const KAISER_BETA: f64 = 6.2;
/// Pass-band edge as a fraction of the lower rate's Nyquist frequency.
const PASS_EDGE: f64 = 0.85;
/// Input samples converted per inner chunk (bounds the work buffer).
const CHUNK: usize = 960;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Identity,
    Up(usize),
    Down(usize),
}

/// A streaming integer-ratio resampler between 8000, 16000 and 48000 Hz.
#[derive(Debug, Clone)]
pub struct Resampler {
    from_hz: u32,
    to_hz: u32,
    kind: Kind,
    /// Up: `TAPS_PER_PHASE` taps (time-reversed), each holding its `R` branch coefficients
    /// side by side so one pass over the window yields all `R` outputs. Down: the whole
    /// prototype, time-reversed.
    coeffs: Vec<f32>,
    /// Filter history followed by the current chunk, as floats.
    buf: Vec<f32>,
    /// History length (window length − 1).
    hist: usize,
    /// Down-sampling: input samples still to consume before the next output sample.
    skip: usize,
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// The low-pass prototype for ratio `r` at the higher rate, DC gain `gain`.
fn prototype(r: usize, gain: f64) -> Vec<f64> {
    let n = TAPS_PER_PHASE * r - 1;
    let centre = (n - 1) as f64 / 2.0;
    // Cut-off in cycles per (high-rate) sample: midway between pass and stop edges.
    let fc = (PASS_EDGE + 1.0) / 2.0 * 0.5 / r as f64;
    let i0b = bessel_i0(KAISER_BETA);
    let mut h: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 - centre;
            let arg = 2.0 * fc * t;
            let sinc = if t == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
            };
            let ratio = t / centre;
            let w = bessel_i0(KAISER_BETA * (1.0 - ratio * ratio).max(0.0).sqrt()) / i0b;
            2.0 * fc * sinc * w
        })
        .collect();
    let sum: f64 = h.iter().sum();
    for v in &mut h {
        *v *= gain / sum;
    }
    h
}

impl Resampler {
    /// Creates a resampler from `from_hz` to `to_hz`. Supported: any equal pair (identity, a
    /// copy), and every pair of distinct rates among 8000, 16000 and 48000 Hz.
    ///
    /// Errors with [`MediaError::InvalidArgument`] for other pairs.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self> {
        let supported = |r: u32| matches!(r, 8000 | 16000 | 48000);
        let kind = if from_hz == to_hz && from_hz > 0 {
            Kind::Identity
        } else if supported(from_hz) && supported(to_hz) {
            if to_hz > from_hz {
                Kind::Up((to_hz / from_hz) as usize)
            } else {
                Kind::Down((from_hz / to_hz) as usize)
            }
        } else {
            return Err(MediaError::invalid(format!(
                "resampling {from_hz} Hz to {to_hz} Hz is not supported (8000, 16000, 48000 Hz only)"
            )));
        };
        let (coeffs, hist) = match kind {
            Kind::Identity => (Vec::new(), 0),
            Kind::Up(r) => {
                let h = prototype(r, r as f64);
                let mut c = vec![0.0f32; r * TAPS_PER_PHASE];
                for p in 0..r {
                    for j in 0..TAPS_PER_PHASE {
                        let idx = (TAPS_PER_PHASE - 1 - j) * r + p;
                        c[j * r + p] = h.get(idx).copied().unwrap_or(0.0) as f32;
                    }
                }
                (c, TAPS_PER_PHASE - 1)
            }
            Kind::Down(r) => {
                let mut h = prototype(r, 1.0);
                h.push(0.0);
                h.reverse();
                let c: Vec<f32> = h.iter().map(|&v| v as f32).collect();
                let len = c.len();
                (c, len - 1)
            }
        };
        let buf = if kind == Kind::Identity {
            Vec::new()
        } else {
            vec![0.0; hist + CHUNK]
        };
        Ok(Self {
            from_hz,
            to_hz,
            kind,
            coeffs,
            buf,
            hist,
            skip: 0,
        })
    }

    /// Input rate in Hz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// Output rate in Hz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Whether this resampler only copies (equal rates).
    pub fn is_identity(&self) -> bool {
        self.kind == Kind::Identity
    }

    /// Output samples the next [`Resampler::process`] call produces for `input_len` input
    /// samples (exact, given the current phase; `input_len / R` for frames that are whole
    /// multiples of `R` when down-sampling).
    pub fn output_len(&self, input_len: usize) -> usize {
        match self.kind {
            Kind::Identity => input_len,
            Kind::Up(r) => input_len * r,
            Kind::Down(r) => {
                if input_len > self.skip {
                    (input_len - self.skip).div_ceil(r)
                } else {
                    0
                }
            }
        }
    }

    /// The filter's group delay in output samples (rounded): an input event at time t appears in
    /// the output at t + `delay_samples() / to_hz` seconds. 0 for the identity; 3.5 ms otherwise.
    pub fn delay_samples(&self) -> usize {
        match self.kind {
            Kind::Identity => 0,
            // (TAPS_PER_PHASE × r − 2) / 2 samples at the high (output) rate.
            Kind::Up(r) => (TAPS_PER_PHASE * r - 2) / 2,
            // The same delay counted at the low (output) rate.
            Kind::Down(r) => ((TAPS_PER_PHASE * r - 2) / 2 + r / 2) / r,
        }
    }

    /// Clears the filter history, as if newly created.
    pub fn reset(&mut self) {
        self.buf.iter_mut().for_each(|v| *v = 0.0);
        self.skip = 0;
    }

    /// Converts `input` and writes the result to `out`; returns the number of samples written,
    /// which is `output_len(input.len())` when `out` is long enough. If `out` is shorter, the
    /// output is truncated there (the filter still consumes all of `input`): size `out` with
    /// [`Resampler::output_len`]. Never allocates.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        if self.kind == Kind::Identity {
            let n = input.len().min(out.len());
            out[..n].copy_from_slice(&input[..n]);
            return n;
        }
        let mut written = 0;
        for chunk in input.chunks(CHUNK) {
            let hist = self.hist;
            for (b, &s) in self.buf[hist..hist + chunk.len()].iter_mut().zip(chunk) {
                *b = f32::from(s);
            }
            let n = chunk.len();
            match self.kind {
                Kind::Up(r) => {
                    let mut tmp = [0.0f32; 6];
                    for i in 0..n {
                        let window = &self.buf[i..i + TAPS_PER_PHASE];
                        match r {
                            2 => up_taps::<2>(&self.coeffs, window, &mut tmp),
                            3 => up_taps::<3>(&self.coeffs, window, &mut tmp),
                            _ => up_taps::<6>(&self.coeffs, window, &mut tmp),
                        }
                        for &v in &tmp[..r] {
                            if let Some(o) = out.get_mut(written) {
                                *o = saturate(v);
                            }
                            written += 1;
                        }
                    }
                }
                Kind::Down(r) => {
                    let taps = self.coeffs.len();
                    let mut i = self.skip;
                    while i < n {
                        let window = &self.buf[i..i + taps];
                        if let Some(o) = out.get_mut(written) {
                            *o = saturate(dot(&self.coeffs, window));
                        }
                        written += 1;
                        i += r;
                    }
                    self.skip = i - n;
                }
                Kind::Identity => {}
            }
            self.buf.copy_within(n..n + hist, 0);
        }
        written.min(out.len())
    }
}

/// All `L` polyphase outputs for one input position: `out[p] = Σ_j coeffs[j·L + p] · window[j]`.
#[inline]
fn up_taps<const L: usize>(coeffs: &[f32], window: &[f32], out: &mut [f32; 6]) {
    // Four independent accumulator sets (taps j mod 4) so the adds do not wait on each other.
    let mut acc = [[0.0f32; L]; 4];
    for (c, x) in coeffs.chunks_exact(4 * L).zip(window.chunks_exact(4)) {
        for q in 0..4 {
            for p in 0..L {
                acc[q][p] += c[q * L + p] * x[q];
            }
        }
    }
    for p in 0..L {
        out[p] = (acc[0][p] + acc[1][p]) + (acc[2][p] + acc[3][p]);
    }
}

/// Dot product in eight independent lanes so the compiler can vectorise it.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

fn saturate(v: f32) -> i16 {
    v.round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PAIRS: [(u32, u32); 6] = [
        (8000, 16000),
        (8000, 48000),
        (16000, 48000),
        (16000, 8000),
        (48000, 8000),
        (48000, 16000),
    ];

    fn sine(rate: u32, freq: f64, amp: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| {
                (amp * (2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Least-squares fit of a sine at `freq`: (amplitude, residual power relative to signal, dB).
    fn fit(x: &[i16], rate: u32, freq: f64) -> (f64, f64) {
        let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
        let (mut c, mut s) = (0.0, 0.0);
        for (n, &v) in x.iter().enumerate() {
            c += f64::from(v) * (w * n as f64).cos();
            s += f64::from(v) * (w * n as f64).sin();
        }
        let len = x.len() as f64;
        let (a, b) = (2.0 * c / len, 2.0 * s / len);
        let mut res = 0.0;
        let mut sig = 0.0;
        for (n, &v) in x.iter().enumerate() {
            let model = a * (w * n as f64).cos() + b * (w * n as f64).sin();
            res += (f64::from(v) - model).powi(2);
            sig += model * model;
        }
        ((a * a + b * b).sqrt(), 10.0 * (res / sig).log10())
    }

    fn run(rs: &mut Resampler, input: &[i16]) -> Vec<i16> {
        let mut out = vec![0i16; rs.output_len(input.len())];
        let n = rs.process(input, &mut out);
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn sine_passes_with_correct_level_and_frequency() {
        for (from, to) in PAIRS {
            for freq in [300.0, 1000.0, 3000.0] {
                let mut rs = Resampler::new(from, to).unwrap();
                let input = sine(from, freq, 10000.0, from as usize / 2);
                let out = run(&mut rs, &input);
                let skip = rs.delay_samples() * 2;
                let (amp, residual) = fit(&out[skip..], to, freq);
                let err_db = 20.0 * (amp / 10000.0).log10();
                assert!(
                    err_db.abs() < 0.1,
                    "{from}->{to} {freq} Hz: level {err_db:.3} dB"
                );
                assert!(
                    residual < -50.0,
                    "{from}->{to} {freq} Hz: residual {residual:.1} dB"
                );
            }
        }
    }

    #[test]
    fn tones_above_the_new_nyquist_are_removed() {
        for (from, to, freq) in [
            (16000, 8000, 4300.0),
            (16000, 8000, 6000.0),
            (48000, 8000, 4300.0),
            (48000, 8000, 11000.0),
            (48000, 16000, 8600.0),
            (48000, 16000, 20000.0),
        ] {
            let mut rs = Resampler::new(from, to).unwrap();
            let input = sine(from, freq, 20000.0, from as usize / 2);
            let out = run(&mut rs, &input);
            let skip = rs.delay_samples() * 2;
            let att = 20.0 * (rms(&input) / rms(&out[skip..]).max(1e-3)).log10();
            assert!(att >= 50.0, "{from}->{to} {freq} Hz: only {att:.1} dB");
        }
    }

    #[test]
    fn upsampling_leaves_no_images() {
        for (from, to) in [(8000, 16000), (8000, 48000), (16000, 48000)] {
            let mut rs = Resampler::new(from, to).unwrap();
            let input = sine(from, 1000.0, 20000.0, from as usize / 2);
            let out = run(&mut rs, &input);
            let (_, residual) = fit(&out[rs.delay_samples() * 2..], to, 1000.0);
            assert!(residual < -55.0, "{from}->{to}: images at {residual:.1} dB");
        }
    }

    #[test]
    fn frame_by_frame_equals_one_shot() {
        for (from, to) in PAIRS {
            let input: Vec<i16> = sine(from, 440.0, 8000.0, from as usize / 5)
                .iter()
                .zip(sine(from, 2900.0, 5000.0, from as usize / 5))
                .map(|(a, b)| a.saturating_add(b))
                .collect();
            let mut one = Resampler::new(from, to).unwrap();
            let whole = run(&mut one, &input);
            for frame in [from as usize / 50, from as usize / 100, 7, 1000] {
                let mut rs = Resampler::new(from, to).unwrap();
                let mut pieces = Vec::new();
                for chunk in input.chunks(frame) {
                    pieces.extend(run(&mut rs, chunk));
                }
                assert_eq!(pieces, whole, "{from}->{to} in frames of {frame}");
            }
        }
    }

    #[test]
    fn identity_and_unsupported_rates() {
        let mut rs = Resampler::new(8000, 8000).unwrap();
        assert!(rs.is_identity());
        assert_eq!(rs.delay_samples(), 0);
        let input = sine(8000, 1000.0, 1000.0, 160);
        assert_eq!(run(&mut rs, &input), input);
        for (a, b) in [
            (8000, 44100),
            (44100, 48000),
            (8000, 12000),
            (0, 0),
            (24000, 8000),
        ] {
            assert!(
                matches!(Resampler::new(a, b), Err(MediaError::InvalidArgument(_))),
                "{a}->{b}"
            );
        }
    }

    #[test]
    fn short_output_is_truncated_not_overrun() {
        let mut rs = Resampler::new(8000, 48000).unwrap();
        let mut out = [0i16; 100];
        assert_eq!(rs.process(&[1000; 160], &mut out), 100);
        let mut rs = Resampler::new(48000, 8000).unwrap();
        assert_eq!(rs.output_len(960), 160);
        assert_eq!(rs.process(&[1000; 960], &mut out), 100);
        // Full-scale input saturates instead of wrapping.
        let mut rs = Resampler::new(8000, 48000).unwrap();
        let square: Vec<i16> = (0..800)
            .map(|n| if n % 8 < 4 { i16::MAX } else { i16::MIN })
            .collect();
        let out = run(&mut rs, &square);
        assert!(out.iter().any(|&s| s == i16::MAX || s == i16::MIN));
    }
}
