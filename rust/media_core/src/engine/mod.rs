//! The engine: the one place in the media core that owns sockets, the clock and threads.
//!
//! `workers` threads each own a set of lines and their UDP sockets. A worker sleeps in `epoll`
//! (through mio) until a socket is readable, a command arrives or its next 10 ms tick is due;
//! on a tick it runs every line that is due ([`Line::tick`]), moves PCM between bridged lines and
//! PCM endpoints, and publishes the lines' events. No thread per call, no timer per call, and no
//! call into Python: Python sends commands through a channel (waking the worker) and reads events
//! from a queue whose readiness is signalled on a socket that asyncio watches
//! ([`Engine::notify_fd`]).
//!
//! Two lines that are bridged must live on the same worker: open the second with `near` set to
//! the first.

mod batch;
mod worker;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{MediaError, Result};
use crate::line::{Line, LineConfig, LineEvent, LineStats, PcmRing};

/// How long a control call waits for its worker's answer before reporting the engine stuck.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Events kept for Python at most; beyond it the oldest `Stats` events are dropped first.
const MAX_QUEUED_EVENTS: usize = 65_536;
/// Capacity of a PCM endpoint's rings, in milliseconds of audio.
const ENDPOINT_RING_MS: u32 = 200;
/// The elastic margin of a PCM endpoint's outbound ring, in milliseconds.
const ENDPOINT_MARGIN_MS: u32 = 20;

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Worker threads (each serves many lines); at least 1.
    pub workers: usize,
    /// The address RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// First port of the RTP range (even ports are used).
    pub port_min: u16,
    /// Last port of the RTP range.
    pub port_max: u16,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            port_min: 20_000,
            port_max: 39_999,
        }
    }
}

/// The Telegram side of a line: 10 ms frames pushed and pulled by Python.
#[derive(Debug)]
pub struct PcmEndpoint {
    /// Audio the line received, for Python to pull.
    pub(crate) to_python: PcmRing,
    /// Audio Python pushed, for the line to send.
    pub(crate) from_python: PcmRing,
    /// Samples in one 10 ms frame.
    pub frame_samples: usize,
}

