//! The one place where media-core errors become Python exceptions.
//!
//! Hierarchy (re-exported by `tgsip.media.errors`); each class also derives from the built-in a
//! caller would naturally catch:
//!
//! ```text
//! MediaCoreError(Exception)
//! ├── InvalidArgumentError(MediaCoreError, ValueError)
//! ├── CodecError(MediaCoreError, ValueError)
//! ├── PacketError(MediaCoreError, ValueError)
//! ├── ClosedError(MediaCoreError, RuntimeError)
//! └── EngineIOError(MediaCoreError, OSError)
//! ```

use pyo3::exceptions::{PyException, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::error::MediaError;

struct Classes {
    base: Py<PyType>,
    invalid: Py<PyType>,
    codec: Py<PyType>,
    packet: Py<PyType>,
    closed: Py<PyType>,
    io: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn make_class(
    py: Python<'_>,
    name: &str,
    doc: &str,
    bases: Vec<Bound<'_, PyType>>,
) -> PyResult<Py<PyType>> {
    let ns = PyDict::new(py);
    ns.set_item("__module__", "tgsip._media_core")?;
    ns.set_item("__doc__", doc)?;
    let bases = PyTuple::new(py, bases)?;
    let cls = py
        .get_type::<PyType>()
        .call1((name, bases, ns))?
        .cast_into::<PyType>()?;
    Ok(cls.unbind())
}

fn classes(py: Python<'_>) -> PyResult<&Classes> {
    CLASSES.get_or_try_init(py, || {
        let base = make_class(
            py,
            "MediaCoreError",
            "Base of every media-core error.",
            vec![py.get_type::<PyException>()],
        )?;
        let with = |name: &str, doc: &str, builtin: Bound<'_, PyType>| {
            make_class(py, name, doc, vec![base.bind(py).clone(), builtin])
        };
        Ok(Classes {
            invalid: with(
                "InvalidArgumentError",
                "An argument outside its documented range.",
                py.get_type::<PyValueError>(),
            )?,
            codec: with(
                "CodecError",
                "A codec could not be created or failed.",
                py.get_type::<PyValueError>(),
            )?,
            packet: with(
                "PacketError",
                "Bytes that do not form a valid packet.",
                py.get_type::<PyValueError>(),
            )?,
            closed: with(
                "ClosedError",
                "The line or engine is already closed.",
                py.get_type::<PyRuntimeError>(),
            )?,
            io: with(
                "EngineIOError",
                "An operating-system I/O error in the engine.",
                py.get_type::<PyOSError>(),
            )?,
            base,
        })
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let c = classes(m.py())?;
    for (name, cls) in [
        ("MediaCoreError", &c.base),
        ("InvalidArgumentError", &c.invalid),
        ("CodecError", &c.codec),
        ("PacketError", &c.packet),
        ("ClosedError", &c.closed),
        ("EngineIOError", &c.io),
    ] {
        m.add(name, cls.clone_ref(m.py()))?;
    }
    Ok(())
}

/// Converts a [`MediaError`] into the matching Python exception.
pub(crate) fn to_pyerr(py: Python<'_>, err: MediaError) -> PyErr {
    let c = match classes(py) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let msg = err.to_string();
    let cls = match err {
        MediaError::InvalidArgument(_) => &c.invalid,
        MediaError::Codec(_) => &c.codec,
        MediaError::Parse(_) => &c.packet,
        MediaError::Closed(_) => &c.closed,
        MediaError::Io { .. } => &c.io,
    };
    PyErr::from_type(cls.bind(py).clone(), msg)
}

impl From<MediaError> for PyErr {
    fn from(err: MediaError) -> PyErr {
        Python::attach(|py| to_pyerr(py, err))
    }
}
