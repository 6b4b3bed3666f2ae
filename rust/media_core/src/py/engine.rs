//! `Engine` and `Line` for Python. Control calls wait for the worker's answer with the GIL
//! released; the per-frame calls (`push_pcm`, `pull_pcm`) are a bounded copy under a mutex and
//! keep the GIL (releasing it would cost more than the copy).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::engine::{Engine, EngineConfig, SharedEndpoint};
use crate::error::MediaError;
use crate::line::{CodecKind, DtmfMode, DtmfSource, LineConfig, LineEvent, LineStats, OpusConfig};

use super::gil::detach;

/// The media engine: worker threads that own every line's sockets.
#[pyclass(name = "Engine", module = "tgsip._media_core", frozen)]
pub(crate) struct PyEngine {
    engine: Arc<Engine>,
}

/// One line of the engine.
#[pyclass(name = "Line", module = "tgsip._media_core", frozen)]
pub(crate) struct PyLine {
    engine: Arc<Engine>,
    id: u64,
    local: SocketAddr,
    endpoint: Option<SharedEndpoint>,
    frame_samples: usize,
}

fn parse_ip(host: &str) -> Result<IpAddr, MediaError> {
    host.parse()
        .map_err(|_| MediaError::invalid(format!("not an IP address: {host:?}")))
}

fn ms(value: u64, name: &str, max: u64) -> Result<Duration, MediaError> {
    if value > max {
        return Err(MediaError::invalid(format!(
            "{name} must be at most {max} ms, got {value}"
        )));
    }
    Ok(Duration::from_millis(value))
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (workers=None, bind_ip="127.0.0.1", port_min=20000, port_max=39999))]
    fn new(
        py: Python<'_>,
        workers: Option<usize>,
        bind_ip: &str,
        port_min: u16,
        port_max: u16,
    ) -> PyResult<Self> {
        let mut cfg = EngineConfig {
            bind_ip: parse_ip(bind_ip)?,
            port_min,
            port_max,
            ..EngineConfig::default()
        };
        if let Some(w) = workers {
            cfg.workers = w;
        }
        let engine = detach(py, || Engine::new(cfg))?;
        Ok(Self {
            engine: Arc::new(engine),
        })
    }

    #[pyo3(signature = (
        codec, payload_type, *, telephone_event_pt=Some(101), ptime_ms=20, dtmf_mode="rfc4733",
        detect_inband_dtmf=true, symmetric_rtp=true, rtp_timeout_ms=30_000, pcm_rate=8000,
        pcm_endpoint=false, near=None, opus_bitrate=24_000, opus_complexity=5, opus_fec=true,
        opus_dtx=false, opus_loss_percent=5, jitter_min_ms=20, jitter_max_ms=300,
        stats_interval_ms=5_000, forward_non_rtp=false, rtcp_mux=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn open_line(
        &self,
        py: Python<'_>,
        codec: &str,
        payload_type: u8,
        telephone_event_pt: Option<u8>,
        ptime_ms: u32,
        dtmf_mode: &str,
        detect_inband_dtmf: bool,
        symmetric_rtp: bool,
        rtp_timeout_ms: u64,
        pcm_rate: u32,
        pcm_endpoint: bool,
        near: Option<PyRef<'_, PyLine>>,
        opus_bitrate: u32,
        opus_complexity: u8,
        opus_fec: bool,
        opus_dtx: bool,
        opus_loss_percent: u8,
        jitter_min_ms: u64,
        jitter_max_ms: u64,
        stats_interval_ms: u64,
        forward_non_rtp: bool,
        rtcp_mux: bool,
    ) -> PyResult<PyLine> {
        let cfg = LineConfig {
            codec: CodecKind::from_name(codec)?,
            payload_type,
            telephone_event_pt,
            ptime_ms,
            dtmf_mode: DtmfMode::from_name(dtmf_mode)?,
            detect_inband_dtmf,
            symmetric_rtp,
            rtp_timeout: ms(rtp_timeout_ms, "rtp_timeout_ms", 3_600_000)?,
            pcm_rate,
            opus: OpusConfig {
                bitrate_bps: opus_bitrate,
                complexity: opus_complexity,
                inband_fec: opus_fec,
                dtx: opus_dtx,
                packet_loss_percent: opus_loss_percent,
            },
            jitter_min_delay: ms(jitter_min_ms, "jitter_min_ms", 2_000)?,
            jitter_max_delay: ms(jitter_max_ms, "jitter_max_ms", 2_000)?,
            stats_interval: ms(stats_interval_ms, "stats_interval_ms", 3_600_000)?,
            forward_non_rtp,
            rtcp_mux,
        };
        let near_id = near.map(|l| l.id);
        let engine = Arc::clone(&self.engine);
        let opened = detach(py, move || engine.open_line(cfg, pcm_endpoint, near_id))?;
        Ok(PyLine {
            engine: Arc::clone(&self.engine),
            id: opened.id,
            local: opened.local,
            frame_samples: (pcm_rate / 100) as usize,
            endpoint: opened.endpoint,
        })
    }

    /// The descriptor that becomes readable when events wait.
    fn fileno(&self) -> i32 {
        self.engine.notify_fd()
    }

    /// Every waiting event as `(line_id, kind, fields)`.
    fn poll_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let events = self.engine.drain_events();
        let list = PyList::empty(py);
        for (id, ev) in events {
            list.append(event_tuple(py, id, ev)?)?;
        }
        Ok(list)
    }

    /// Events dropped because they were not drained in time.
    #[getter]
    fn dropped_events(&self) -> u64 {
        self.engine.dropped_events()
    }

    /// Lines open.
    #[getter]
    fn line_count(&self) -> usize {
        self.engine.line_count()
    }

    /// Milliseconds since the engine started (its clock).
    fn now_ms(&self) -> f64 {
        self.engine.now().as_secs_f64() * 1000.0
    }

    /// Each worker's load: cpu_ns, ticks, late_ticks, max_tick_ns, lines.
    fn worker_loads<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        use std::sync::atomic::Ordering::Relaxed;
        let list = PyList::empty(py);
        for load in self.engine.worker_loads() {
            let d = PyDict::new(py);
            d.set_item("cpu_ns", load.cpu_ns.load(Relaxed))?;
            d.set_item("ticks", load.ticks.load(Relaxed))?;
            d.set_item("late_ticks", load.late_ticks.load(Relaxed))?;
            d.set_item("max_tick_ns", load.max_tick_ns.load(Relaxed))?;
            d.set_item("lines", load.lines.load(Relaxed))?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Stops the workers; every line closes and recordings finish. Idempotent.
    fn close(&self, py: Python<'_>) {
        let engine = Arc::clone(&self.engine);
        py.detach(move || engine.shutdown());
    }

    #[getter]
    fn closed(&self) -> bool {
        self.engine.is_closed()
    }
}

