//! A bounded FIFO of PCM samples between two clocks (the peer's and the line's).
//!
//! The two sides run on different clocks (ntgcalls plays out on its own 10 ms clock, the engine
//! sends RTP on its own), so the buffer absorbs drift: when the reader finds too little it gets
//! silence for the missing part (an *underrun*), and when the writer gets too far ahead the oldest
//! samples are dropped (an *overrun*). Both are counted. Nothing ever sleeps or blocks.

use std::collections::VecDeque;

/// Counters of a [`PcmRing`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RingStats {
    /// Samples written.
    pub written: u64,
    /// Samples read that were real audio.
    pub read: u64,
    /// Samples filled with silence because the ring ran dry.
    pub underrun_samples: u64,
    /// Samples dropped because the ring was full.
    pub overrun_samples: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct PcmRing {
    buf: VecDeque<i16>,
    capacity: usize,
    stats: RingStats,
    /// Extra samples an elastic reader waits for before it starts (absorbs the phase between
    /// the writer's and the reader's clocks).
    margin: usize,
    priming: bool,
}

impl PcmRing {
    /// A ring holding at most `capacity` samples, allocated once.
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: VecDeque::with_capacity(capacity),
            capacity,
            stats: RingStats::default(),
            margin: 0,
            priming: true,
        }
    }

    /// Like [`PcmRing::new`], for an elastic reader that keeps `margin` samples in hand.
    pub fn with_margin(capacity: usize, margin: usize) -> Self {
        let mut ring = Self::new(capacity);
        ring.margin = margin;
        ring
    }

    /// Reads one frame for a reader on its own clock. Before the first frame and after running
    /// dry it waits (returns silence, `false`) until a frame plus the margin has gathered; then
    /// it reads whole frames. If the writer's clock is faster (or it delivered a burst) and more
    /// than [`PcmRing::high_water`] samples wait, the oldest surplus is dropped down to that
    /// mark, so the added delay stays bounded.
    pub fn read_elastic(&mut self, out: &mut [i16]) -> bool {
        let frame = out.len();
        if self.priming {
            if self.buf.len() < frame + self.margin {
                out.fill(0);
                return false;
            }
            self.priming = false;
        }
        let high = self.high_water(frame);
        if self.buf.len() > high {
            let excess = self.buf.len() - high;
            self.buf.drain(..excess);
            self.stats.overrun_samples += excess as u64;
        }
        if self.buf.len() < frame {
            self.priming = true;
            self.read(out);
            return false;
        }
        self.read(out);
        true
    }

    /// Appends `pcm`, dropping the oldest samples if it would exceed the capacity.
    pub fn write(&mut self, pcm: &[i16]) {
        self.stats.written += pcm.len() as u64;
        let pcm = if pcm.len() > self.capacity {
            let skip = pcm.len() - self.capacity;
            self.stats.overrun_samples += skip as u64;
            &pcm[skip..]
        } else {
            pcm
        };
        let excess = (self.buf.len() + pcm.len()).saturating_sub(self.capacity);
        if excess > 0 {
            self.buf.drain(..excess);
            self.stats.overrun_samples += excess as u64;
        }
        self.buf.extend(pcm.iter().copied());
    }

    /// Fills `out` from the ring; the part the ring cannot supply is silence. Returns how many
    /// samples were real audio.
    pub fn read(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(self.buf.len());
        for (o, s) in out.iter_mut().zip(self.buf.drain(..n)) {
            *o = s;
        }
        out[n..].fill(0);
        self.stats.read += n as u64;
        self.stats.underrun_samples += (out.len() - n) as u64;
        n
    }

    /// Fills `out` only if the ring holds a whole `out`; returns whether it did.
    pub fn read_exact(&mut self, out: &mut [i16]) -> bool {
        if self.buf.len() < out.len() {
            return false;
        }
        self.read(out);
        true
    }

    /// Samples an elastic reader of `frame`-sample frames keeps at most: a frame, the margin,
    /// and room for a burst of four margins or one frame, whichever is larger.
    pub fn high_water(&self, frame: usize) -> usize {
        frame + self.margin + frame.max(4 * self.margin)
    }

    /// Samples waiting.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// Drops everything waiting (not counted as an overrun).
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underrun_fills_silence_and_counts() {
        let mut r = PcmRing::new(10);
        r.write(&[1, 2, 3]);
        let mut out = [9i16; 5];
        assert_eq!(r.read(&mut out), 3);
        assert_eq!(out, [1, 2, 3, 0, 0]);
        assert_eq!(r.stats().underrun_samples, 2);
    }

    #[test]
    fn overrun_drops_oldest() {
        let mut r = PcmRing::new(4);
        r.write(&[1, 2, 3]);
        r.write(&[4, 5, 6]);
        let mut out = [0i16; 4];
        r.read(&mut out);
        assert_eq!(out, [3, 4, 5, 6]);
        assert_eq!(r.stats().overrun_samples, 2);
        r.write(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r.len(), 4);
        assert_eq!(r.stats().overrun_samples, 5);
    }

    #[test]
    fn elastic_reader_primes_then_reads_whole_frames() {
        let mut r = PcmRing::with_margin(100, 2);
        let mut out = [0i16; 4];
        r.write(&[1, 2, 3, 4]);
        assert!(!r.read_elastic(&mut out), "needs frame + margin first");
        r.write(&[5, 6]);
        assert!(r.read_elastic(&mut out));
        assert_eq!(out, [1, 2, 3, 4]);
        // Only the margin left: runs dry, primes again.
        assert!(!r.read_elastic(&mut out));
        assert_eq!(out, [5, 6, 0, 0]);
        // A fast writer: the surplus beyond the high-water mark (4 + 2 + 8) is dropped.
        r.write(&[0; 40]);
        assert!(r.read_elastic(&mut out));
        assert_eq!(r.len(), 14 - 4);
    }

    #[test]
    fn read_exact_waits_for_a_whole_frame() {
        let mut r = PcmRing::new(8);
        r.write(&[1, 2]);
        let mut out = [0i16; 3];
        assert!(!r.read_exact(&mut out));
        r.write(&[3]);
        assert!(r.read_exact(&mut out));
        assert_eq!(out, [1, 2, 3]);
    }
}
