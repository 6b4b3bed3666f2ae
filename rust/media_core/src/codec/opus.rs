//! Opus (RFC 6716, RTP payload RFC 7587) through libopus, built from the sources bundled in the
//! `opusic-sys` crate (libopus 1.6.1) and linked statically.
//!
//! [`OpusEncoder`] and [`OpusDecoder`] are thin safe owners of a libopus state: every call checks
//! its arguments first (sample rate, channel count, frame length) so libopus never sees a value it
//! would reject, and every libopus error code becomes [`MediaError::Codec`] with `opus_strerror`'s
//! text. Nothing allocates per frame: PCM and payload buffers belong to the caller.
//!
//! PCM is interleaved signed 16-bit at the rate given when the state was created. A frame must be
//! 2.5, 5, 10, 20, 40 or 60 ms long (RFC 6716 §2.1.4; the encoder also takes 80, 100 and 120 ms).
//! The decoder may run at a different rate than the encoder that produced the stream: decoding a
//! 48 kHz stream straight to 8 kHz (`OpusDecoder::new(8000, 1)`) is supported by libopus and is the
//! cheap path for a G.711 leg.

use std::ffi::CStr;
use std::ptr::NonNull;

use opusic_sys as sys;

use crate::codec::{Decoder, Encoder};
use crate::error::{MediaError, Result};

/// Largest frame libopus accepts or produces, in ms (RFC 6716 §3.2.5: 120 ms per packet).
const MAX_FRAME_MS: usize = 120;
/// Largest payload `opus_encode` is ever given room for (RFC 6716 §3.4: 1275 bytes per frame,
/// times 6 frames for 120 ms, plus the frame-count header); larger output buffers are capped.
const MAX_PACKET: usize = 1275 * 6 + 7;

/// libopus' version string, for example `"libopus 1.6.1"`.
pub fn libopus_version() -> &'static str {
    // SAFETY: opus_get_version_string returns a pointer to a static NUL-terminated string that
    // lives for the whole program; it takes no arguments and cannot fail.
    let ptr = unsafe { sys::opus_get_version_string() };
    if ptr.is_null() {
        return "libopus (unknown version)";
    }
    // SAFETY: non-null, NUL-terminated and 'static, as above.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().unwrap_or("libopus (unknown version)")
}

/// Converts a negative libopus return code into [`MediaError::Codec`] with libopus' own text.
fn opus_error(what: &str, code: i32) -> MediaError {
    // SAFETY: opus_strerror accepts any integer and returns a pointer to a static string.
    let ptr = unsafe { sys::opus_strerror(code) };
    let text = if ptr.is_null() {
        String::from("unknown error")
    } else {
        // SAFETY: non-null, NUL-terminated and static (see above).
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    };
    MediaError::Codec(format!("opus {what}: {text} ({code})"))
}

/// Checks a sample rate against the five libopus supports (RFC 6716 §2).
fn check_rate(sample_rate: u32) -> Result<()> {
    match sample_rate {
        8000 | 12000 | 16000 | 24000 | 48000 => Ok(()),
        _ => Err(MediaError::invalid(format!(
            "opus sample rate must be 8000, 12000, 16000, 24000 or 48000 Hz, not {sample_rate}"
        ))),
    }
}

fn check_channels(channels: u8) -> Result<()> {
    match channels {
        1 | 2 => Ok(()),
        _ => Err(MediaError::invalid(format!(
            "opus channel count must be 1 or 2, not {channels}"
        ))),
    }
}

/// Samples per channel in one 2.5 ms step at `sample_rate` (all supported rates divide by 400).
const fn step(sample_rate: u32) -> usize {
    sample_rate as usize / 400
}

/// Which libopus application mode the encoder is tuned for (`OPUS_APPLICATION_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpusApplication {
    /// `OPUS_APPLICATION_VOIP`: speech intelligibility first (high-pass, SILK preferred). The
    /// default for a telephone gateway.
    Voip,
    /// `OPUS_APPLICATION_AUDIO`: fidelity to the input (music on hold, mixed content).
    Audio,
}

impl OpusApplication {
    const fn raw(self) -> i32 {
        match self {
            Self::Voip => sys::OPUS_APPLICATION_VOIP,
            Self::Audio => sys::OPUS_APPLICATION_AUDIO,
        }
    }
}