#[pymethods]
impl PyLine {
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    /// The address the line's RTP arrives at: `(host, port)`.
    #[getter]
    fn local_address(&self) -> (String, u16) {
        (self.local.ip().to_string(), self.local.port())
    }

    /// Bytes in one 10 ms PCM frame (s16le at the line's PCM rate).
    #[getter]
    fn frame_bytes(&self) -> usize {
        self.frame_samples * 2
    }

    /// Sets the remote RTP address and starts the line.
    fn start(&self, py: Python<'_>, host: &str, port: u16) -> PyResult<()> {
        let remote = SocketAddr::new(parse_ip(host)?, port);
        let (engine, id) = (Arc::clone(&self.engine), self.id);
        detach(py, move || engine.start(id, remote))
    }

    /// Bridges this line with `other` (opened with `near=self` or vice versa).
    fn bridge(&self, py: Python<'_>, other: PyRef<'_, PyLine>) -> PyResult<()> {
        let (engine, a, b) = (Arc::clone(&self.engine), self.id, other.id);
        detach(py, move || engine.bridge(a, b))
    }

    fn unbridge(&self, py: Python<'_>) -> PyResult<()> {
        let (engine, id) = (Arc::clone(&self.engine), self.id);
        detach(py, move || engine.unbridge(id))
    }

    #[pyo3(signature = (digit, duration_ms=100))]
    fn send_dtmf(&self, py: Python<'_>, digit: &str, duration_ms: u32) -> PyResult<()> {
        let mut chars = digit.chars();
        let (Some(d), None) = (chars.next(), chars.next()) else {
            return Err(
                MediaError::invalid(format!("one DTMF digit expected, got {digit:?}")).into(),
            );
        };
        let (engine, id) = (Arc::clone(&self.engine), self.id);
        detach(py, move || engine.send_dtmf(id, d, duration_ms))
    }

    fn start_recording(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let (engine, id) = (Arc::clone(&self.engine), self.id);
        detach(py, move || engine.start_recording(id, path))
    }

    fn stop_recording(&self, py: Python<'_>) -> PyResult<()> {
        let (engine, id) = (Arc::clone(&self.engine), self.id);
        detach(py, move || engine.stop_recording(id))
    }

    fn set_sending(&self, py: Python<'_>, enabled: bool) -> PyResult<()> {
        let (engine, id) = (Arc::clone(&self.engine), self.id);
        detach(py, move || engine.set_sending(id, enabled))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (engine, id) = (Arc::clone(&self.engine), self.id);
        let stats = detach(py, move || engine.line_stats(id))?;
        stats_dict(py, &stats)
    }

    /// Pushes one or more 10 ms frames of s16le PCM (the Telegram side's audio to send).
    fn push_pcm(&self, pcm: &[u8]) -> PyResult<()> {
        let ep = self.endpoint()?;
        if pcm.len() % 2 != 0 {
            return Err(MediaError::invalid("PCM must be whole 16-bit samples").into());
        }
        let mut samples = [0i16; 960];
        let mut ep = super::lock(ep);
        for chunk in pcm.chunks(samples.len() * 2) {
            let n = chunk.len() / 2;
            for (s, b) in samples.iter_mut().zip(chunk.chunks_exact(2)) {
                *s = i16::from_le_bytes([b[0], b[1]]);
            }
            ep.push(&samples[..n]);
        }
        Ok(())
    }

