//! Batched UDP I/O for the worker loop. On Linux one `recvmmsg` drains up to [`RECV_BATCH`]
//! waiting datagrams and one `sendmmsg` sends a whole flush, instead of a syscall per datagram;
//! other platforms fall back to `recv_from` / `send_to` loops.
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Datagrams taken from the socket per receive call.
const RECV_BATCH: usize = 32;
/// Receive buffer per datagram: WebRTC stays under ~1200 bytes; longer datagrams are truncated.
const MAX_DATAGRAM: usize = 2048;

/// Datagrams received by the last [`RecvBatch::recv`]. Created on the worker thread and kept
/// there (on Linux it holds the `recvmmsg` headers, built once, pointing into itself).
pub(crate) struct RecvBatch {
    inner: Box<sys::Recv>,
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        RecvBatch { inner: sys::Recv::new() }
    }

    /// Replaces the batch with the datagrams waiting on `socket`, without blocking; returns how
    /// many there are.
    pub fn recv(&mut self, socket: &UdpSocket) -> usize {
        self.inner.received.clear();
        self.inner.recv(socket);
        self.inner.received.len()
    }

    /// Forgets the batch (after a fault, so that no datagram of it is handled twice).
    pub fn clear(&mut self) {
        self.inner.received.clear();
    }

    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.inner.received.iter().map(|&(src, i, len)| (src, &self.inner.bufs[i][..len]))
    }
}

/// Datagrams queued during a flush, sent together by [`SendBatch::send`].
#[derive(Default)]
pub(crate) struct SendBatch {
    queued: Vec<(SocketAddr, Vec<u8>)>,
}

impl SendBatch {
    pub fn push(&mut self, destination: SocketAddr, datagram: Vec<u8>) {
        self.queued.push((destination, datagram));
    }

    /// Sends everything queued (in order) and empties the batch. A datagram the kernel refuses
    /// (e.g. ICMP unreachable reported on a later send) is logged and skipped.
    pub fn send(&mut self, socket: &UdpSocket) {
        let mut start = 0;
        while start < self.queued.len() {
            match sys::send(socket, &self.queued[start..]) {
                Ok(0) => break, // nothing taken: give up rather than spin
                Ok(n) => start += n,
                Err(e) => {
                    tracing::debug!("send to {}: {e}", self.queued[start].0);
                    start += 1;
                }
            }
        }
        self.queued.clear();
    }
}

/// Sleeps until one of `fds` is readable or `timeout` has passed; whether one is.
pub(crate) fn wait_any(fds: &[std::os::fd::RawFd], timeout: Duration) -> bool {
    sys::wait_any(fds, timeout)
}

/// What a worker's UDP socket asks the kernel to buffer each way (bytes). The default, ~208 KiB
/// (`net.core.rmem_default`), holds ~90 full-size datagrams: at 68k forwarded packets/s the
/// publishers' packets that came in while the worker sent a keyframe's fan-out overflowed it (the
/// kernel's `RcvbufErrors`: 0.6-1.9% of the packets lost at 20 rooms of (2 + 10), none with
/// 4 MiB). The kernel caps the size at `net.core.rmem_max` / `wmem_max`: `install_full.sh`
/// raises both to this size (its `UDP_BUFFER`, to change with this one).
pub(crate) const SOCKET_BUFFER: usize = 4 << 20;

/// Asks for [`SOCKET_BUFFER`] bytes of receive and send buffer on `socket`; logs what the kernel
/// gave. Failing is not fatal: the default buffers work, they overflow sooner.
pub(crate) fn grow_buffers(socket: &UdpSocket) {
    let s = socket2::SockRef::from(socket);
    if let Err(e) = s.set_recv_buffer_size(SOCKET_BUFFER).and_then(|_| s.set_send_buffer_size(SOCKET_BUFFER)) {
        tracing::warn!("UDP socket buffers: {e}; the default sizes stay");
    }
    tracing::debug!(receive = ?s.recv_buffer_size().ok(), send = ?s.send_buffer_size().ok(), "UDP socket buffers (bytes)");
}

