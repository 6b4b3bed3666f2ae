//! Native parts of `tgsip bench media`: an RTP load generator that runs outside the engine's
//! workers, and the bare codec work the engine's cost is compared with.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::codec::g711::Law;
use crate::engine::thread_cpu_ns;
use crate::error::MediaError;
use crate::line::{CodecKind, LineConfig, OpusConfig};

use super::gil::detach;

/// Sends RTP streams to engine lines at the packet rate, from its own sockets and thread.
#[pyclass(name = "LoadGenerator", module = "tgsip._media_core", frozen)]
pub(crate) struct PyLoadGenerator {
    sockets: Mutex<Vec<UdpSocket>>,
    addresses: Vec<(String, u16)>,
}

struct Stream {
    target: SocketAddr,
    payload_type: u8,
    set: usize,
    ssrc: u32,
    seq: u16,
    ts: u32,
    index: usize,
}

#[pymethods]
impl PyLoadGenerator {
    /// Binds `streams` UDP sockets on `host` (ports chosen by the system).
    #[new]
    fn new(py: Python<'_>, streams: usize, host: &str) -> PyResult<Self> {
        let host = host.to_owned();
        let sockets = detach(py, move || {
            (0..streams)
                .map(|_| {
                    let s = UdpSocket::bind((host.as_str(), 0))
                        .map_err(|e| MediaError::io("binding a load-generator socket", &e))?;
                    s.set_nonblocking(true)
                        .map_err(|e| MediaError::io("configuring a load-generator socket", &e))?;
                    Ok(s)
                })
                .collect::<Result<Vec<_>, MediaError>>()
        })?;
        let addresses = sockets
            .iter()
            .map(|s| {
                s.local_addr()
                    .map(|a| (a.ip().to_string(), a.port()))
                    .map_err(|e| MediaError::io("reading a socket address", &e))
            })
            .collect::<Result<Vec<_>, MediaError>>()?;
        Ok(Self {
            sockets: Mutex::new(sockets),
            addresses,
        })
    }

    /// `(host, port)` of each stream's socket, to start the engine's lines towards.
    #[getter]
    fn addresses(&self) -> Vec<(String, u16)> {
        self.addresses.clone()
    }

    /// Sends for `seconds`: stream `i` goes from socket `i` to `targets[i] = (host, port,
    /// payload_type, set)`, cycling through `payload_sets[set]`, one packet per `ptime_ms`, with
    /// `samples_per_packet[set]` timestamp units per packet. Received datagrams are read and
    /// discarded. Returns `{"sent": n, "late_rounds": n, "received": n}`.
    fn run<'py>(
        &self,
        py: Python<'py>,
        targets: Vec<(String, u16, u8, usize)>,
        payload_sets: Vec<Vec<Vec<u8>>>,
        samples_per_packet: Vec<u32>,
        ptime_ms: u64,
        seconds: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let sockets = std::mem::take(&mut *super::lock(&self.sockets));
        if targets.len() > sockets.len() {
            *super::lock(&self.sockets) = sockets;
            return Err(MediaError::invalid("more targets than sockets").into());
        }
        if !(0.0..=3600.0).contains(&seconds) || ptime_ms == 0 {
            *super::lock(&self.sockets) = sockets;
            return Err(MediaError::invalid("seconds must be 0..=3600 and ptime_ms > 0").into());
        }
        let mut streams = Vec::with_capacity(targets.len());
        for (i, (host, port, pt, set)) in targets.into_iter().enumerate() {
            let ip = host
                .parse()
                .map_err(|_| MediaError::invalid(format!("bad host {host:?}")))?;
            if payload_sets.get(set).is_none_or(|s| s.is_empty())
                || samples_per_packet.get(set).is_none()
            {
                return Err(MediaError::invalid(format!("no payload set {set}")).into());
            }
            streams.push(Stream {
                target: SocketAddr::new(ip, port),
                payload_type: pt,
                set,
                ssrc: 0x5000_0000 + i as u32,
                seq: (i as u16).wrapping_mul(7919),
                ts: (i as u32).wrapping_mul(104_729),
                index: i * 13,
            });
        }
        let result = py.detach(move || {
            let r = generate(
                &sockets,
                &mut streams,
                &payload_sets,
                &samples_per_packet,
                ptime_ms,
                seconds,
            );
            (r, sockets)
        });
        let ((sent, late, received), sockets) = result;
        *super::lock(&self.sockets) = sockets;
        let d = PyDict::new(py);
        d.set_item("sent", sent)?;
        d.set_item("late_rounds", late)?;
        d.set_item("received", received)?;
        Ok(d)
    }
}

fn generate(
    sockets: &[UdpSocket],
    streams: &mut [Stream],
    sets: &[Vec<Vec<u8>>],
    samples: &[u32],
    ptime_ms: u64,
    seconds: f64,
) -> (u64, u64, u64) {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let ptime = Duration::from_millis(ptime_ms);
    let mut next = start;
    let mut packet = vec![0u8; 1500];
    let mut rx = vec![0u8; 1500];
    let (mut sent, mut late, mut received) = (0u64, 0u64, 0u64);
    while Instant::now() < end {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        } else if now > next + ptime {
            late += 1;
        }
        next += ptime;
        for (s, sock) in streams.iter_mut().zip(sockets) {
            let set = &sets[s.set];
            let payload = &set[s.index % set.len()];
            s.index += 1;
            packet[0] = 0x80;
            packet[1] = s.payload_type & 0x7F;
            packet[2..4].copy_from_slice(&s.seq.to_be_bytes());
            packet[4..8].copy_from_slice(&s.ts.to_be_bytes());
            packet[8..12].copy_from_slice(&s.ssrc.to_be_bytes());
            let n = 12 + payload.len().min(packet.len() - 12);
            packet[12..n].copy_from_slice(&payload[..n - 12]);
            if sock.send_to(&packet[..n], s.target).is_ok() {
                sent += 1;
            }
            s.seq = s.seq.wrapping_add(1);
            s.ts = s.ts.wrapping_add(samples[s.set]);
            // Drain what the engine sent back (bounded), so socket buffers never fill.
            for _ in 0..8 {
                match sock.recv_from(&mut rx) {
                    Ok(_) => received += 1,
                    Err(_) => break,
                }
            }
        }
    }
    (sent, late, received)
}