/// Encoder settings; every field can also be changed at run time with the matching setter.
///
/// The defaults suit a telephone call bridged to or from G.711:
/// * `bitrate_bps` 24,000, VBR: the rate at which Opus matches or beats G.711 narrowband quality
///   (PESQ about 4.15–4.4 at complexity 5–10, media.md §3) at a third of its bandwidth.
/// * `complexity` 5: about 60 µs per 20 ms frame at 8 kHz against 71 µs at 10 (media.md §3) with
///   nearly the same quality; below 5 quality drops measurably, so the engine only lowers it to
///   shed load.
/// * `inband_fec` on with `packet_loss_percent` 5: the encoder then embeds a low-rate copy of each
///   frame (LBRR) in the next packet, so a single lost packet can be rebuilt by
///   [`OpusDecoder::decode_fec`] instead of guessed by PLC; 5 % tells the encoder to spend bits on
///   it without starving the main signal.
/// * `dtx` off: a gateway relays to peers that may treat missing packets as loss, and comfort
///   noise is not negotiated on the SIP side; turn it on for links that pay per packet.
/// * `application` VoIP and `signal_voice` on: speech is what a call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSettings {
    /// Target bitrate in bits per second (500..=512,000; `OPUS_SET_BITRATE`).
    pub bitrate_bps: i32,
    /// Encoder complexity 0..=10 (`OPUS_SET_COMPLEXITY`): CPU cost against quality.
    pub complexity: u8,
    /// Variable bitrate (`OPUS_SET_VBR`); constant bitrate when false.
    pub vbr: bool,
    /// In-band forward error correction (`OPUS_SET_INBAND_FEC`, RFC 6716 §2.1.7).
    pub inband_fec: bool,
    /// Discontinuous transmission (`OPUS_SET_DTX`): packets of 1–2 bytes during silence.
    pub dtx: bool,
    /// Expected packet loss 0..=100 % (`OPUS_SET_PACKET_LOSS_PERC`); steers how many bits FEC gets.
    pub packet_loss_percent: u8,
    /// Application mode, fixed when the encoder is created.
    pub application: OpusApplication,
    /// Hint that the input is speech (`OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE)`); `OPUS_AUTO` if false.
    pub signal_voice: bool,
}

impl Default for OpusSettings {
    fn default() -> Self {
        Self {
            bitrate_bps: 24_000,
            complexity: 5,
            vbr: true,
            inband_fec: true,
            dtx: false,
            packet_loss_percent: 5,
            application: OpusApplication::Voip,
            signal_voice: true,
        }
    }
}

/// An Opus encoder over one libopus `OpusEncoder` state.
#[derive(Debug)]
pub struct OpusEncoder {
    st: NonNull<sys::OpusEncoder>,
    sample_rate: u32,
    channels: u8,
    settings: OpusSettings,
}

// SAFETY: the libopus state is plain memory owned exclusively by this value; libopus keeps no
// thread-local or global mutable state for it, so moving it to another thread is sound. It is not
// Sync: all access goes through &mut self.
unsafe impl Send for OpusEncoder {}

impl OpusEncoder {
    /// Creates an encoder for `sample_rate` (8000, 12000, 16000, 24000 or 48000 Hz) and
    /// `channels` (1 or 2), and applies every field of `settings`.
    ///
    /// Errors: [`MediaError::InvalidArgument`] for an unsupported rate, channel count or setting
    /// out of range; [`MediaError::Codec`] if libopus refuses.
    pub fn new(sample_rate: u32, channels: u8, settings: &OpusSettings) -> Result<Self> {
        check_rate(sample_rate)?;
        check_channels(channels)?;
        let mut err: i32 = 0;
        // SAFETY: rate, channels and application were validated above; `err` is a valid pointer
        // to an int for the duration of the call.
        let raw = unsafe {
            sys::opus_encoder_create(
                sample_rate as i32,
                i32::from(channels),
                settings.application.raw(),
                &mut err,
            )
        };
        let st = match NonNull::new(raw) {
            Some(st) if err == sys::OPUS_OK => st,
            Some(st) => {
                // SAFETY: libopus returned a state it allocated; destroy it exactly once.
                unsafe { sys::opus_encoder_destroy(st.as_ptr()) };
                return Err(opus_error("encoder create", err));
            }
            None => return Err(opus_error("encoder create", err)),
        };
        let mut enc = Self {
            st,
            sample_rate,
            channels,
            settings: *settings,
        };
        enc.apply(settings)?;
        Ok(enc)
    }

    fn ctl(&mut self, what: &str, request: i32, value: i32) -> Result<()> {
        // SAFETY: `st` is a live encoder owned by self; every request passed here is an
        // OPUS_SET_* request whose single variadic argument is an opus_int32, which `value` is.
        let rc = unsafe { sys::opus_encoder_ctl(self.st.as_ptr(), request, value) };
        if rc == sys::OPUS_OK {
            Ok(())
        } else {
            Err(opus_error(what, rc))
        }
    }

