//! G.711 A-law and µ-law (ITU-T G.711, as in the G.191 reference software).
//!
//! Encoding takes 16-bit linear PCM and keeps the 13 (A-law) or 14 (µ-law) most significant bits,
//! exactly like G.191's `alaw_compress`/`ulaw_compress` on left-justified input. Both directions are
//! table lookups built at compile time: a 64 KiB table per law for encoding, 256 entries for
//! decoding, so a 20 ms frame costs a few hundred nanoseconds.

/// Upper bounds of the A-law segments on the 13-bit magnitude.
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
/// Upper bounds of the µ-law segments on the biased 14-bit magnitude.
const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// µ-law bias (G.711: 33 on the 14-bit scale, 0x84 on the 16-bit scale).
const ULAW_BIAS: i32 = 0x84;
/// Largest 14-bit magnitude µ-law can represent before the bias is added.
const ULAW_CLIP: i32 = 8159;

const fn segment(value: i32, ends: &[i32; 8]) -> usize {
    let mut i = 0;
    while i < 8 {
        if value <= ends[i] {
            return i;
        }
        i += 1;
    }
    8
}

/// Encodes one linear sample to A-law by the G.711 rules (even bits inverted).
pub const fn alaw_encode_sample(sample: i16) -> u8 {
    let mut pcm = (sample as i32) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = segment(pcm, &ALAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = (seg as i32) << 4;
    if seg < 2 {
        aval |= (pcm >> 1) & 0x0F;
    } else {
        aval |= (pcm >> seg) & 0x0F;
    }
    (aval ^ mask) as u8
}

/// Decodes one A-law code to a 16-bit linear sample.
pub const fn alaw_decode_sample(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        (-t) as i16
    }
}

/// Encodes one linear sample to µ-law by the G.711 rules (all bits inverted).
pub const fn ulaw_encode_sample(sample: i16) -> u8 {
    let mut pcm = (sample as i32) >> 2;
    let mask: i32 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    if pcm > ULAW_CLIP {
        pcm = ULAW_CLIP;
    }
    pcm += ULAW_BIAS >> 2;
    let seg = segment(pcm, &ULAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = ((seg as i32) << 4) | ((pcm >> (seg + 1)) & 0x0F);
    (uval ^ mask) as u8
}

/// Decodes one µ-law code to a 16-bit linear sample.
pub const fn ulaw_decode_sample(code: u8) -> i16 {
    let u = !code as i32;
    let mut t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

const fn encode_table(alaw: bool) -> [u8; 65536] {
    let mut table = [0u8; 65536];
    let mut i = 0usize;
    while i < 65536 {
        // Index by the sample's bit pattern: table[s as u16 as usize].
        let sample = i as u16 as i16;
        table[i] = if alaw {
            alaw_encode_sample(sample)
        } else {
            ulaw_encode_sample(sample)
        };
        i += 1;
    }
    table
}

const fn decode_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0usize;
    while i < 256 {
        table[i] = if alaw {
            alaw_decode_sample(i as u8)
        } else {
            ulaw_decode_sample(i as u8)
        };
        i += 1;
    }
    table
}

static ALAW_ENCODE: [u8; 65536] = encode_table(true);
static ULAW_ENCODE: [u8; 65536] = encode_table(false);
static ALAW_DECODE: [i16; 256] = decode_table(true);
static ULAW_DECODE: [i16; 256] = decode_table(false);

/// Which G.711 law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// A-law (PCMA, static payload type 8).
    A,
    /// µ-law (PCMU, static payload type 0).
    Mu,
}

impl Law {
    /// The RTP static payload type of this law (RFC 3551).
    pub const fn payload_type(self) -> u8 {
        match self {
            Law::A => 8,
            Law::Mu => 0,
        }
    }

    /// Encodes `pcm` into `out` (one byte per sample). `out` must be at least as long as `pcm`;
    /// returns the number of bytes written.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> usize {
        let table = match self {
            Law::A => &ALAW_ENCODE,
            Law::Mu => &ULAW_ENCODE,
        };
        let n = pcm.len().min(out.len());
        for (o, &s) in out[..n].iter_mut().zip(&pcm[..n]) {
            *o = table[s as u16 as usize];
        }
        n
    }

    /// Decodes `codes` into `out` (one sample per byte); returns the number of samples written.
    pub fn decode(self, codes: &[u8], out: &mut [i16]) -> usize {
        let table = match self {
            Law::A => &ALAW_DECODE,
            Law::Mu => &ULAW_DECODE,
        };
        let n = codes.len().min(out.len());
        for (o, &c) in out[..n].iter_mut().zip(&codes[..n]) {
            *o = table[c as usize];
        }
        n
    }

    /// The code for silence (the encoding of 0).
    pub const fn silence(self) -> u8 {
        match self {
            Law::A => 0xD5,
            Law::Mu => 0xFF,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        // Silence and the extremes, from G.711's tables.
        assert_eq!(alaw_encode_sample(0), 0xD5);
        assert_eq!(ulaw_encode_sample(0), 0xFF);
        assert_eq!(alaw_encode_sample(i16::MAX), 0xAA);
        assert_eq!(alaw_encode_sample(i16::MIN), 0x2A);
        assert_eq!(ulaw_encode_sample(i16::MAX), 0x80);
        assert_eq!(ulaw_encode_sample(i16::MIN), 0x00);
        assert_eq!(alaw_decode_sample(0xD5), 8);
        assert_eq!(alaw_decode_sample(0xAA), 32256);
        assert_eq!(ulaw_decode_sample(0xFF), 0);
        assert_eq!(ulaw_decode_sample(0x00), -32124);
    }

    #[test]
    fn decode_then_encode_is_identity_on_codes() {
        for law in [Law::A, Law::Mu] {
            for code in 0..=255u8 {
                let mut pcm = [0i16; 1];
                law.decode(&[code], &mut pcm);
                let mut back = [0u8; 1];
                law.encode(&pcm, &mut back);
                // µ-law has two zeros (0x7F and 0xFF); both decode to 0 and 0 encodes to 0xFF.
                let expected = if law == Law::Mu && code == 0x7F {
                    0xFF
                } else {
                    code
                };
                assert_eq!(back[0], expected, "{law:?} code {code:#04x}");
            }
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        for law in [Law::A, Law::Mu] {
            let mut last = i16::MIN;
            for s in i16::MIN..=i16::MAX {
                let mut code = [0u8; 1];
                law.encode(&[s], &mut code);
                let mut back = [0i16; 1];
                law.decode(&code, &mut back);
                assert!(back[0] >= last, "{law:?} not monotonic at {s}");
                last = back[0];
            }
        }
    }

    #[test]
    fn short_output_is_bounded() {
        let mut out = [0u8; 2];
        assert_eq!(Law::A.encode(&[1, 2, 3, 4], &mut out), 2);
    }
}
