//! The payload-type map negotiated in SDP (RFC 3264, RFC 4566 `a=rtpmap`), with RFC 3551's
//! static assignments available as a starting point.

use crate::error::{MediaError, Result};

/// One payload format: what a payload type number means on this call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFormat {
    /// The payload type number, 0..=127.
    pub payload_type: u8,
    /// The encoding name as in `a=rtpmap` (`PCMU`, `opus`, `telephone-event`), compared
    /// case-insensitively.
    pub encoding: String,
    /// The RTP clock rate in Hz (Opus is always 48000, RFC 7587 §7).
    pub clock_rate: u32,
    /// Audio channels (1 unless the rtpmap says otherwise; `opus/48000/2` says 2).
    pub channels: u8,
}

/// Payload type number -> format, and (encoding, clock rate) -> payload type.
///
/// Lookups by number are O(1) from a 128-entry index; built once per negotiation, so the
/// `String` names allocate only then.
#[derive(Debug, Clone)]
pub struct PayloadMap {
    formats: Vec<PayloadFormat>,
    index: [u8; 128],
}

const NONE: u8 = u8::MAX;

impl Default for PayloadMap {
    fn default() -> Self {
        Self::new()
    }
}

impl PayloadMap {
    /// An empty map.
    pub fn new() -> Self {
        Self {
            formats: Vec::new(),
            index: [NONE; 128],
        }
    }

    /// RFC 3551 §6 static audio assignments used by SIP peers: 0 PCMU, 3 GSM, 8 PCMA, 9 G722
    /// (clock 8000 despite 16 kHz sampling, RFC 3551 §4.5.2), 13 CN, 18 G729.
    pub fn with_static() -> Self {
        let mut m = Self::new();
        for (pt, name) in [
            (0u8, "PCMU"),
            (3, "GSM"),
            (8, "PCMA"),
            (9, "G722"),
            (13, "CN"),
            (18, "G729"),
        ] {
            // Static entries are valid by construction; ignore the impossible error.
            let _ = m.insert(pt, name, 8000, 1);
        }
        m
    }

    /// Adds or replaces the format for `payload_type`.
    ///
    /// Errors when the type is above 127, the name is empty, or the clock rate or channel count
    /// is zero.
    pub fn insert(
        &mut self,
        payload_type: u8,
        encoding: &str,
        clock_rate: u32,
        channels: u8,
    ) -> Result<()> {
        if payload_type > 127 {
            return Err(MediaError::invalid(format!(
                "payload type {payload_type} is above 127"
            )));
        }
        if encoding.is_empty() || clock_rate == 0 || channels == 0 {
            return Err(MediaError::invalid(format!(
                "payload type {payload_type}: empty encoding name, zero clock rate or zero channels"
            )));
        }
        let fmt = PayloadFormat {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        };
        match self.index[usize::from(payload_type)] {
            NONE => {
                if self.formats.len() >= 128 {
                    return Err(MediaError::invalid("payload map is full"));
                }
                self.index[usize::from(payload_type)] = self.formats.len() as u8;
                self.formats.push(fmt);
            }
            i => {
                if let Some(slot) = self.formats.get_mut(usize::from(i)) {
                    *slot = fmt;
                }
            }
        }
        Ok(())
    }

    /// The format of `payload_type`, if negotiated.
    pub fn get(&self, payload_type: u8) -> Option<&PayloadFormat> {
        let i = *self.index.get(usize::from(payload_type))?;
        self.formats.get(usize::from(i))
    }

    /// The payload type negotiated for `encoding` (case-insensitive) at `clock_rate`; the lowest
    /// number wins when several match.
    pub fn find(&self, encoding: &str, clock_rate: u32) -> Option<u8> {
        self.formats
            .iter()
            .filter(|f| f.clock_rate == clock_rate && f.encoding.eq_ignore_ascii_case(encoding))
            .map(|f| f.payload_type)
            .min()
    }

    /// All formats, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &PayloadFormat> {
        self.formats.iter()
    }

    /// Number of formats.
    pub fn len(&self) -> usize {
        self.formats.len()
    }

    /// True when nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.formats.is_empty()
    }
}
