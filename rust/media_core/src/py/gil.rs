//! The one helper that releases the GIL around media-core work.

use pyo3::prelude::*;

use crate::error::MediaError;

/// Runs `f` without the GIL and converts its error into the matching Python exception.
///
/// Use it for anything that may block (waiting for a worker's answer, joining threads) or that
/// takes more than a few microseconds; arguments are extracted before, so no Python object
/// crosses into `f`.
pub(crate) fn detach<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: FnOnce() -> Result<T, MediaError> + Send,
    T: Send,
{
    py.detach(f).map_err(PyErr::from)
}