    /// Applies all of `settings` except the application mode (fixed at creation).
    pub fn apply(&mut self, settings: &OpusSettings) -> Result<()> {
        self.set_bitrate(settings.bitrate_bps)?;
        self.set_complexity(settings.complexity)?;
        self.set_vbr(settings.vbr)?;
        self.set_inband_fec(settings.inband_fec)?;
        self.set_dtx(settings.dtx)?;
        self.set_packet_loss_percent(settings.packet_loss_percent)?;
        self.set_signal_voice(settings.signal_voice)?;
        Ok(())
    }

    /// Sets the target bitrate, 500..=512,000 bit/s (`OPUS_SET_BITRATE`).
    pub fn set_bitrate(&mut self, bitrate_bps: i32) -> Result<()> {
        if !(500..=512_000).contains(&bitrate_bps) {
            return Err(MediaError::invalid(format!(
                "opus bitrate must be 500..=512000 bit/s, not {bitrate_bps}"
            )));
        }
        self.ctl("set bitrate", sys::OPUS_SET_BITRATE_REQUEST, bitrate_bps)?;
        self.settings.bitrate_bps = bitrate_bps;
        Ok(())
    }

    /// Sets the complexity 0..=10 (`OPUS_SET_COMPLEXITY`); cheap to call between any two frames,
    /// which is how the engine sheds load.
    pub fn set_complexity(&mut self, complexity: u8) -> Result<()> {
        if complexity > 10 {
            return Err(MediaError::invalid(format!(
                "opus complexity must be 0..=10, not {complexity}"
            )));
        }
        self.ctl(
            "set complexity",
            sys::OPUS_SET_COMPLEXITY_REQUEST,
            i32::from(complexity),
        )?;
        self.settings.complexity = complexity;
        Ok(())
    }

    /// Switches variable bitrate on or off (`OPUS_SET_VBR`).
    pub fn set_vbr(&mut self, vbr: bool) -> Result<()> {
        self.ctl("set vbr", sys::OPUS_SET_VBR_REQUEST, i32::from(vbr))?;
        self.settings.vbr = vbr;
        Ok(())
    }

    /// Switches in-band FEC on or off (`OPUS_SET_INBAND_FEC`).
    pub fn set_inband_fec(&mut self, on: bool) -> Result<()> {
        self.ctl(
            "set inband fec",
            sys::OPUS_SET_INBAND_FEC_REQUEST,
            i32::from(on),
        )?;
        self.settings.inband_fec = on;
        Ok(())
    }

    /// Switches discontinuous transmission on or off (`OPUS_SET_DTX`).
    pub fn set_dtx(&mut self, on: bool) -> Result<()> {
        self.ctl("set dtx", sys::OPUS_SET_DTX_REQUEST, i32::from(on))?;
        self.settings.dtx = on;
        Ok(())
    }

    /// Sets the expected packet loss, 0..=100 % (`OPUS_SET_PACKET_LOSS_PERC`).
    pub fn set_packet_loss_percent(&mut self, percent: u8) -> Result<()> {
        if percent > 100 {
            return Err(MediaError::invalid(format!(
                "opus packet loss must be 0..=100 %, not {percent}"
            )));
        }
        self.ctl(
            "set packet loss",
            sys::OPUS_SET_PACKET_LOSS_PERC_REQUEST,
            i32::from(percent),
        )?;
        self.settings.packet_loss_percent = percent;
        Ok(())
    }

    /// Tells the encoder the input is speech (`OPUS_SIGNAL_VOICE`) or lets it decide (`OPUS_AUTO`).
    pub fn set_signal_voice(&mut self, voice: bool) -> Result<()> {
        let value = if voice {
            sys::OPUS_SIGNAL_VOICE
        } else {
            sys::OPUS_AUTO
        };
        self.ctl("set signal", sys::OPUS_SET_SIGNAL_REQUEST, value)?;
        self.settings.signal_voice = voice;
        Ok(())
    }

    /// The settings currently in force.
    pub fn settings(&self) -> &OpusSettings {
        &self.settings
    }

    /// Channels (1 or 2).
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Resets the encoder to its freshly created state, keeping its settings (`OPUS_RESET_STATE`).
    pub fn reset(&mut self) -> Result<()> {
        // SAFETY: live state owned by self; OPUS_RESET_STATE takes no variadic argument.
        let rc = unsafe { sys::opus_encoder_ctl(self.st.as_ptr(), sys::OPUS_RESET_STATE) };
        if rc == sys::OPUS_OK {
            Ok(())
        } else {
            Err(opus_error("reset", rc))
        }
    }

