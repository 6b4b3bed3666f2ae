//! One media worker thread: its lines, their sockets, one 10 ms tick for all of them.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use super::batch::{RecvBatch, BATCH};
use super::{
    lock, thread_cpu_ns, Command, EventQueue, Reply, ReplyTx, SharedEndpoint, WorkerHandle,
    WorkerLoad,
};
use crate::error::{MediaError, Result};
use crate::line::{Line, LineEvent};

/// The worker's tick: every line's packet time is a multiple of it.
const TICK: Duration = Duration::from_millis(10);
const WAKER: Token = Token(usize::MAX);
/// Batches read from one socket before the worker turns to the others (a flood on one line
/// must not starve the rest); the remainder is read on the next pass.
const MAX_BATCHES_PER_WAKE: usize = 4;

enum Peer {
    None,
    Endpoint(SharedEndpoint),
    Line(u64),
}

struct Slot {
    line: Line,
    socket: UdpSocket,
    peer: Peer,
}

struct Worker {
    poll: Poll,
    epoch: Instant,
    slots: HashMap<u64, Slot>,
    commands: mpsc::Receiver<(Command, Option<ReplyTx>)>,
    events: Arc<EventQueue>,
    load: Arc<WorkerLoad>,
    batch: Vec<(u64, LineEvent)>,
    /// Wall-clock time (since the Unix epoch) at `epoch`, for RTCP.
    wall_at_epoch: Duration,
    /// Sockets that still had datagrams when their read budget ran out.
    backlog: Vec<u64>,
    scratch: Vec<i16>,
    /// Line ids of the current tick (kept to reuse its allocation).
    ids: Vec<u64>,
    /// Sockets readable in the current pass (kept to reuse its allocation).
    ready: Vec<u64>,
    rx: RecvBatch,
}

