//! The Python module `tgsip._media_core`: the only code in the crate that uses pyo3.

mod errors;
mod g711;

use pyo3::prelude::*;

/// `tgsip._media_core`: the native media core. Import it only through `tgsip.media`.
#[pymodule]
fn _media_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    g711::register(m)?;
    Ok(())
}