/// Encodes s16le PCM into a list of codec payloads of `ptime_ms` each (for the generator).
#[pyfunction]
#[pyo3(signature = (codec, pcm, sample_rate, ptime_ms=20, opus_bitrate=24_000, opus_complexity=5))]
fn encode_payloads(
    py: Python<'_>,
    codec: &str,
    pcm: &[u8],
    sample_rate: u32,
    ptime_ms: u32,
    opus_bitrate: u32,
    opus_complexity: u8,
) -> PyResult<Vec<Vec<u8>>> {
    let kind = CodecKind::from_name(codec)?;
    let samples: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let cfg = LineConfig {
        codec: kind,
        pcm_rate: sample_rate,
        ptime_ms,
        opus: OpusConfig {
            bitrate_bps: opus_bitrate,
            complexity: opus_complexity,
            ..OpusConfig::default()
        },
        ..LineConfig::default()
    };
    cfg.validate()?;
    detach(py, move || {
        let (mut enc, _, rate) = crate::line::make_codec(&cfg)?;
        if rate != sample_rate {
            return Err(MediaError::invalid(format!(
                "{codec:?} runs at {rate} Hz; give PCM at that rate"
            )));
        }
        let frame = (rate / 1000 * ptime_ms) as usize;
        let mut out = vec![0u8; 1500];
        let mut payloads = Vec::new();
        for chunk in samples.chunks_exact(frame) {
            let n = enc.encode(chunk, &mut out)?;
            payloads.push(out[..n].to_vec());
        }
        Ok(payloads)
    })
}

/// The bare codec work of one two-way Opus ⇄ G.711 call, per 20 ms frame, measured over the
/// given 8 kHz speech: Opus encode (8 kHz input), Opus decode (straight to 8 kHz) of the given
/// packets, G.711 encode and decode. Returns thread CPU nanoseconds per call-frame (minimum of
/// `repeats` passes).
#[pyfunction]
#[pyo3(signature = (pcm_8k, opus_packets, complexity=5, bitrate=24_000, repeats=3))]
fn codec_floor_ns(
    py: Python<'_>,
    pcm_8k: &[u8],
    opus_packets: Vec<Vec<u8>>,
    complexity: u8,
    bitrate: u32,
    repeats: u32,
) -> PyResult<f64> {
    let samples: Vec<i16> = pcm_8k
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let cfg = LineConfig {
        codec: CodecKind::Opus,
        payload_type: 111,
        pcm_rate: 8000,
        opus: OpusConfig {
            complexity,
            bitrate_bps: bitrate,
            ..OpusConfig::default()
        },
        ..LineConfig::default()
    };
    cfg.validate()?;
    if opus_packets.is_empty() || samples.len() < 160 {
        return Err(MediaError::invalid("need speech and Opus packets").into());
    }
    detach(py, move || {
        let mut best = f64::MAX;
        for _ in 0..repeats.max(1) {
            let (mut enc, mut dec, _) = crate::line::make_codec(&cfg)?;
            let mut out = vec![0u8; 1500];
            let mut pcm = vec![0i16; 160];
            let mut codes = vec![0u8; 160];
            let start = thread_cpu_ns();
            let mut frames = 0u64;
            for (i, chunk) in samples.chunks_exact(160).enumerate() {
                enc.encode(chunk, &mut out)?;
                let pkt = &opus_packets[i % opus_packets.len()];
                dec.decode(pkt, &mut pcm)?;
                Law::A.encode(&pcm, &mut codes);
                Law::A.decode(&codes, &mut pcm);
                frames += 1;
            }
            let spent = thread_cpu_ns().saturating_sub(start);
            best = best.min(spent as f64 / frames as f64);
        }
        Ok(best)
    })
}

/// Runs `frames` 20 ms frames of 8 kHz speech through one stage (see `benches/bench_media.py`
/// for the names); returns the frames processed. The GIL is released while it runs.
#[pyfunction]
fn run_stage(py: Python<'_>, stage: &str, pcm_8k: &[u8], frames: usize) -> PyResult<usize> {
    let samples: Vec<i16> = pcm_8k
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    if samples.len() < frames * 160 {
        return Err(MediaError::invalid(format!(
            "need {} samples of speech for {frames} frames, got {}",
            frames * 160,
            samples.len()
        ))
        .into());
    }
    let stage = stage.to_owned();
    detach(py, move || {
        super::bench_stages::run(&stage, &samples, frames)
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_stage, m)?)?;
    m.add_class::<PyLoadGenerator>()?;
    m.add_function(wrap_pyfunction!(encode_payloads, m)?)?;
    m.add_function(wrap_pyfunction!(codec_floor_ns, m)?)?;
    Ok(())
}