/// A handle to a PCM endpoint shared between Python and a worker.
pub type SharedEndpoint = Arc<Mutex<PcmEndpoint>>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked leaves the data consistent enough (rings and queues of plain
    // values), so recover the guard instead of propagating the poison.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Per-worker load figures.
#[derive(Debug, Default)]
pub struct WorkerLoad {
    /// CPU time the worker thread has used, in nanoseconds.
    pub cpu_ns: AtomicU64,
    /// 10 ms ticks run.
    pub ticks: AtomicU64,
    /// Ticks that started more than one tick late.
    pub late_ticks: AtomicU64,
    /// Longest tick processing time seen, in nanoseconds.
    pub max_tick_ns: AtomicU64,
    /// Lines on this worker.
    pub lines: AtomicU64,
}

/// The event queue shared by the workers and Python.
#[derive(Debug)]
pub(crate) struct EventQueue {
    queue: Mutex<VecDeque<(u64, LineEvent)>>,
    notify_tx: UnixStream,
    dropped: AtomicU64,
}

impl EventQueue {
    pub(crate) fn push_all(&self, batch: &mut Vec<(u64, LineEvent)>) {
        if batch.is_empty() {
            return;
        }
        let was_empty;
        {
            let mut q = lock(&self.queue);
            was_empty = q.is_empty();
            for ev in batch.drain(..) {
                if q.len() >= MAX_QUEUED_EVENTS {
                    q.pop_front();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                q.push_back(ev);
            }
        }
        if was_empty {
            // Non-blocking: if the socket buffer is full, Python has wake-ups pending anyway.
            let _ = (&self.notify_tx).write_wake();
        }
    }
}

trait WriteWake {
    fn write_wake(self) -> std::io::Result<usize>;
}

impl WriteWake for &UnixStream {
    fn write_wake(self) -> std::io::Result<usize> {
        use std::io::Write;
        let mut s = self;
        s.write(&[1])
    }
}

pub(crate) enum Command {
    Open {
        id: u64,
        line: Box<Line>,
        socket: UdpSocket,
        endpoint: Option<SharedEndpoint>,
    },
    Start {
        id: u64,
        remote: SocketAddr,
    },
    Close {
        id: u64,
    },
    Bridge {
        a: u64,
        b: u64,
    },
    Unbridge {
        id: u64,
    },
    SendDtmf {
        id: u64,
        digit: char,
        duration_ms: u32,
    },
    StartRecording {
        id: u64,
        path: PathBuf,
    },
    StopRecording {
        id: u64,
    },
    SetSending {
        id: u64,
        enabled: bool,
    },
    Stats {
        id: u64,
    },
    SendDatagram {
        id: u64,
        to: SocketAddr,
        data: Vec<u8>,
    },
    Shutdown,
}

pub(crate) enum Reply {
    Done,
    Stats(Box<LineStats>),
}

pub(crate) type ReplyTx = mpsc::SyncSender<Result<Reply>>;

struct WorkerHandle {
    commands: mpsc::Sender<(Command, Option<ReplyTx>)>,
    waker: Arc<mio::Waker>,
    thread: Mutex<Option<JoinHandle<()>>>,
    load: Arc<WorkerLoad>,
}

struct LineInfo {
    worker: usize,
    local: SocketAddr,
    endpoint: Option<SharedEndpoint>,
}

/// The media engine; see the module documentation.
pub struct Engine {
    cfg: EngineConfig,
    epoch: Instant,
    workers: Vec<WorkerHandle>,
    events: Arc<EventQueue>,
    notify_rx: UnixStream,
    lines: Mutex<HashMap<u64, LineInfo>>,
    next_id: AtomicU64,
    next_port: Mutex<u16>,
    rng: AtomicU64,
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// What [`Engine::open_line`] returns.
#[derive(Debug, Clone)]
pub struct OpenedLine {
    /// The line's id (used by every other call).
    pub id: u64,
    /// The socket address its RTP arrives at (for the SDP).
    pub local: SocketAddr,
    /// The PCM endpoint, when the line was opened with one.
    pub endpoint: Option<SharedEndpoint>,
}

impl Engine {
    /// Starts the engine's worker threads.
    pub fn new(cfg: EngineConfig) -> Result<Self> {
        if cfg.workers == 0 || cfg.workers > 256 {
            return Err(MediaError::invalid("workers must be 1..=256"));
        }
        if cfg.port_min > cfg.port_max || cfg.port_min < 1024 {
            return Err(MediaError::invalid(
                "RTP port range must satisfy 1024 <= port_min <= port_max",
            ));
        }
        let (notify_tx, notify_rx) =
            UnixStream::pair().map_err(|e| MediaError::io("creating the event socket", &e))?;
        for s in [&notify_tx, &notify_rx] {
            s.set_nonblocking(true)
                .map_err(|e| MediaError::io("configuring the event socket", &e))?;
        }
        let events = Arc::new(EventQueue {
            queue: Mutex::new(VecDeque::new()),
            notify_tx,
            dropped: AtomicU64::new(0),
        });
        let epoch = Instant::now();
        let mut workers = Vec::with_capacity(cfg.workers);
        for index in 0..cfg.workers {
            workers.push(worker::spawn(index, epoch, Arc::clone(&events))?);
        }
        let seed = epoch.elapsed().as_nanos() as u64 ^ u64::from(std::process::id()) << 32;
        Ok(Self {
            next_port: Mutex::new(cfg.port_min + (cfg.port_min % 2)),
            cfg,
            epoch,
            workers,
            events,
            notify_rx,
            lines: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            rng: AtomicU64::new(seed | 1),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The engine's clock: time since it started.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn random_u64(&self) -> u64 {
        // xorshift64*: enough for SSRCs and initial sequence numbers (RFC 3550 asks for
        // unpredictable, not cryptographic, values).
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bind_socket(&self) -> Result<UdpSocket> {
        let span = u32::from(self.cfg.port_max - self.cfg.port_min) / 2 + 1;
        let mut next = lock(&self.next_port);
        for _ in 0..span {
            let port = *next;
            *next = if port.saturating_add(2) > self.cfg.port_max {
                self.cfg.port_min + (self.cfg.port_min % 2)
            } else {
                port + 2
            };
            if let Ok(sock) = UdpSocket::bind(SocketAddr::new(self.cfg.bind_ip, port)) {
                sock.set_nonblocking(true)
                    .map_err(|e| MediaError::io("configuring an RTP socket", &e))?;
                return Ok(sock);
            }
        }
        Err(MediaError::Io {
            context: format!(
                "no free RTP port in {}..={} on {}",
                self.cfg.port_min, self.cfg.port_max, self.cfg.bind_ip
            ),
            kind: std::io::ErrorKind::AddrInUse,
            message: "all ports in use".into(),
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(MediaError::Closed("the engine is closed".into()));
        }
        Ok(())
    }

    /// Whether [`Engine::shutdown`] ran.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Opens a line. With `pcm_endpoint` the line's peer is Python (push/pull 10 ms frames at the
    /// line's PCM rate); otherwise bridge it to another line. `near` places it on the same worker
    /// as that line, which bridging requires.
    pub fn open_line(
        &self,
        cfg: LineConfig,
        pcm_endpoint: bool,
        near: Option<u64>,
    ) -> Result<OpenedLine> {
        self.check_open()?;
        let r = self.random_u64();
        let line = Line::new(
            cfg.clone(),
            r as u32,
            (r >> 32) as u16,
            (r >> 48) as u32 * 65_537,
        )?;
        let worker = match near {
            Some(other) => self.info(other)?.0,
            None => {
                // The least loaded worker.
                (0..self.workers.len())
                    .min_by_key(|&i| self.workers[i].load.lines.load(Ordering::Relaxed))
                    .unwrap_or(0)
            }
        };
        let socket = self.bind_socket()?;
        let local = socket
            .local_addr()
            .map_err(|e| MediaError::io("reading an RTP socket's address", &e))?;
        let endpoint = pcm_endpoint.then(|| {
            let rate = cfg.pcm_rate;
            Arc::new(Mutex::new(PcmEndpoint {
                to_python: PcmRing::with_margin(
                    (rate / 1000 * ENDPOINT_RING_MS) as usize,
                    (rate / 1000 * ENDPOINT_MARGIN_MS) as usize,
                ),
                from_python: PcmRing::new((rate / 1000 * ENDPOINT_RING_MS) as usize),
                frame_samples: (rate / 100) as usize,
            }))
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.lines).insert(
            id,
            LineInfo {
                worker,
                local,
                endpoint: endpoint.clone(),
            },
        );
        self.workers[worker]
            .load
            .lines
            .fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.call(
            worker,
            Command::Open {
                id,
                line: Box::new(line),
                socket,
                endpoint: endpoint.clone(),
            },
        ) {
            lock(&self.lines).remove(&id);
            self.workers[worker]
                .load
                .lines
                .fetch_sub(1, Ordering::Relaxed);
            return Err(e);
        }
        Ok(OpenedLine {
            id,
            local,
            endpoint,
        })
    }

    fn info(&self, id: u64) -> Result<(usize, SocketAddr, Option<SharedEndpoint>)> {
        lock(&self.lines)
            .get(&id)
            .map(|i| (i.worker, i.local, i.endpoint.clone()))
            .ok_or_else(|| MediaError::Closed(format!("line {id} is not open")))
    }

    fn call(&self, worker: usize, cmd: Command) -> Result<Reply> {
        let w = &self.workers[worker];
        let (tx, rx) = mpsc::sync_channel(1);
        w.commands
            .send((cmd, Some(tx)))
            .map_err(|_| MediaError::Closed("the engine's worker has stopped".into()))?;
        w.waker
            .wake()
            .map_err(|e| MediaError::io("waking a media worker", &e))?;
        match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(MediaError::Io {
                context: "a media worker did not answer within 5 s".into(),
                kind: std::io::ErrorKind::TimedOut,
                message: "worker stalled".into(),
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(MediaError::Closed("the engine's worker has stopped".into()))
            }
        }
    }

    fn line_call(&self, id: u64, cmd: Command) -> Result<Reply> {
        self.check_open()?;
        let (worker, _, _) = self.info(id)?;
        self.call(worker, cmd)
    }

    /// Sets the remote RTP address and starts sending.
    pub fn start(&self, id: u64, remote: SocketAddr) -> Result<()> {
        self.line_call(id, Command::Start { id, remote }).map(drop)
    }

    /// Closes a line (its recording, if any, finishes first). Closing twice is an error.
    pub fn close_line(&self, id: u64) -> Result<()> {
        self.line_call(id, Command::Close { id })?;
        if let Some(info) = lock(&self.lines).remove(&id) {
            self.workers[info.worker]
                .load
                .lines
                .fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Bridges two lines on the same worker: each one's received audio is sent by the other.
    /// Lines with the same codec and packet time relay packets without decoding.
    pub fn bridge(&self, a: u64, b: u64) -> Result<()> {
        if a == b {
            return Err(MediaError::invalid("a line cannot be bridged to itself"));
        }
        let (wa, _, ea) = self.info(a)?;
        let (wb, _, eb) = self.info(b)?;
        if wa != wb {
            return Err(MediaError::invalid(
                "bridged lines must share a worker: open the second with near=<first line>",
            ));
        }
        if ea.is_some() || eb.is_some() {
            return Err(MediaError::invalid(
                "a line with a PCM endpoint cannot also be bridged",
            ));
        }
        self.line_call(a, Command::Bridge { a, b }).map(drop)
    }

    /// Ends a bridge (both sides).
    pub fn unbridge(&self, id: u64) -> Result<()> {
        self.line_call(id, Command::Unbridge { id }).map(drop)
    }

    /// Queues a DTMF digit to send by the line's method.
    pub fn send_dtmf(&self, id: u64, digit: char, duration_ms: u32) -> Result<()> {
        self.line_call(
            id,
            Command::SendDtmf {
                id,
                digit,
                duration_ms,
            },
        )
        .map(drop)
    }

    /// Starts recording both directions into a stereo WAV file.
    pub fn start_recording(&self, id: u64, path: PathBuf) -> Result<()> {
        self.line_call(id, Command::StartRecording { id, path })
            .map(drop)
    }

    /// Stops recording; a `RecordingFinished` event follows.
    pub fn stop_recording(&self, id: u64) -> Result<()> {
        self.line_call(id, Command::StopRecording { id }).map(drop)
    }

    /// Stops or resumes sending (hold).
    pub fn set_sending(&self, id: u64, enabled: bool) -> Result<()> {
        self.line_call(id, Command::SetSending { id, enabled })
            .map(drop)
    }

    /// A line's statistics now.
    pub fn line_stats(&self, id: u64) -> Result<LineStats> {
        match self.line_call(id, Command::Stats { id })? {
            Reply::Stats(s) => Ok(*s),
            Reply::Done => Err(MediaError::Closed(format!("line {id} gave no stats"))),
        }
    }

    /// Sends a raw datagram from the line's socket (STUN or DTLS from the control plane).
    pub fn send_datagram(&self, id: u64, to: SocketAddr, data: Vec<u8>) -> Result<()> {
        if data.len() > crate::line::MAX_PACKET_BYTES {
            return Err(MediaError::invalid(format!(
                "datagram of {} bytes exceeds {}",
                data.len(),
                crate::line::MAX_PACKET_BYTES
            )));
        }
        self.line_call(id, Command::SendDatagram { id, to, data })
            .map(drop)
    }

    /// The PCM endpoint of a line opened with one.
    pub fn endpoint(&self, id: u64) -> Result<SharedEndpoint> {
        self.info(id)?
            .2
            .ok_or_else(|| MediaError::invalid(format!("line {id} has no PCM endpoint")))
    }

    /// The descriptor that becomes readable when events are waiting (watch it with
    /// `loop.add_reader`; [`Engine::drain_events`] empties it).
    pub fn notify_fd(&self) -> RawFd {
        self.notify_rx.as_raw_fd()
    }

    /// Takes every waiting event (and clears the descriptor's readiness).
    pub fn drain_events(&self) -> Vec<(u64, LineEvent)> {
        use std::io::Read;
        let mut buf = [0u8; 256];
        let mut rx = &self.notify_rx;
        // Bounded: each read empties up to 256 wake-ups; the writer adds at most one per batch.
        for _ in 0..1024 {
            match rx.read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                _ => break,
            }
        }
        lock(&self.events.queue).drain(..).collect()
    }

    /// Events dropped because Python did not drain the queue in time.
    pub fn dropped_events(&self) -> u64 {
        self.events.dropped.load(Ordering::Relaxed)
    }

    /// Load figures of each worker.
    pub fn worker_loads(&self) -> Vec<Arc<WorkerLoad>> {
        self.workers.iter().map(|w| Arc::clone(&w.load)).collect()
    }

    /// Lines open.
    pub fn line_count(&self) -> usize {
        lock(&self.lines).len()
    }

    /// Stops every worker and closes every line (recordings finish). Idempotent.
    pub fn shutdown(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        for w in &self.workers {
            let _ = w.commands.send((Command::Shutdown, None));
            let _ = w.waker.wake();
        }
        for w in &self.workers {
            if let Some(t) = lock(&w.thread).take() {
                let _ = t.join();
            }
        }
        lock(&self.lines).clear();
    }
}

/// CPU time the calling thread has used, in nanoseconds (0 if the clock is unavailable).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_THREAD_CPUTIME_ID is always supported
    // on Linux; the call writes only into `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl PcmEndpoint {
    /// Pushes one frame of PCM from Python.
    pub fn push(&mut self, pcm: &[i16]) {
        self.from_python.write(pcm);
    }

    /// Pulls one 10 ms frame for Python; silence (and `false`) while nothing is ready.
    pub fn pull(&mut self, out: &mut [i16]) -> bool {
        self.to_python.read_elastic(out)
    }

    /// The counters of both directions: (towards Python, from Python).
    pub fn stats(&self) -> (crate::line::RingStats, crate::line::RingStats) {
        (self.to_python.stats(), self.from_python.stats())
    }
}
