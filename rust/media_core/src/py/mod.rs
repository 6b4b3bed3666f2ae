//! The Python module `tgsip._media_core`: the only code in the crate that uses pyo3.

mod bench;
mod bench_stages;
mod engine;
mod errors;
mod g711;
mod gil;

use pyo3::prelude::*;
use pyo3::types::PyDict;

pub(crate) use crate::engine::lock;
use crate::jitter::JitterStats;

/// `tgsip._media_core`: the native media core. Import it only through `tgsip.media`.
#[pymodule]
fn _media_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    g711::register(m)?;
    bench::register(m)?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<engine::PyLine>()?;
    Ok(())
}

/// Copies the jitter buffer's statistics into a dict, under NetEQ-like names.
pub(crate) fn jitter_stats_into(d: &Bound<'_, PyDict>, s: &JitterStats) -> PyResult<()> {
    d.set_item("current_delay_ms", s.current_delay_ms)?;
    d.set_item("target_delay_ms", s.target_delay_ms)?;
    d.set_item("mean_delay_ms", s.mean_delay_ms)?;
    d.set_item("p95_delay_ms", s.p95_delay_ms)?;
    d.set_item("jitter_packets", s.packets_received)?;
    d.set_item("packets_late", s.packets_late)?;
    d.set_item("packets_lost", s.packets_lost)?;
    d.set_item("packets_duplicate", s.packets_duplicate)?;
    d.set_item("packets_reordered", s.packets_reordered)?;
    d.set_item("packets_overflow", s.packets_overflow)?;
    d.set_item("packets_discarded", s.packets_discarded)?;
    d.set_item("frames_played", s.frames_played)?;
    d.set_item("concealed_frames", s.concealed_frames)?;
    d.set_item("concealment_events", s.concealment_events)?;
    d.set_item("inserted_frames", s.inserted_frames)?;
    d.set_item("removed_frames", s.removed_frames)?;
    d.set_item("resyncs", s.resyncs)?;
    d.set_item("late_loss_rate", s.late_loss_rate)?;
    d.set_item("concealment_rate", s.concealment_rate)?;
    d.set_item("interarrival_jitter_ms", s.interarrival_jitter_ms)?;
    d.set_item("buffered_packets", s.buffered_packets)?;
    Ok(())
}
