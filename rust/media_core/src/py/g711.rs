//! G.711 functions exposed to Python: whole buffers, for tests, tools and the offline benchmark.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::codec::g711::Law;
use crate::error::MediaError;

fn law(name: &str) -> Result<Law, MediaError> {
    match name {
        "alaw" | "pcma" | "PCMA" => Ok(Law::A),
        "ulaw" | "pcmu" | "PCMU" => Ok(Law::Mu),
        other => Err(MediaError::invalid(format!(
            "unknown G.711 law {other:?}; expected 'alaw' or 'ulaw'"
        ))),
    }
}

/// Encodes s16le PCM (`bytes`, even length) to G.711 codes.
#[pyfunction]
fn g711_encode<'py>(py: Python<'py>, law_name: &str, pcm: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let law = law(law_name)?;
    if pcm.len() % 2 != 0 {
        return Err(MediaError::invalid(format!(
            "PCM must be whole 16-bit samples, got {} bytes",
            pcm.len()
        ))
        .into());
    }
    let samples: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    PyBytes::new_with(py, samples.len(), |out| {
        law.encode(&samples, out);
        Ok(())
    })
}

/// Decodes G.711 codes to s16le PCM.
#[pyfunction]
fn g711_decode<'py>(
    py: Python<'py>,
    law_name: &str,
    codes: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let law = law(law_name)?;
    let mut samples = vec![0i16; codes.len()];
    law.decode(codes, &mut samples);
    PyBytes::new_with(py, codes.len() * 2, |out| {
        for (chunk, s) in out.chunks_exact_mut(2).zip(&samples) {
            chunk.copy_from_slice(&s.to_le_bytes());
        }
        Ok(())
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(g711_encode, m)?)?;
    m.add_function(wrap_pyfunction!(g711_decode, m)?)?;
    Ok(())
}
