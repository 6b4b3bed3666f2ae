//! RTP packets (RFC 3550 §5.1): zero-copy parsing and writing into a caller's buffer.

use crate::error::{MediaError, Result};

/// The only RTP version (RFC 3550 §5.1, `V`).
pub const RTP_VERSION: u8 = 2;
/// Length of the fixed RTP header without CSRCs or extension.
pub const RTP_HEADER_LEN: usize = 12;

/// The profile of a header extension (RFC 3550 §5.3.1, RFC 8285 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionProfile {
    /// RFC 8285 one-byte header elements (`0xBEDE`).
    OneByte,
    /// RFC 8285 two-byte header elements (`0x100x`).
    TwoByte,
    /// Any other profile-defined extension (RFC 3550 §5.3.1).
    Other(u16),
}

/// A header extension as found in the packet; its elements are not interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpExtension<'a> {
    /// The 16-bit "defined by profile" field.
    pub profile: u16,
    /// The extension body (a multiple of 4 bytes).
    pub data: &'a [u8],
}

impl RtpExtension<'_> {
    /// Classifies the profile field per RFC 8285 §4.2 (`0xBEDE`) and §4.3 (`0x100` + appbits).
    pub fn kind(&self) -> ExtensionProfile {
        match self.profile {
            0xBEDE => ExtensionProfile::OneByte,
            p if p & 0xFFF0 == 0x1000 => ExtensionProfile::TwoByte,
            p => ExtensionProfile::Other(p),
        }
    }
}

/// A parsed RTP packet borrowing the received bytes (RFC 3550 §5.1).
///
/// CSRCs and the header extension are validated and skipped; padding (`P` bit) is validated and
/// removed from `payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The `M` bit: start of a talkspurt for audio (RFC 3551 §4.1).
    pub marker: bool,
    /// The 7-bit payload type.
    pub payload_type: u8,
    /// The 16-bit sequence number.
    pub sequence: u16,
    /// The 32-bit RTP timestamp.
    pub timestamp: u32,
    /// The synchronisation source.
    pub ssrc: u32,
    /// The raw CSRC list (4 bytes each); see [`RtpPacket::csrcs`].
    pub csrc_bytes: &'a [u8],
    /// The header extension, if the `X` bit was set.
    pub extension: Option<RtpExtension<'a>>,
    /// The payload, without padding.
    pub payload: &'a [u8],
    /// Number of padding bytes that followed the payload (0 when `P` was clear).
    pub padding: u8,
}

fn parse_err(msg: &str) -> MediaError {
    MediaError::Parse(format!("RTP: {msg}"))
}

impl<'a> RtpPacket<'a> {
    /// Parses one RTP packet.
    ///
    /// Errors ([`MediaError::Parse`]) when the packet is shorter than its header, the version is
    /// not 2, the CSRC list or extension runs past the end, or the padding count is zero or longer
    /// than what follows the header (RFC 3550 §5.1, §5.3.1). Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        if buf.len() < RTP_HEADER_LEN {
            return Err(parse_err(&format!(
                "{} bytes is shorter than the 12-byte header",
                buf.len()
            )));
        }
        let b0 = buf[0];
        let version = b0 >> 6;
        if version != RTP_VERSION {
            return Err(parse_err(&format!("version {version}, expected 2")));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let cc = usize::from(b0 & 0x0F);
        let b1 = buf[1];
        let sequence = u16::from_be_bytes([buf[2], buf[3]]);
        let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let mut pos = RTP_HEADER_LEN;
        let csrc_end = pos + cc * 4;
        let csrc_bytes = buf
            .get(pos..csrc_end)
            .ok_or_else(|| parse_err(&format!("CSRC count {cc} runs past the end")))?;
        pos = csrc_end;
        let extension = if has_extension {
            let head = buf
                .get(pos..pos + 4)
                .ok_or_else(|| parse_err("header extension truncated"))?;
            let profile = u16::from_be_bytes([head[0], head[1]]);
            let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let start = pos + 4;
            let end = start + words * 4;
            let data = buf
                .get(start..end)
                .ok_or_else(|| parse_err("header extension length runs past the end"))?;
            pos = end;
            Some(RtpExtension { profile, data })
        } else {
            None
        };
        let mut end = buf.len();
        let mut padding = 0u8;
        if has_padding {
            padding = buf[end - 1];
            if padding == 0 {
                return Err(parse_err("padding bit set with a zero padding count"));
            }
            let pad = usize::from(padding);
            if pad > end - pos {
                return Err(parse_err(&format!(
                    "padding of {pad} bytes is longer than the {} bytes after the header",
                    end - pos
                )));
            }
            end -= pad;
        }
        let payload = buf.get(pos..end).ok_or_else(|| parse_err("no payload"))?;
        Ok(Self {
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7F,
            sequence,
            timestamp,
            ssrc,
            csrc_bytes,
            extension,
            payload,
            padding,
        })
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrc_bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// True when `buf` looks like RTCP rather than RTP on a multiplexed port (RFC 5761 §4: second
/// byte, the RTCP packet type, in 192..=223).
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 2 && buf[0] >> 6 == RTP_VERSION && (192..=223).contains(&buf[1])
}