/// Which of `fds` have something to read, or an error or hang-up to report, right now (no
/// waiting): `out[i]` for `fds[i]`. One poll(2) for all of them, where a non-blocking accept(2)
/// that finds no connection still allocates and frees a socket in the kernel.
pub(crate) fn ready_now(fds: &[std::os::fd::RawFd], out: &mut Vec<bool>) {
    sys::ready_now(fds, out)
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;
    use std::mem::{size_of, zeroed, MaybeUninit};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::{MAX_DATAGRAM, RECV_BATCH};

    /// Messages per sendmmsg call (the stack arrays below); longer batches take several calls.
    const SEND_CHUNK: usize = 32;

    pub struct Recv {
        pub bufs: [[u8; MAX_DATAGRAM]; RECV_BATCH],
        /// Source, index in `bufs` and length of each datagram received.
        pub received: Vec<(SocketAddr, usize, usize)>,
        addrs: [libc::sockaddr_storage; RECV_BATCH],
        iovs: [libc::iovec; RECV_BATCH],
        msgs: [libc::mmsghdr; RECV_BATCH],
    }

    impl Recv {
        /// Boxed so the headers can point into the same allocation; it never moves out of the box.
        pub fn new() -> Box<Recv> {
            let mut r = Box::new(Recv {
                bufs: [[0; MAX_DATAGRAM]; RECV_BATCH],
                received: Vec::with_capacity(RECV_BATCH),
                // SAFETY: all-zero is a valid value of these plain C structs.
                addrs: unsafe { zeroed() },
                iovs: unsafe { zeroed() },
                msgs: unsafe { zeroed() },
            });
            let Recv { bufs, addrs, iovs, msgs, .. } = &mut *r;
            for i in 0..RECV_BATCH {
                iovs[i] = libc::iovec { iov_base: bufs[i].as_mut_ptr().cast(), iov_len: MAX_DATAGRAM };
                msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                msgs[i].msg_hdr.msg_iov = &mut iovs[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            r
        }

        pub fn recv(&mut self, socket: &UdpSocket) {
            for msg in &mut self.msgs {
                // The kernel shrinks it to the address it wrote.
                msg.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            }
            // SAFETY: every header points into this boxed struct, which outlives the call.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    self.msgs.as_mut_ptr(),
                    RECV_BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                // ICMP errors from a peer that went away surface here: not fatal.
                if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                    tracing::debug!("recvmmsg: {e}");
                }
                return;
            }
            for (i, (msg, addr)) in self.msgs.iter().zip(&self.addrs).take(n as usize).enumerate() {
                // A datagram from an address family we do not speak is dropped.
                if let Some(src) = socket_addr(addr) {
                    self.received.push((src, i, (msg.msg_len as usize).min(MAX_DATAGRAM)));
                }
            }
        }
    }

    pub fn send(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
        let count = datagrams.len().min(SEND_CHUNK);
        // Only the first `count` entries are written and handed to the kernel.
        let mut addrs = [const { MaybeUninit::<libc::sockaddr_storage>::uninit() }; SEND_CHUNK];
        let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; SEND_CHUNK];
        let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; SEND_CHUNK];
        for (i, (dst, data)) in datagrams[..count].iter().enumerate() {
            let (addr, addr_len) = c_socket_addr(dst);
            let addr = addrs[i].write(addr);
            let iov = iovs[i].write(libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() });
            // SAFETY: all-zero is a valid mmsghdr (no control data, no flags).
            let mut msg: libc::mmsghdr = unsafe { zeroed() };
            msg.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            msg.msg_hdr.msg_namelen = addr_len;
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
            msgs[i].write(msg);
        }
        // SAFETY: the first `count` headers are initialised and point into the arrays above or
        // into `datagrams` (only read by the kernel), all of which outlive the call.
        let n = unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr().cast(), count as libc::c_uint, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    pub fn wait_any(fds: &[std::os::fd::RawFd], timeout: Duration) -> bool {
        // Round up: waking a little late is harmless, waking early spins.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        poll_in(fds, ms).0 > 0
    }

    pub fn ready_now(fds: &[std::os::fd::RawFd], out: &mut Vec<bool>) {
        let (n, polled) = poll_in(fds, 0);
        out.clear();
        out.extend(polled.iter().map(|p| n > 0 && p.revents != 0));
    }

    /// poll(2) for input on `fds` for up to `ms` milliseconds: its result and the polled entries.
    fn poll_in(fds: &[std::os::fd::RawFd], ms: libc::c_int) -> (libc::c_int, Vec<libc::pollfd>) {
        let mut polled: Vec<libc::pollfd> = fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
        // SAFETY: `polled` is a valid array of pollfd of that length for the duration of the call.
        let n = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, ms) };
        (n, polled)
    }

    fn socket_addr(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match addr.ss_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in for AF_INET; storage is large and aligned enough.
                let a = unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for AF_INET6 and sockaddr_in6.
                let a = unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
            }
            _ => None,
        }
    }

    /// `addr` as a C socket address, and its length.
    fn c_socket_addr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        // SAFETY: all-zero is a valid sockaddr_storage (and zeroes sin_zero / padding).
        let mut out: libc::sockaddr_storage = unsafe { zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
                let sin = unsafe { &mut *(&mut out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                // SAFETY: as above, for a sockaddr_in6.
                let sin6 = unsafe { &mut *(&mut out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
                sin6.sin6_scope_id = a.scope_id();
                size_of::<libc::sockaddr_in6>()
            }
        };
        (out, len as libc::socklen_t)
    }
}

/// Portable fallback: one syscall per datagram, the socket switched to non-blocking for draining.
#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;
    use std::net::{SocketAddr, UdpSocket};
    use std::time::Duration;

    use super::{MAX_DATAGRAM, RECV_BATCH};

    pub struct Recv {
        pub bufs: [[u8; MAX_DATAGRAM]; RECV_BATCH],
        /// Source, index in `bufs` and length of each datagram received.
        pub received: Vec<(SocketAddr, usize, usize)>,
    }

    impl Recv {
        pub fn new() -> Box<Recv> {
            Box::new(Recv { bufs: [[0; MAX_DATAGRAM]; RECV_BATCH], received: Vec::with_capacity(RECV_BATCH) })
        }

        pub fn recv(&mut self, socket: &UdpSocket) {
            if socket.set_nonblocking(true).is_err() {
                return;
            }
            for (i, buf) in self.bufs.iter_mut().enumerate() {
                match socket.recv_from(buf) {
                    Ok((n, src)) => self.received.push((src, i, n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!("recv_from: {e}");
                        break;
                    }
                }
            }
            let _ = socket.set_nonblocking(false);
        }
    }

    pub fn send(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
        let (dst, data) = &datagrams[0]; // callers pass a non-empty slice
        socket.send_to(data, dst).map(|_| 1)
    }

    /// Without poll(2) here, a short sleep: what arrived is read on the next turn.
    pub fn wait_any(_fds: &[std::os::fd::RawFd], timeout: Duration) -> bool {
        std::thread::sleep(timeout.min(Duration::from_millis(1)));
        true
    }

    /// Without poll(2) here: every descriptor is tried.
    pub fn ready_now(fds: &[std::os::fd::RawFd], out: &mut Vec<bool>) {
        out.clear();
        out.resize(fds.len(), true);
    }
}
