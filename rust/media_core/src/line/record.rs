//! Call recording: both directions of a line into one stereo WAV file (left: what the line
//! received from the network, right: what it sent), 16-bit PCM at the line's PCM rate.
//!
//! Writes are buffered; the header's sizes are patched when the recording stops, and a recording
//! that is never stopped properly (a crash) is still readable up to the last flushed block by
//! tools that ignore the size fields.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{MediaError, Result};

/// Bytes in a canonical 44-byte WAV header.
const HEADER_BYTES: u32 = 44;

/// An open recording.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    rate: u32,
    frames: u64,
}

impl Recorder {
    /// Creates (or truncates) `path` and writes a header for stereo 16-bit PCM at `rate`.
    pub fn create(path: &Path, rate: u32) -> Result<Self> {
        let file = File::create(path)
            .map_err(|e| MediaError::io(format!("creating recording {}", path.display()), &e))?;
        let mut rec = Self {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(64 * 1024, file),
            rate,
            frames: 0,
        };
        rec.write_header(0)?;
        Ok(rec)
    }

    fn write_header(&mut self, data_bytes: u32) -> Result<()> {
        let mut h = Vec::with_capacity(HEADER_BYTES as usize);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&(36 + data_bytes).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // PCM
        h.extend_from_slice(&2u16.to_le_bytes()); // channels
        h.extend_from_slice(&self.rate.to_le_bytes());
        h.extend_from_slice(&(self.rate * 4).to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data_bytes.to_le_bytes());
        self.out
            .write_all(&h)
            .map_err(|e| MediaError::io("writing recording header", &e))
    }

    /// Appends interleaved frames; `received` and `sent` are the same length (the shorter one is
    /// padded with silence).
    pub fn write(&mut self, received: &[i16], sent: &[i16]) -> Result<()> {
        let n = received.len().max(sent.len());
        for i in 0..n {
            let l = received.get(i).copied().unwrap_or(0);
            let r = sent.get(i).copied().unwrap_or(0);
            let mut b = [0u8; 4];
            b[..2].copy_from_slice(&l.to_le_bytes());
            b[2..].copy_from_slice(&r.to_le_bytes());
            self.out
                .write_all(&b)
                .map_err(|e| MediaError::io("writing recording", &e))?;
        }
        self.frames += n as u64;
        Ok(())
    }

    /// Milliseconds recorded so far.
    pub fn duration_ms(&self) -> u64 {
        self.frames * 1000 / u64::from(self.rate.max(1))
    }

    /// Flushes, patches the header and returns the path and duration in milliseconds.
    pub fn finish(mut self) -> Result<(PathBuf, u64)> {
        let data_bytes = u32::try_from(self.frames * 4).unwrap_or(u32::MAX - 36);
        self.out
            .flush()
            .map_err(|e| MediaError::io("flushing recording", &e))?;
        self.out
            .seek(SeekFrom::Start(0))
            .map_err(|e| MediaError::io("finishing recording", &e))?;
        self.write_header(data_bytes)?;
        self.out
            .flush()
            .map_err(|e| MediaError::io("finishing recording", &e))?;
        let duration = self.duration_ms();
        Ok((self.path, duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_valid_stereo_wav() {
        let dir = std::env::temp_dir().join(format!("tgsip-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("a.wav");
        let mut rec = Recorder::create(&path, 8000).expect("create");
        rec.write(&[1, 2, 3], &[4, 5]).expect("write");
        let (p, ms) = rec.finish().expect("finish");
        assert_eq!(p, path);
        assert_eq!(ms, 0);
        let bytes = std::fs::read(&path).expect("read back");
        assert_eq!(bytes.len(), 44 + 12);
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]),
            12
        );
        assert_eq!(i16::from_le_bytes([bytes[44], bytes[45]]), 1);
        assert_eq!(i16::from_le_bytes([bytes[46], bytes[47]]), 4);
        assert_eq!(i16::from_le_bytes([bytes[54], bytes[55]]), 0);
        std::fs::remove_dir_all(&dir).ok();
    }
}