    /// Encodes one frame of interleaved `pcm` into `out`; returns the payload length in bytes.
    ///
    /// `pcm.len()` must be `channels` × a valid frame size (2.5–120 ms, see the module docs).
    /// With DTX on, a result of 1 or 2 bytes means the frame is silence that need not be sent
    /// (libopus' DTX contract). An `out` of about 1,500 bytes is always enough at the bitrates
    /// a call uses.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize> {
        let ch = usize::from(self.channels);
        let frame = pcm.len() / ch;
        let st = step(self.sample_rate);
        // Frame length in units of 2.5 ms: 2.5, 5, 10, 20, 40, 60, 80, 100 or 120 ms.
        let valid = pcm.len() % ch == 0
            && frame % st == 0
            && matches!(frame / st, 1 | 2 | 4 | 8 | 16 | 24 | 32 | 40 | 48);
        if !valid {
            return Err(MediaError::invalid(format!(
                "opus frame of {} samples is not 2.5/5/10/20/40/60/80/100/120 ms of {} channel(s) at {} Hz",
                pcm.len(),
                ch,
                self.sample_rate
            )));
        }
        if out.is_empty() {
            return Err(MediaError::invalid("opus output buffer is empty"));
        }
        let cap = out.len().min(MAX_PACKET);
        // SAFETY: `st` is live; `pcm` holds frame × channels samples (checked above); `out` is
        // valid for `cap` ≤ out.len() bytes; both buffers outlive the call and do not overlap.
        let rc = unsafe {
            sys::opus_encode(
                self.st.as_ptr(),
                pcm.as_ptr(),
                frame as i32,
                out.as_mut_ptr(),
                cap as i32,
            )
        };
        if rc < 0 {
            return Err(opus_error("encode", rc));
        }
        Ok(rc as usize)
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        // SAFETY: `st` came from opus_encoder_create and is destroyed exactly once, here.
        unsafe { sys::opus_encoder_destroy(self.st.as_ptr()) };
    }
}

impl Encoder for OpusEncoder {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize> {
        OpusEncoder::encode(self, pcm, out)
    }
}

/// An Opus decoder over one libopus `OpusDecoder` state.
#[derive(Debug)]
pub struct OpusDecoder {
    st: NonNull<sys::OpusDecoder>,
    sample_rate: u32,
    channels: u8,
}

