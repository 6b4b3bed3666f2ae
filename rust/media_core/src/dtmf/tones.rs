//! In-band DTMF generation (ITU-T Q.23 frequency pairs) for lines whose DTMF method is
//! `inband`: a queue of digits is played as tone bursts and pauses across successive frames.
//!
//! Each tone is two sines whose phases run on continuously from frame to frame, so a tone cut
//! into 10 or 20 ms frames is exactly the tone generated in one piece. Tones start and stop with a
//! 1 ms linear ramp to keep their spectrum clean. Timing follows media.md §7.1's send side: tone
//! on ≥ 50 ms, off ≥ 45 ms. The queue is a fixed ring of 32 digits; nothing allocates after
//! construction.

use crate::dtmf::{digit_frequencies, DBM0_PEAK};
use crate::error::{MediaError, Result};

/// Queue capacity in digits.
pub const QUEUE_CAPACITY: usize = 32;

/// Tone levels and timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSettings {
    /// Level of the low-group (row) tone in dBm0, −40..=0 (default −8).
    pub level_dbm0: f32,
    /// High-group level minus low-group level, dB, −8..=4 (default +2: the usual pre-emphasis
    /// that offsets a line's high-frequency loss, i.e. 2 dB reverse twist).
    pub twist_db: f32,
    /// Tone duration per digit, ms, ≥ 50 (default 100).
    pub on_ms: u32,
    /// Silence after each digit, ms, ≥ 45 (default 60).
    pub off_ms: u32,
}

