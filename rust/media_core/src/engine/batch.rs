//! Batched UDP receive with `recvmmsg(2)`: one system call takes every datagram waiting on a
//! socket (up to [`BATCH`]). Besides saving calls when several packets wait, it tells the worker
//! when the socket is drained without the extra call that returns `EAGAIN`: edge-triggered
//! readiness fires again for any datagram that arrives later.
//!
//! This is the only unsafe code in the engine; every block says why it is sound.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams taken per call at most.
pub(super) const BATCH: usize = 16;

/// Buffers for one `recvmmsg` call, allocated once per worker.
pub(super) struct RecvBatch {
    bufs: Vec<[u8; SLOT_BYTES]>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    received: usize,
}

/// Bytes per slot: one more than the largest packet accepted, so truncation is visible.
const SLOT_BYTES: usize = crate::line::MAX_PACKET_BYTES + 1;

// SAFETY: the raw pointers inside `iovecs` and `headers` point only into this struct's own heap
// buffers (`bufs`, `addrs`), which move with it; nothing is shared with another thread.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub(super) fn new() -> Self {
        // SAFETY: sockaddr_storage and mmsghdr are plain C structs for which all-zero bytes are a
        // valid value (null pointers, zero lengths).
        let zero_addr: libc::sockaddr_storage = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: as above.
        let zero_hdr: libc::mmsghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut b = Self {
            bufs: vec![[0u8; SLOT_BYTES]; BATCH],
            addrs: vec![zero_addr; BATCH],
            iovecs: Vec::with_capacity(BATCH),
            headers: vec![zero_hdr; BATCH],
            received: 0,
        };
        for i in 0..BATCH {
            b.iovecs.push(libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr().cast(),
                iov_len: SLOT_BYTES,
            });
        }
        b
    }

    /// Receives what is waiting on `fd` (non-blocking); returns how many datagrams arrived.
    /// `Ok(0)` never happens: an empty socket is `WouldBlock`.
    pub(super) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..BATCH {
            let h = &mut self.headers[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovecs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.headers[i].msg_len = 0;
        }
        // SAFETY: `headers` holds BATCH initialised mmsghdr whose name, iovec and buffer pointers
        // point into `addrs`, `iovecs` and `bufs`, all alive and unaliased for the call's
        // duration; the kernel writes at most msg_namelen / iov_len bytes into each. A null
        // timeout is allowed.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.received = 0;
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        Ok(self.received)
    }

    /// Datagram `i` of the last call: its bytes (or `None` when it was larger than any packet
    /// we accept) and its source.
    pub(super) fn get(&self, i: usize) -> Option<(Option<&[u8]>, SocketAddr)> {
        if i >= self.received {
            return None;
        }
        let h = &self.headers[i];
        let len = h.msg_len as usize;
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len >= SLOT_BYTES;
        let data = (!truncated).then(|| &self.bufs[i][..len]);
        Some((data, sockaddr_to_std(&self.addrs[i])?))
    }
}

fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let a: &libc::sockaddr_in = unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which it is large and
            // aligned enough for.
            let a: &libc::sockaddr_in6 = unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