// SAFETY: as for OpusEncoder: exclusively owned plain memory, no thread affinity.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    /// Creates a decoder producing `channels` (1 or 2) at `sample_rate` (8000, 12000, 16000,
    /// 24000 or 48000 Hz), whatever rate the sender encoded at (RFC 7587 §3: the RTP clock is
    /// always 48 kHz; the decoder resamples internally).
    pub fn new(sample_rate: u32, channels: u8) -> Result<Self> {
        check_rate(sample_rate)?;
        check_channels(channels)?;
        let mut err: i32 = 0;
        // SAFETY: validated rate and channels; `err` points to a live int.
        let raw =
            unsafe { sys::opus_decoder_create(sample_rate as i32, i32::from(channels), &mut err) };
        let st = match NonNull::new(raw) {
            Some(st) if err == sys::OPUS_OK => st,
            Some(st) => {
                // SAFETY: destroy the state libopus allocated, once.
                unsafe { sys::opus_decoder_destroy(st.as_ptr()) };
                return Err(opus_error("decoder create", err));
            }
            None => return Err(opus_error("decoder create", err)),
        };
        Ok(Self {
            st,
            sample_rate,
            channels,
        })
    }

    /// Channels (1 or 2).
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Samples per channel that fit `out`, capped at 120 ms; checks `out` is a whole number of
    /// interleaved frames.
    fn frame_capacity(&self, out: &[i16]) -> Result<usize> {
        let ch = usize::from(self.channels);
        if out.len() % ch != 0 || out.is_empty() {
            return Err(MediaError::invalid(format!(
                "opus output of {} samples is not a non-empty multiple of {ch} channel(s)",
                out.len()
            )));
        }
        let max = self.sample_rate as usize * MAX_FRAME_MS / 1000;
        Ok((out.len() / ch).min(max))
    }

    /// Checks that `out` is exactly one concealable frame (a multiple of 2.5 ms, ≤ 120 ms).
    fn gap_frame(&self, out: &[i16]) -> Result<usize> {
        let frame = self.frame_capacity(out)?;
        if frame * usize::from(self.channels) != out.len() || frame % step(self.sample_rate) != 0 {
            return Err(MediaError::invalid(format!(
                "opus concealment needs a multiple of 2.5 ms up to 120 ms, not {} samples at {} Hz",
                out.len(),
                self.sample_rate
            )));
        }
        Ok(frame)
    }

    fn raw_decode(
        &mut self,
        data: Option<&[u8]>,
        out: &mut [i16],
        frame: usize,
        fec: bool,
    ) -> Result<usize> {
        let (ptr, len) = match data {
            Some(d) => {
                if d.len() > i32::MAX as usize {
                    return Err(MediaError::Parse("opus packet too long".into()));
                }
                (d.as_ptr(), d.len() as i32)
            }
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `st` is live; `ptr`/`len` describe a readable slice or are null/0 (PLC, which
        // libopus documents); `out` holds at least frame × channels samples (frame ≤
        // out.len() / channels by construction) and does not overlap the input.
        let rc = unsafe {
            sys::opus_decode(
                self.st.as_ptr(),
                ptr,
                len,
                out.as_mut_ptr(),
                frame as i32,
                i32::from(fec),
            )
        };
        if rc < 0 {
            return Err(opus_error("decode", rc));
        }
        Ok(rc as usize * usize::from(self.channels))
    }

    /// Decodes one packet into `out`; returns the number of `i16` values written (samples per
    /// channel × channels). `out` must have room for the packet's duration (120 ms always
    /// suffices). An empty or malformed packet is an error, never a crash.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize> {
        if packet.is_empty() {
            return Err(MediaError::Parse("empty opus packet".into()));
        }
        let frame = self.frame_capacity(out)?;
        self.raw_decode(Some(packet), out, frame, false)
    }

    /// Rebuilds the lost frame *before* `next_packet` from the FEC (LBRR) data carried in
    /// `next_packet` (RFC 6716 §2.1.7; `opus_decode(…, decode_fec = 1)`). `out` must be exactly
    /// the duration of the missing frame. If `next_packet` carries no FEC, libopus conceals
    /// instead. Call [`OpusDecoder::decode`] on `next_packet` afterwards as usual.
    pub fn decode_fec(&mut self, next_packet: &[u8], out: &mut [i16]) -> Result<usize> {
        if next_packet.is_empty() {
            return Err(MediaError::Parse("empty opus packet".into()));
        }
        let frame = self.gap_frame(out)?;
        self.raw_decode(Some(next_packet), out, frame, true)
    }

    /// Packet-loss concealment: fills `out` (a multiple of 2.5 ms, ≤ 120 ms) by extrapolating
    /// from the previous frames (`opus_decode` with no data).
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize> {
        let frame = self.gap_frame(out)?;
        self.raw_decode(None, out, frame, false)
    }

    /// Samples per channel that `packet` decodes to at this decoder's rate
    /// (`opus_packet_get_nb_samples`).
    pub fn packet_samples(&self, packet: &[u8]) -> Result<usize> {
        if packet.is_empty() || packet.len() > i32::MAX as usize {
            return Err(MediaError::Parse("empty or oversized opus packet".into()));
        }
        // SAFETY: `packet` is a readable slice of the given length.
        let rc = unsafe {
            sys::opus_packet_get_nb_samples(
                packet.as_ptr(),
                packet.len() as i32,
                self.sample_rate as i32,
            )
        };
        if rc < 0 {
            return Err(opus_error("packet samples", rc));
        }
        Ok(rc as usize)
    }

    /// Whether `packet` carries in-band FEC (LBRR) data for the frame before it
    /// (`opus_packet_has_lbrr`); false for malformed packets.
    pub fn packet_has_fec(packet: &[u8]) -> bool {
        if packet.is_empty() || packet.len() > i32::MAX as usize {
            return false;
        }
        // SAFETY: `packet` is a readable slice of the given length.
        let rc = unsafe { sys::opus_packet_has_lbrr(packet.as_ptr(), packet.len() as i32) };
        rc > 0
    }

    /// Resets the decoder to its freshly created state (`OPUS_RESET_STATE`), for example when the
    /// sender's SSRC changes.
    pub fn reset(&mut self) -> Result<()> {
        // SAFETY: live state owned by self; OPUS_RESET_STATE takes no variadic argument.
        let rc = unsafe { sys::opus_decoder_ctl(self.st.as_ptr(), sys::OPUS_RESET_STATE) };
        if rc == sys::OPUS_OK {
            Ok(())
        } else {
            Err(opus_error("reset", rc))
        }
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: `st` came from opus_decoder_create and is destroyed exactly once, here.
        unsafe { sys::opus_decoder_destroy(self.st.as_ptr()) };
    }
}

impl Decoder for OpusDecoder {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize> {
        OpusDecoder::decode(self, payload, out)
    }

