//! tgsip's media core: the audio of every line, from RTP packets to PCM frames and back.
//!
//! # Shape
//!
//! Protocol and signal code is sans-I/O: codecs, RTP/RTCP, the jitter buffer, DTMF and the
//! per-call [`line`] state machine take the time as an argument (`now`, a [`std::time::Duration`]
//! since the engine's epoch) and never read a clock or touch a socket. The [`engine`] is the one
//! place that owns sockets, the clock and worker threads. `py` (behind the `python` feature) is the
//! one place that uses pyo3; with `--no-default-features` the crate is pure Rust.

pub mod codec;
pub mod dtmf;
pub mod engine;
pub mod error;
pub mod jitter;
pub mod line;
pub mod resample;
pub mod rtp;
pub mod time;

#[cfg(feature = "python")]
mod py;

pub use error::{MediaError, Result};