/// The fields [`write_rtp`] writes into a fixed 12-byte header (no CSRCs, no extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// The `M` bit.
    pub marker: bool,
    /// Payload type, 0..=127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// Writes a version-2 RTP packet (12-byte header, then `payload`) into `out`.
///
/// Returns the number of bytes written. Errors ([`MediaError::InvalidArgument`]) when the payload
/// type exceeds 127 or `out` is too small. Allocates nothing.
pub fn write_rtp(header: &RtpHeader, payload: &[u8], out: &mut [u8]) -> Result<usize> {
    if header.payload_type > 127 {
        return Err(MediaError::invalid(format!(
            "RTP payload type {} is above 127",
            header.payload_type
        )));
    }
    let total = RTP_HEADER_LEN + payload.len();
    let have = out.len();
    let dst = out.get_mut(..total).ok_or_else(|| {
        MediaError::invalid(format!(
            "RTP output buffer of {have} bytes cannot hold {total}"
        ))
    })?;
    dst[0] = RTP_VERSION << 6;
    dst[1] = (u8::from(header.marker) << 7) | header.payload_type;
    dst[2..4].copy_from_slice(&header.sequence.to_be_bytes());
    dst[4..8].copy_from_slice(&header.timestamp.to_be_bytes());
    dst[8..12].copy_from_slice(&header.ssrc.to_be_bytes());
    dst[12..].copy_from_slice(payload);
    Ok(total)
}

/// SplitMix64: a small deterministic generator for seeding initial RTP values and RTCP
/// randomisation. Not cryptographic; callers wanting unpredictable values (RFC 3550 §5.1
/// recommends random initial values) pass a seed from the OS.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The sending side of one RTP stream: SSRC, sequence numbers, timestamps, the talkspurt marker,
/// and the packet/octet counts an RTCP sender report needs (RFC 3550 §6.4.1).
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    marker_pending: bool,
    packets: u32,
    octets: u32,
}

impl RtpSender {
    /// A sender with explicit initial values. The first packet carries the marker bit.
    pub fn new(ssrc: u32, payload_type: u8, initial_seq: u16, initial_ts: u32) -> Self {
        Self {
            ssrc,
            payload_type: payload_type & 0x7F,
            sequence: initial_seq,
            timestamp: initial_ts,
            marker_pending: true,
            packets: 0,
            octets: 0,
        }
    }

    /// A sender whose SSRC, initial sequence number and timestamp derive from `seed`
    /// (RFC 3550 §5.1: initial values should be random).
    pub fn from_seed(seed: u64, payload_type: u8) -> Self {
        let mut rng = SplitMix64::new(seed);
        let a = rng.next_u64();
        let b = rng.next_u64();
        Self::new(a as u32, payload_type, (a >> 32) as u16, b as u32)
    }

    /// The SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }
    /// The default payload type used by [`RtpSender::write_frame`].
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }
    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }
    /// The timestamp of the next frame.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }
    /// Packets sent so far (wraps at 2^32 as RFC 3550 §6.4.1 allows).
    pub fn packet_count(&self) -> u32 {
        self.packets
    }
    /// Payload octets sent so far (wraps at 2^32).
    pub fn octet_count(&self) -> u32 {
        self.octets
    }

    /// Marks the next frame as the start of a talkspurt (after silence that was not sent).
    pub fn start_talkspurt(&mut self) {
        self.marker_pending = true;
    }

    /// Advances the timestamp by `samples` without sending (silence suppressed, DTX); the next
    /// frame then starts a talkspurt.
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.marker_pending = true;
    }

    /// Writes one audio frame at the current timestamp with the default payload type, the
    /// marker set if a talkspurt starts, then advances the timestamp by `samples`.
    pub fn write_frame(&mut self, payload: &[u8], samples: u32, out: &mut [u8]) -> Result<usize> {
        let marker = self.marker_pending;
        let n = self.write_packet(self.payload_type, self.timestamp, marker, payload, out)?;
        self.marker_pending = false;
        self.timestamp = self.timestamp.wrapping_add(samples);
        Ok(n)
    }

    /// Writes a packet with an explicit payload type, timestamp and marker (RFC 4733 events keep
    /// one timestamp across packets) and consumes one sequence number; the frame timestamp is
    /// not changed.
    pub fn write_packet(
        &mut self,
        payload_type: u8,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize> {
        let header = RtpHeader {
            marker,
            payload_type,
            sequence: self.sequence,
            timestamp,
            ssrc: self.ssrc,
        };
        let n = write_rtp(&header, payload, out)?;
        self.sequence = self.sequence.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
        Ok(n)
    }
}