    /// FEC from `next` when it is given and carries LBRR data, PLC otherwise.
    fn conceal(&mut self, next: Option<&[u8]>, out: &mut [i16]) -> Result<usize> {
        match next {
            Some(next) if Self::packet_has_fec(next) => self.decode_fec(next, out),
            _ => OpusDecoder::conceal(self, out),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A voice-like test signal: a 140 Hz glottal-ish pulse train through formant-like sines with
    /// a slow amplitude envelope (syllables).
    fn voice(rate: u32, len: usize) -> Vec<i16> {
        let fs = rate as f64;
        (0..len)
            .map(|n| {
                let t = n as f64 / fs;
                let f0 = 140.0 + 15.0 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
                let mut v = 0.0;
                for (k, a) in [
                    (1.0, 0.3),
                    (2.0, 0.5),
                    (3.0, 0.8),
                    (4.0, 0.6),
                    (5.0, 0.4),
                    (7.0, 0.5),
                    (10.0, 0.3),
                    (14.0, 0.2),
                ] {
                    v += a * (2.0 * std::f64::consts::PI * f0 * k * t).sin();
                }
                let env = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
                (v * env * 3000.0) as i16
            })
            .collect()
    }

    /// Best normalised cross-correlation of `a` against `b` shifted by 0..max_lag samples.
    fn best_corr(a: &[i16], b: &[i16], max_lag: usize) -> (f64, usize) {
        let mut best = (f64::MIN, 0);
        for lag in 0..max_lag {
            let n = a.len().min(b.len() - lag);
            let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
            for i in 0..n {
                let x = f64::from(a[i]);
                let y = f64::from(b[i + lag]);
                xy += x * y;
                xx += x * x;
                yy += y * y;
            }
            let c = xy / (xx * yy).sqrt().max(1e-9);
            if c > best.0 {
                best = (c, lag);
            }
        }
        best
    }

    fn snr_db(reference: &[i16], test: &[i16]) -> f64 {
        let (mut s, mut e) = (0.0, 0.0);
        for (&r, &t) in reference.iter().zip(test) {
            s += f64::from(r).powi(2);
            e += (f64::from(r) - f64::from(t)).powi(2);
        }
        10.0 * (s / e.max(1e-9)).log10()
    }

    #[test]
    fn version_is_1_5_or_newer() {
        let v = libopus_version();
        let num = v.trim_start_matches("libopus ");
        let mut it = num.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
        let major = it.next().unwrap_or(0);
        let minor = it.next().unwrap_or(0);
        assert!((major, minor) >= (1, 5), "bundled {v}");
    }

    #[test]
    fn round_trip_voice_at_8_16_48_khz() {
        for rate in [8000u32, 16000, 48000] {
            let frame = rate as usize / 50;
            let input = voice(rate, frame * 100);
            let mut enc = OpusEncoder::new(rate, 1, &OpusSettings::default()).unwrap();
            let mut dec = OpusDecoder::new(rate, 1).unwrap();
            let mut output = Vec::new();
            let mut pkt = [0u8; 1500];
            let mut pcm = vec![0i16; frame];
            for chunk in input.chunks(frame) {
                let n = enc.encode(chunk, &mut pkt).unwrap();
                assert!(n > 2 && n < 200, "{rate}: packet of {n} bytes");
                assert_eq!(dec.packet_samples(&pkt[..n]).unwrap(), frame);
                let m = dec.decode(&pkt[..n], &mut pcm).unwrap();
                assert_eq!(m, frame);
                output.extend_from_slice(&pcm);
            }
            // Skip the first 200 ms (encoder start-up), compare against the delayed output.
            let skip = frame * 10;
            let (c, lag) = best_corr(
                &input[skip..input.len() - frame * 5],
                &output[skip..],
                frame,
            );
            let snr = snr_db(
                &input[skip..input.len() - frame * 5],
                &output[skip + lag..output.len() - frame * 5 + lag],
            );
            eprintln!("{rate} Hz: correlation {c:.4} at lag {lag}, SNR {snr:.1} dB");
            // SILK codes perceptually, not waveform-exactly: ~0.8 correlation / 4 dB SNR is what
            // 24 kbps gives on this signal; a broken path gives ~0.
            assert!(c > 0.7, "{rate}: correlation {c}");
            assert!(snr > 2.0, "{rate}: snr {snr}");
            let level = 10.0
                * (output[skip..]
                    .iter()
                    .map(|&s| f64::from(s).powi(2))
                    .sum::<f64>()
                    / input[skip..]
                        .iter()
                        .map(|&s| f64::from(s).powi(2))
                        .sum::<f64>())
                .log10();
            assert!(level.abs() < 2.0, "{rate}: level changed by {level:.1} dB");
        }
    }

    #[test]
    fn decode_48k_stream_straight_to_8k() {
        let input = voice(48000, 960 * 50);
        let mut enc = OpusEncoder::new(48000, 1, &OpusSettings::default()).unwrap();
        let mut dec = OpusDecoder::new(8000, 1).unwrap();
        let mut pkt = [0u8; 1500];
        let mut pcm = [0i16; 160];
        let mut energy = 0.0;
        for chunk in input.chunks(960) {
            let n = enc.encode(chunk, &mut pkt).unwrap();
            assert_eq!(dec.decode(&pkt[..n], &mut pcm).unwrap(), 160);
            energy += pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        }
        assert!(energy / (160.0 * 50.0) > 1e6, "decoded energy {energy}");
    }

    /// Encodes `input` with FEC, drops every 10th packet and returns the SNR of the frames that
    /// replaced the lost ones when recovered with FEC and with PLC.
    fn loss_snr(rate: u32) -> (f64, f64) {
        let frame = rate as usize / 50;
        let input = voice(rate, frame * 200);
        let settings = OpusSettings {
            packet_loss_percent: 20,
            ..OpusSettings::default()
        };
        let mut enc = OpusEncoder::new(rate, 1, &settings).unwrap();
        let mut packets = Vec::new();
        for chunk in input.chunks(frame) {
            let mut pkt = [0u8; 1500];
            let n = enc.encode(chunk, &mut pkt).unwrap();
            packets.push(pkt[..n].to_vec());
        }
        // Reference: everything received.
        let mut dec = OpusDecoder::new(rate, 1).unwrap();
        let mut clean = vec![0i16; input.len()];
        for (i, p) in packets.iter().enumerate() {
            dec.decode(p, &mut clean[i * frame..(i + 1) * frame])
                .unwrap();
        }
        let mut results = [0.0; 2];
        for (r, use_fec) in [(0usize, true), (1, false)] {
            let mut dec = OpusDecoder::new(rate, 1).unwrap();
            let mut out = vec![0i16; input.len()];
            let (mut s, mut e) = (0.0, 0.0);
            for (i, p) in packets.iter().enumerate() {
                let span = i * frame..(i + 1) * frame;
                if i % 10 == 5 {
                    let next = packets.get(i + 1).map(|v| v.as_slice());
                    let n = if use_fec {
                        Decoder::conceal(&mut dec, next, &mut out[span.clone()]).unwrap()
                    } else {
                        Decoder::conceal(&mut dec, None, &mut out[span.clone()]).unwrap()
                    };
                    assert_eq!(n, frame);
                    for k in span {
                        s += f64::from(clean[k]).powi(2);
                        e += (f64::from(clean[k]) - f64::from(out[k])).powi(2);
                    }
                } else {
                    dec.decode(p, &mut out[span]).unwrap();
                }
            }
            results[r] = 10.0 * (s / e.max(1e-9)).log10();
        }
        (results[0], results[1])
    }

    #[test]
    fn fec_beats_plc() {
        for rate in [8000, 16000, 48000] {
            let (fec, plc) = loss_snr(rate);
            eprintln!("{rate} Hz lost frames vs clean decode: FEC {fec:.1} dB, PLC {plc:.1} dB");
            // At 48 kHz the encoder runs hybrid SILK+CELT and LBRR covers only the SILK layer,
            // so FEC's margin over PLC is smaller there.
            let margin = if rate == 48000 { 1.0 } else { 3.0 };
            assert!(fec > plc + margin, "{rate}: FEC {fec} dB, PLC {plc} dB");
        }
    }

    #[test]
    fn packets_carry_fec_when_enabled() {
        let input = voice(8000, 160 * 20);
        let mut enc = OpusEncoder::new(8000, 1, &OpusSettings::default()).unwrap();
        let mut pkt = [0u8; 1500];
        let mut with_fec = 0;
        for chunk in input.chunks(160) {
            let n = enc.encode(chunk, &mut pkt).unwrap();
            if OpusDecoder::packet_has_fec(&pkt[..n]) {
                with_fec += 1;
            }
        }
        assert!(with_fec >= 15, "{with_fec} of 20 packets carry FEC");
        enc.set_inband_fec(false).unwrap();
        let mut with_fec = 0;
        for chunk in input.chunks(160) {
            let n = enc.encode(chunk, &mut pkt).unwrap();
            if OpusDecoder::packet_has_fec(&pkt[..n]) {
                with_fec += 1;
            }
        }
        assert!(with_fec <= 1, "{with_fec} packets carry FEC with FEC off");
    }

    #[test]
    fn dtx_sends_tiny_packets_on_silence() {
        let settings = OpusSettings {
            dtx: true,
            ..OpusSettings::default()
        };
        let mut enc = OpusEncoder::new(8000, 1, &settings).unwrap();
        let silence = [0i16; 160];
        let mut pkt = [0u8; 1500];
        let mut tiny = 0;
        for _ in 0..100 {
            if enc.encode(&silence, &mut pkt).unwrap() <= 2 {
                tiny += 1;
            }
        }
        assert!(tiny >= 80, "{tiny} of 100 silent frames were DTX");
        let mut enc = OpusEncoder::new(8000, 1, &OpusSettings::default()).unwrap();
        let mut tiny = 0;
        for _ in 0..100 {
            if enc.encode(&silence, &mut pkt).unwrap() <= 2 {
                tiny += 1;
            }
        }
        assert_eq!(tiny, 0, "DTX off still sends full frames");
    }

    #[test]
    fn invalid_arguments_are_rejected() {
        let s = OpusSettings::default();
        assert!(matches!(
            OpusEncoder::new(44100, 1, &s),
            Err(MediaError::InvalidArgument(_))
        ));
        assert!(matches!(
            OpusEncoder::new(8000, 3, &s),
            Err(MediaError::InvalidArgument(_))
        ));
        assert!(matches!(
            OpusDecoder::new(11025, 1),
            Err(MediaError::InvalidArgument(_))
        ));
        assert!(matches!(
            OpusDecoder::new(8000, 0),
            Err(MediaError::InvalidArgument(_))
        ));
        let bad = OpusSettings {
            complexity: 11,
            ..s
        };
        assert!(OpusEncoder::new(8000, 1, &bad).is_err());
        let mut enc = OpusEncoder::new(8000, 1, &s).unwrap();
        assert!(enc.set_complexity(11).is_err());
        assert!(enc.set_bitrate(100).is_err());
        assert!(enc.set_packet_loss_percent(101).is_err());
        let mut pkt = [0u8; 1500];
        assert!(enc.encode(&[0i16; 150], &mut pkt).is_err());
        assert!(enc.encode(&[0i16; 160], &mut []).is_err());
        assert!(enc.encode(&[], &mut pkt).is_err());
        // Too-small output buffer: libopus' own error comes through as Codec.
        let loud = voice(8000, 160);
        match enc.encode(&loud, &mut pkt[..1]) {
            Ok(n) => assert!(n <= 1),
            Err(e) => assert!(matches!(e, MediaError::Codec(_))),
        }
        let mut stereo = OpusEncoder::new(48000, 2, &s).unwrap();
        assert!(stereo.encode(&[0i16; 961], &mut pkt).is_err());
        assert!(stereo.encode(&[0i16; 1920], &mut pkt).is_ok());
        let mut dec = OpusDecoder::new(8000, 1).unwrap();
        assert!(dec.conceal(&mut [0i16; 150]).is_err());
        assert!(dec.conceal(&mut []).is_err());
        assert!(dec.conceal(&mut [0i16; 160]).is_ok());
        assert!(dec.decode(&[], &mut [0i16; 160]).is_err());
        // Every complexity is a valid runtime setting.
        for cx in 0..=10 {
            enc.set_complexity(cx).unwrap();
            enc.encode(&loud, &mut pkt).unwrap();
            assert_eq!(enc.settings().complexity, cx);
        }
    }

    #[test]
    fn garbage_packets_give_errors_not_crashes() {
        let mut dec = OpusDecoder::new(8000, 1).unwrap();
        let mut out = [0i16; 960];
        let mut rng = 0x1234_5678u32;
        let mut errors = 0;
        for len in 1..400usize {
            let mut pkt = vec![0u8; len];
            for b in &mut pkt {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                *b = rng as u8;
            }
            match dec.decode(&pkt, &mut out) {
                Ok(n) => assert!(n <= out.len()),
                Err(e) => {
                    assert!(matches!(e, MediaError::Codec(_)), "{e}");
                    errors += 1;
                }
            }
            let _ = dec.packet_samples(&pkt);
            let _ = OpusDecoder::packet_has_fec(&pkt);
            let _ = dec.decode_fec(&pkt, &mut out[..160]);
        }
        assert!(errors > 0);
        // A valid 120 ms packet does not fit a 20 ms buffer: an error, not an overflow.
        let mut enc = OpusEncoder::new(8000, 1, &OpusSettings::default()).unwrap();
        let mut pkt = [0u8; 1500];
        let n = enc.encode(&voice(8000, 960), &mut pkt).unwrap();
        assert!(dec.decode(&pkt[..n], &mut out[..160]).is_err());
        assert_eq!(dec.decode(&pkt[..n], &mut out).unwrap(), 960);
    }

    #[test]
    fn encoder_and_decoder_are_send() {
        fn is_send<T: Send>() {}
        is_send::<OpusEncoder>();
        is_send::<OpusDecoder>();
    }
}
