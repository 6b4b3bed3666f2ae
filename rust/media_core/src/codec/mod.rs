//! Audio codecs over 16-bit PCM, behind two small traits so a line treats G.711 and Opus alike.
//!
//! Frames are always whole packet durations (for example 20 ms). Encoders write into a caller's
//! buffer and decoders fill a caller's slice: nothing here allocates per frame.

pub mod g711;
pub mod opus;
pub mod plc;

use crate::error::Result;

/// Turns PCM frames into codec payloads.
pub trait Encoder: Send {
    /// The sample rate this encoder takes its PCM at.
    fn sample_rate(&self) -> u32;
    /// Encodes one frame of `pcm` into `out`; returns the payload length.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize>;
}

/// Turns codec payloads back into PCM frames, and conceals missing ones.
pub trait Decoder: Send {
    /// The sample rate this decoder produces.
    fn sample_rate(&self) -> u32;
    /// Decodes `payload` into `out`; returns the number of samples written.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize>;
    /// Fills `out` (one frame) for a packet that never arrived. `next` is the packet after the
    /// gap when the jitter buffer holds it, so codecs with in-band FEC (Opus) can recover from it.
    fn conceal(&mut self, next: Option<&[u8]>, out: &mut [i16]) -> Result<usize>;
}