    /// Pulls one 10 ms frame of s16le PCM (what the line received); silence while none is ready.
    fn pull_pcm<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let ep = self.endpoint()?;
        let mut samples = [0i16; 480];
        let n = self.frame_samples.min(samples.len());
        super::lock(ep).pull(&mut samples[..n]);
        PyBytes::new_with(py, n * 2, |out| {
            for (o, s) in out.chunks_exact_mut(2).zip(&samples[..n]) {
                o.copy_from_slice(&s.to_le_bytes());
            }
            Ok(())
        })
    }

    /// Sends a raw datagram (STUN/DTLS) from the line's socket to `host:port`.
    fn send_datagram(&self, py: Python<'_>, host: &str, port: u16, data: Vec<u8>) -> PyResult<()> {
        let to = SocketAddr::new(parse_ip(host)?, port);
        let (engine, id) = (Arc::clone(&self.engine), self.id);
        detach(py, move || engine.send_datagram(id, to, data))
    }

    /// Closes the line (a running recording finishes first).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let (engine, id) = (Arc::clone(&self.engine), self.id);
        detach(py, move || engine.close_line(id))
    }

    fn __repr__(&self) -> String {
        format!("<Line {} at {}>", self.id, self.local)
    }
}

impl PyLine {
    fn endpoint(&self) -> Result<&SharedEndpoint, MediaError> {
        self.endpoint.as_ref().ok_or_else(|| {
            MediaError::invalid(format!("line {} was opened without pcm_endpoint", self.id))
        })
    }
}

fn stats_dict<'py>(py: Python<'py>, s: &LineStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("packets_received", s.packets_received)?;
    d.set_item("packets_sent", s.packets_sent)?;
    d.set_item("malformed", s.malformed)?;
    d.set_item("wrong_source", s.wrong_source)?;
    d.set_item("unknown_payload_type", s.unknown_payload_type)?;
    d.set_item("relayed", s.relayed)?;
    d.set_item("skipped_ticks", s.skipped_ticks)?;
    d.set_item("forwarded_datagrams", s.forwarded_datagrams)?;
    d.set_item("rtp_expected", s.rtp_expected)?;
    d.set_item("rtp_lost", s.rtp_lost)?;
    d.set_item("rtcp_received", s.rtcp_received)?;
    d.set_item("remote_reports", s.remote.reports)?;
    d.set_item("remote_fraction_lost", s.remote.fraction_lost)?;
    d.set_item("remote_cumulative_lost", s.remote.cumulative_lost)?;
    d.set_item("remote_jitter", s.remote.jitter)?;
    d.set_item("rtt_ms", s.remote.rtt_ms)?;
    d.set_item("send_underrun_samples", s.send_underrun_samples)?;
    d.set_item("send_overrun_samples", s.send_overrun_samples)?;
    super::jitter_stats_into(&d, &s.jitter)?;
    Ok(d)
}

fn event_tuple<'py>(py: Python<'py>, id: u64, ev: LineEvent) -> PyResult<Bound<'py, PyTuple>> {
    let d = PyDict::new(py);
    let kind = match ev {
        LineEvent::Dtmf {
            digit,
            source,
            duration_ms,
        } => {
            d.set_item("digit", digit.to_string())?;
            d.set_item(
                "method",
                match source {
                    DtmfSource::Rfc4733 => "rfc4733",
                    DtmfSource::Inband => "inband",
                },
            )?;
            d.set_item("duration_ms", duration_ms)?;
            "dtmf"
        }
        LineEvent::RtpTimeout { silent_ms } => {
            d.set_item("silent_ms", silent_ms)?;
            "rtp_timeout"
        }
        LineEvent::RemoteLatched(addr) => {
            d.set_item("host", addr.ip().to_string())?;
            d.set_item("port", addr.port())?;
            "remote_latched"
        }
        LineEvent::Stats(s) => {
            d.set_item("stats", stats_dict(py, &s)?)?;
            "stats"
        }
        LineEvent::RecordingFinished { path, duration_ms } => {
            d.set_item("path", path)?;
            d.set_item("duration_ms", duration_ms)?;
            "recording_finished"
        }
        LineEvent::Datagram { from, data } => {
            d.set_item("host", from.ip().to_string())?;
            d.set_item("port", from.port())?;
            d.set_item("data", pyo3::types::PyBytes::new(py, &data))?;
            "datagram"
        }
        LineEvent::Error(message) => {
            d.set_item("message", message)?;
            "error"
        }
    };
    PyTuple::new(
        py,
        [
            id.into_pyobject(py)?.into_any(),
            kind.into_pyobject(py)?.into_any(),
            d.into_any(),
        ],
    )
}