impl Default for ToneSettings {
    fn default() -> Self {
        Self {
            level_dbm0: -8.0,
            twist_db: 2.0,
            on_ms: 100,
            off_ms: 60,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Osc {
    re: f64,
    im: f64,
    step_re: f64,
    step_im: f64,
    amp: f64,
}

impl Osc {
    fn new(freq: f64, rate: f64, amp: f64) -> Self {
        let w = 2.0 * std::f64::consts::PI * freq / rate;
        Self {
            re: 1.0,
            im: 0.0,
            step_re: w.cos(),
            step_im: w.sin(),
            amp,
        }
    }

    #[inline]
    fn next(&mut self) -> f64 {
        let v = self.im * self.amp;
        let re = self.re * self.step_re - self.im * self.step_im;
        self.im = self.im * self.step_re + self.re * self.step_im;
        self.re = re;
        v
    }

    fn renormalise(&mut self) {
        let m = (self.re * self.re + self.im * self.im).sqrt();
        if m > 0.0 {
            self.re /= m;
            self.im /= m;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle,
    Tone {
        lo: Osc,
        hi: Osc,
        at: usize,
        len: usize,
    },
    Gap {
        left: usize,
    },
}

/// Plays queued DTMF digits as in-band tones into PCM frames.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    rate: u32,
    settings: ToneSettings,
    on: usize,
    off: usize,
    ramp: usize,
    queue: [char; QUEUE_CAPACITY],
    head: usize,
    len: usize,
    state: State,
}

impl ToneGenerator {
    /// A generator producing PCM at `sample_rate` (8000..=48000 Hz).
    ///
    /// Errors with [`MediaError::InvalidArgument`] for a rate or setting out of range.
    pub fn new(sample_rate: u32, settings: &ToneSettings) -> Result<Self> {
        if !(8000..=48000).contains(&sample_rate) {
            return Err(MediaError::invalid(format!(
                "DTMF generation runs at 8000..=48000 Hz, not {sample_rate}"
            )));
        }
        let mut g = Self {
            rate: sample_rate,
            settings: *settings,
            on: 0,
            off: 0,
            ramp: sample_rate as usize / 1000,
            queue: ['0'; QUEUE_CAPACITY],
            head: 0,
            len: 0,
            state: State::Idle,
        };
        g.set_settings(settings)?;
        Ok(g)
    }

    /// Changes levels and timing; takes effect from the next digit.
    pub fn set_settings(&mut self, s: &ToneSettings) -> Result<()> {
        if !(-40.0..=0.0).contains(&s.level_dbm0) || !(-8.0..=4.0).contains(&s.twist_db) {
            return Err(MediaError::invalid(format!(
                "DTMF level must be -40..=0 dBm0 and twist -8..=4 dB, not {} / {}",
                s.level_dbm0, s.twist_db
            )));
        }
        if s.on_ms < 50 || s.off_ms < 45 || s.on_ms > 10_000 || s.off_ms > 10_000 {
            return Err(MediaError::invalid(format!(
                "DTMF tone must be 50..=10000 ms on and 45..=10000 ms off, not {} / {}",
                s.on_ms, s.off_ms
            )));
        }
        self.settings = *s;
        self.on = self.rate as usize * s.on_ms as usize / 1000;
        self.off = self.rate as usize * s.off_ms as usize / 1000;
        Ok(())
    }

    /// The settings in force.
    pub fn settings(&self) -> &ToneSettings {
        &self.settings
    }

    /// Appends a digit (`0-9`, `*`, `#`, `A-D`, lower-case accepted) to the queue.
    ///
    /// Errors with [`MediaError::InvalidArgument`] for flash or other characters (they have no
    /// tone) and when the queue already holds [`QUEUE_CAPACITY`] digits.
    pub fn queue(&mut self, digit: char) -> Result<()> {
        if digit_frequencies(digit).is_none() {
            return Err(MediaError::invalid(format!(
                "{digit:?} is not a DTMF digit"
            )));
        }
        if self.len == QUEUE_CAPACITY {
            return Err(MediaError::invalid("DTMF tone queue is full"));
        }
        self.queue[(self.head + self.len) % QUEUE_CAPACITY] = digit.to_ascii_uppercase();
        self.len += 1;
        Ok(())
    }

    /// Digits waiting, not counting the one playing.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Whether a tone or pause is playing or digits are queued.
    pub fn is_active(&self) -> bool {
        self.len > 0 || !matches!(self.state, State::Idle)
    }

    /// Drops queued digits and stops the current tone at once.
    pub fn clear(&mut self) {
        self.len = 0;
        self.state = State::Idle;
    }

    fn start_next(&mut self) -> bool {
        if self.len == 0 {
            self.state = State::Idle;
            return false;
        }
        let digit = self.queue[self.head];
        self.head = (self.head + 1) % QUEUE_CAPACITY;
        self.len -= 1;
        let Some((lo, hi)) = digit_frequencies(digit) else {
            return self.start_next();
        };
        let a_lo = f64::from(DBM0_PEAK) * 10f64.powf(f64::from(self.settings.level_dbm0) / 20.0);
        let a_hi = a_lo * 10f64.powf(f64::from(self.settings.twist_db) / 20.0);
        let rate = f64::from(self.rate);
        self.state = State::Tone {
            lo: Osc::new(f64::from(lo), rate, a_lo),
            hi: Osc::new(f64::from(hi), rate, a_hi),
            at: 0,
            len: self.on,
        };
        true
    }

    /// Writes the next `out.len()` samples of tones and pauses into `out` and returns true, or
    /// leaves `out` untouched and returns false when idle (nothing queued or playing). When the
    /// queue runs out within the frame, the rest of the frame is silence.
    pub fn fill(&mut self, out: &mut [i16]) -> bool {
        if !self.is_active() {
            return false;
        }
        let mut i = 0;
        while i < out.len() {
            match &mut self.state {
                State::Idle => {
                    if !self.start_next() {
                        out[i..].iter_mut().for_each(|s| *s = 0);
                        break;
                    }
                }
                State::Tone { lo, hi, at, len } => {
                    let len = *len;
                    let n = len.saturating_sub(*at).min(out.len() - i);
                    for s in &mut out[i..i + n] {
                        let env = ((*at + 1).min(len - *at) as f64 / self.ramp as f64).min(1.0);
                        *s = (env * (lo.next() + hi.next()))
                            .round()
                            .clamp(-32768.0, 32767.0) as i16;
                        *at += 1;
                    }
                    lo.renormalise();
                    hi.renormalise();
                    i += n;
                    if *at >= len {
                        self.state = State::Gap { left: self.off };
                    }
                }
                State::Gap { left } => {
                    let n = (*left).min(out.len() - i);
                    out[i..i + n].iter_mut().for_each(|s| *s = 0);
                    *left -= n;
                    i += n;
                    if *left == 0 {
                        self.state = State::Idle;
                        if self.len == 0 {
                            out[i..].iter_mut().for_each(|s| *s = 0);
                            break;
                        }
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::g711::Law;
    use crate::dtmf::goertzel::{DtmfDetector, DtmfEvent};

    fn play(g: &mut ToneGenerator, frame: usize, max_frames: usize) -> Vec<i16> {
        let mut out = Vec::new();
        let mut buf = vec![0i16; frame];
        for _ in 0..max_frames {
            if !g.fill(&mut buf) {
                break;
            }
            out.extend_from_slice(&buf);
        }
        out
    }

    #[test]
    fn frames_join_into_the_one_piece_signal() {
        let s = ToneSettings::default();
        let mut a = ToneGenerator::new(8000, &s).unwrap();
        let mut b = ToneGenerator::new(8000, &s).unwrap();
        for d in "19#".chars() {
            a.queue(d).unwrap();
            b.queue(d).unwrap();
        }
        let whole = play(&mut a, 8000, 10);
        let pieces = play(&mut b, 160, 1000);
        assert_eq!(whole.len(), 8000);
        // Three digits of 100 + 60 ms = 480 ms = 3 frames of 160.
        assert_eq!(pieces.len(), 480 * 8);
        assert_eq!(&whole[..pieces.len()], &pieces[..]);
        assert!(whole[pieces.len()..].iter().all(|&s| s == 0));
    }

    #[test]
    fn level_and_timing() {
        let s = ToneSettings {
            level_dbm0: -10.0,
            twist_db: 0.0,
            on_ms: 50,
            off_ms: 45,
        };
        let mut g = ToneGenerator::new(8000, &s).unwrap();
        g.queue('5').unwrap();
        let out = play(&mut g, 80, 100);
        let tone = &out[..400];
        assert!(out[400..760].iter().all(|&s| s == 0));
        let rms = (tone[20..380]
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            / 360.0)
            .sqrt();
        // Two tones at -10 dBm0 each: total mean square twice one tone's.
        let expected = f64::from(DBM0_PEAK) * 10f64.powf(-0.5) / 2f64.sqrt() * 2f64.sqrt();
        assert!(
            (20.0 * (rms / expected).log10()).abs() < 0.2,
            "rms {rms} vs {expected}"
        );
        assert!(!g.is_active());
    }

    #[test]
    fn all_digits_through_alaw_are_detected() {
        let digits = "123A456B789C*0#D";
        let mut g = ToneGenerator::new(8000, &ToneSettings::default()).unwrap();
        for d in digits.chars() {
            g.queue(d).unwrap();
        }
        let pcm = play(&mut g, 160, 1000);
        let mut codes = vec![0u8; pcm.len()];
        Law::A.encode(&pcm, &mut codes);
        let mut back = vec![0i16; pcm.len()];
        Law::A.decode(&codes, &mut back);
        let mut det = DtmfDetector::new(8000).unwrap();
        let mut got = String::new();
        let mut durations = Vec::new();
        for f in back.chunks(160) {
            det.process(f, |e| match e {
                DtmfEvent::Begin { digit, .. } => got.push(digit),
                DtmfEvent::End { start, end, .. } => durations.push(end - start),
            });
        }
        det.process(&[0; 800], |e| {
            if let DtmfEvent::End { start, end, .. } = e {
                durations.push(end - start);
            }
        });
        assert_eq!(got, digits);
        assert_eq!(durations.len(), 16);
        assert!(
            durations.iter().all(|&d| (600..=900).contains(&d)),
            "{durations:?}"
        );
    }

    #[test]
    fn invalid_input_rejected() {
        let s = ToneSettings::default();
        assert!(ToneGenerator::new(4000, &s).is_err());
        for bad in [
            ToneSettings { on_ms: 40, ..s },
            ToneSettings { off_ms: 30, ..s },
            ToneSettings {
                level_dbm0: 3.0,
                ..s
            },
            ToneSettings { twist_db: 9.0, ..s },
        ] {
            assert!(ToneGenerator::new(8000, &bad).is_err());
        }
        let mut g = ToneGenerator::new(8000, &s).unwrap();
        assert!(g.queue('!').is_err());
        assert!(g.queue('x').is_err());
        for _ in 0..QUEUE_CAPACITY {
            g.queue('1').unwrap();
        }
        assert!(g.queue('1').is_err());
        g.clear();
        assert!(!g.is_active());
        let mut buf = [7i16; 160];
        assert!(!g.fill(&mut buf));
        assert_eq!(buf, [7i16; 160]);
        // Shortening the tone while one plays affects the next digit only.
        g.set_settings(&ToneSettings { on_ms: 1000, ..s }).unwrap();
        g.queue('2').unwrap();
        g.queue('3').unwrap();
        for _ in 0..5 {
            assert!(g.fill(&mut buf));
        }
        g.set_settings(&ToneSettings { on_ms: 50, ..s }).unwrap();
        let out = play(&mut g, 160, 1000);
        // The rest of the 1 s tone (0.9 s), its 60 ms gap, then 50 + 60 ms: 8560 samples,
        // rounded up to whole 160-sample frames.
        assert_eq!(out.len(), 8640);
        assert!(out[7200 + 480..7200 + 480 + 400].iter().any(|&v| v != 0));
        assert!(out[8080..].iter().all(|&v| v == 0));
    }
}