pub(super) fn spawn(index: usize, epoch: Instant, events: Arc<EventQueue>) -> Result<WorkerHandle> {
    let poll = Poll::new().map_err(|e| MediaError::io("creating a media worker's poller", &e))?;
    let waker = Arc::new(
        Waker::new(poll.registry(), WAKER)
            .map_err(|e| MediaError::io("creating a media worker's waker", &e))?,
    );
    let (tx, rx) = mpsc::channel();
    let load = Arc::new(WorkerLoad::default());
    let mut worker = Worker {
        poll,
        epoch,
        slots: HashMap::new(),
        commands: rx,
        events,
        load: Arc::clone(&load),
        batch: Vec::new(),
        wall_at_epoch: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(epoch.elapsed()),
        backlog: Vec::new(),
        scratch: Vec::new(),
        ids: Vec::new(),
        ready: Vec::new(),
        rx: RecvBatch::new(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("tgsip-media-{index}"))
        .spawn(move || worker.run())
        .map_err(|e| MediaError::io("starting a media worker", &e))?;
    Ok(WorkerHandle {
        commands: tx,
        waker,
        thread: std::sync::Mutex::new(Some(thread)),
        load,
    })
}

impl Worker {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = self.epoch.elapsed() + TICK;
        loop {
            let now = self.epoch.elapsed();
            let timeout = if self.backlog.is_empty() {
                next_tick.saturating_sub(now)
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != ErrorKind::Interrupted {
                    // Nothing sensible is left to do without a poller; report and stop.
                    self.batch.push((
                        0,
                        LineEvent::Error(format!("media worker poll failed: {e}")),
                    ));
                    self.events.push_all(&mut self.batch);
                    return;
                }
            }
            let mut ready = std::mem::take(&mut self.ready);
            ready.clear();
            ready.append(&mut self.backlog);
            for ev in events.iter() {
                if ev.token() == WAKER {
                    if !self.handle_commands() {
                        self.close_all();
                        return;
                    }
                } else {
                    ready.push(ev.token().0 as u64);
                }
            }
            for &id in &ready {
                self.read_socket(id);
            }
            self.ready = ready;
            let now = self.epoch.elapsed();
            if now >= next_tick {
                let started = Instant::now();
                if now >= next_tick + TICK {
                    self.load.late_ticks.fetch_add(1, Ordering::Relaxed);
                }
                self.tick(now);
                // Stay on the 10 ms grid; after a long stall, restart it rather than bursting.
                next_tick += TICK;
                if next_tick + TICK * 5 < now {
                    next_tick = now + TICK;
                }
                let spent = started.elapsed().as_nanos() as u64;
                self.load.max_tick_ns.fetch_max(spent, Ordering::Relaxed);
                self.load.ticks.fetch_add(1, Ordering::Relaxed);
                self.load.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
            }
        }
    }

    fn read_socket(&mut self, id: u64) {
        let now = self.epoch.elapsed();
        for round in 0..=MAX_BATCHES_PER_WAKE {
            let Some(slot) = self.slots.get_mut(&id) else {
                return;
            };
            if round == MAX_BATCHES_PER_WAKE {
                self.backlog.push(id);
                return;
            }
            let n = match self.rx.recv(slot.socket.as_raw_fd()) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP errors surface here on some kernels; the socket stays usable.
                Err(_) => continue,
            };
            let peer = match slot.peer {
                Peer::Line(p) => Some(p),
                _ => None,
            };
            for i in 0..n {
                let Some((Some(data), src)) = self.rx.get(i) else {
                    continue; // larger than any packet we accept, or an unknown address family
                };
                let Some(slot) = self.slots.get_mut(&id) else {
                    return;
                };
                let relay = slot.line.handle_rtp(now, src, data);
                if let (Some(relay), Some(peer)) = (relay, peer) {
                    if let Some(other) = self.slots.get_mut(&peer) {
                        let sock = &other.socket;
                        other
                            .line
                            .send_relayed(&relay, &mut |addr, bytes| send(sock, addr, bytes));
                    }
                }
            }
            if n < BATCH {
                // Drained: edge-triggered readiness reports anything that arrives later.
                return;
            }
        }
    }

    fn tick(&mut self, now: Duration) {
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        ids.extend(self.slots.keys().copied());
        for id in &ids {
            let Some(slot) = self.slots.get_mut(id) else {
                continue;
            };
            // The peer's audio first, so the line sends what arrived this tick.
            if let Peer::Endpoint(ep) = &slot.peer {
                let mut ep = lock(ep);
                let n = ep.from_python.len();
                self.scratch.resize(n, 0);
                ep.from_python.read(&mut self.scratch[..n]);
                slot.line.push_pcm(&self.scratch[..n]);
            }
            let sock = &slot.socket;
            slot.line
                .tick(now, &mut |addr, bytes| send(sock, addr, bytes));
            let n = slot.line.to_peer.len();
            self.scratch.resize(n, 0);
            slot.line.to_peer.read(&mut self.scratch[..n]);
            match &slot.peer {
                Peer::Endpoint(ep) => lock(ep).to_python.write(&self.scratch[..n]),
                Peer::Line(other) => {
                    let other = *other;
                    if let Some(o) = self.slots.get_mut(&other) {
                        o.line.push_pcm(&self.scratch[..n]);
                    }
                }
                Peer::None => {}
            }
            if let Some(slot) = self.slots.get_mut(id) {
                while let Some(ev) = slot.line.poll_event() {
                    self.batch.push((*id, ev));
                }
            }
        }
        self.ids = ids;
        self.events.push_all(&mut self.batch);
    }

    /// Runs queued commands; returns false on shutdown.
    fn handle_commands(&mut self) -> bool {
        while let Ok((cmd, reply)) = self.commands.try_recv() {
            if matches!(cmd, Command::Shutdown) {
                return false;
            }
            let result = self.apply(cmd);
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
        true
    }

    fn slot(&mut self, id: u64) -> Result<&mut Slot> {
        self.slots
            .get_mut(&id)
            .ok_or_else(|| MediaError::Closed(format!("line {id} is not open")))
    }

    fn apply(&mut self, cmd: Command) -> Result<Reply> {
        let now = self.epoch.elapsed();
        match cmd {
            Command::Open {
                id,
                line,
                socket,
                endpoint,
            } => {
                let mut line = line;
                line.set_wall_clock(self.wall_at_epoch);
                let mut socket = UdpSocket::from_std(socket);
                self.poll
                    .registry()
                    .register(&mut socket, Token(id as usize), Interest::READABLE)
                    .map_err(|e| MediaError::io("registering an RTP socket", &e))?;
                let peer = endpoint.map_or(Peer::None, Peer::Endpoint);
                self.slots.insert(
                    id,
                    Slot {
                        line: *line,
                        socket,
                        peer,
                    },
                );
            }
            Command::Start { id, remote } => self.slot(id)?.line.start(now, remote),
            Command::Close { id } => {
                self.unbridge(id);
                let mut slot = self
                    .slots
                    .remove(&id)
                    .ok_or_else(|| MediaError::Closed(format!("line {id} is not open")))?;
                slot.line.stop_recording();
                let sock = &slot.socket;
                slot.line.finish(&mut |addr, bytes| send(sock, addr, bytes));
                while let Some(ev) = slot.line.poll_event() {
                    self.batch.push((id, ev));
                }
                let _ = self.poll.registry().deregister(&mut slot.socket);
                self.events.push_all(&mut self.batch);
            }
            Command::Bridge { a, b } => {
                let closed = |id: u64| MediaError::Closed(format!("line {id} is not open"));
                let relay = {
                    let la = &self.slots.get(&a).ok_or_else(|| closed(a))?.line;
                    let lb = &self.slots.get(&b).ok_or_else(|| closed(b))?.line;
                    la.can_relay_with(lb)
                };
                for (x, y) in [(a, b), (b, a)] {
                    if let Some(s) = self.slots.get(&x) {
                        if let Peer::Line(p) = s.peer {
                            if p != y {
                                return Err(MediaError::invalid(format!(
                                    "line {x} is already bridged to line {p}"
                                )));
                            }
                        }
                    }
                }
                for (x, y) in [(a, b), (b, a)] {
                    let s = self.slot(x)?;
                    s.peer = Peer::Line(y);
                    s.line.set_relay(relay);
                }
            }
            Command::Unbridge { id } => {
                self.slot(id)?;
                self.unbridge(id);
            }
            Command::SendDtmf {
                id,
                digit,
                duration_ms,
            } => self.slot(id)?.line.send_dtmf(digit, duration_ms)?,
            Command::StartRecording { id, path } => {
                let slot = self.slot(id)?;
                if let Peer::Line(other) = slot.peer {
                    // Recording needs decoded audio: leave relay mode on both sides.
                    slot.line.set_relay(false);
                    slot.line.start_recording(&path)?;
                    if let Some(o) = self.slots.get_mut(&other) {
                        o.line.set_relay(false);
                    }
                } else {
                    slot.line.start_recording(&path)?;
                }
            }
            Command::StopRecording { id } => {
                let slot = self
                    .slots
                    .get_mut(&id)
                    .ok_or_else(|| MediaError::Closed(format!("line {id} is not open")))?;
                if !slot.line.stop_recording() {
                    return Err(MediaError::invalid(format!("line {id} is not recording")));
                }
                while let Some(ev) = slot.line.poll_event() {
                    self.batch.push((id, ev));
                }
                self.events.push_all(&mut self.batch);
            }
            Command::SetSending { id, enabled } => self.slot(id)?.line.set_sending(enabled),
            Command::Stats { id } => {
                return Ok(Reply::Stats(Box::new(self.slot(id)?.line.stats())));
            }
            Command::SendDatagram { id, to, data } => {
                let slot = self.slot(id)?;
                slot.socket
                    .send_to(&data, to)
                    .map_err(|e| MediaError::io("sending a datagram", &e))?;
            }
            Command::Shutdown => {}
        }
        Ok(Reply::Done)
    }

    fn unbridge(&mut self, id: u64) {
        let other = match self.slots.get(&id).map(|s| &s.peer) {
            Some(Peer::Line(o)) => *o,
            _ => return,
        };
        for x in [id, other] {
            if let Some(s) = self.slots.get_mut(&x) {
                s.peer = Peer::None;
                s.line.set_relay(false);
            }
        }
    }

    fn close_all(&mut self) {
        for (id, mut slot) in self.slots.drain() {
            slot.line.stop_recording();
            while let Some(ev) = slot.line.poll_event() {
                self.batch.push((id, ev));
            }
        }
        self.events.push_all(&mut self.batch);
    }
}

fn send(sock: &UdpSocket, addr: SocketAddr, bytes: &[u8]) {
    // UDP: a full send buffer or an unreachable peer loses this packet only; RTP tolerates it
    // and the receiver's statistics report it.
    let _ = sock.send_to(bytes, addr);
}
