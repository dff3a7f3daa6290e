//! ICE over TCP for the driver (RFC 6544, passive candidates): a listener on the worker's port
//! and its connections, each packet framed by a 2-byte length (RFC 4571). Frames go to the
//! worker as they would from UDP; what the worker sends a TCP client is framed back. A client
//! whose UDP is blocked still gets through.
//!
//! Limits: frames up to [`MAX_FRAME`] bytes (a longer one closes the connection: WebRTC packets
//! stay under ~1,500), [`MAX_CONNECTIONS`] connections per worker and [`MAX_PER_IP`] per client
//! address, [`MAX_BACKLOG`] bytes waiting to be written per connection (beyond, packets are
//! dropped, as UDP would), and a connection that sends nothing for [`IDLE`] is closed.
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

pub(crate) const MAX_FRAME: usize = 4096;
pub(crate) const MAX_CONNECTIONS: usize = 1024;
pub(crate) const MAX_PER_IP: usize = 32;
pub(crate) const MAX_BACKLOG: usize = 1 << 20;
pub(crate) const IDLE: Duration = Duration::from_secs(30);

struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet a whole frame.
    read: Vec<u8>,
    /// Framed bytes not yet written.
    write: Vec<u8>,
    last_heard: Instant,
}

pub(crate) struct TcpMux {
    listener: TcpListener,
    conns: HashMap<SocketAddr, Conn>,
    /// Frames read by the last [`TcpMux::receive`] (kept for its allocation).
    frames: Vec<(SocketAddr, Vec<u8>)>,
    /// The listener's and connections' descriptors and which are ready (kept for their
    /// allocations).
    fds: Vec<RawFd>,
    ready: Vec<bool>,
}

impl TcpMux {
    /// Listens on `listener` (made non-blocking here).
    pub fn new(listener: TcpListener) -> io::Result<TcpMux> {
        listener.set_nonblocking(true)?;
        Ok(TcpMux { listener, conns: HashMap::new(), frames: Vec::new(), fds: Vec::new(), ready: Vec::new() })
    }

    /// The descriptors to wait on: the listener and every connection.
    pub fn fds(&self, out: &mut Vec<RawFd>) {
        out.push(self.listener.as_raw_fd());
        out.extend(self.conns.values().map(|c| c.stream.as_raw_fd()));
    }

    /// Accepts waiting connections, reads what arrived and returns the whole frames, with the
    /// connection they came on. Connections that closed, broke a limit or idled are dropped.
    /// Only the descriptors poll(2) finds ready are read (the driver runs this every turn).
    pub fn receive(&mut self, now: Instant) -> &[(SocketAddr, Vec<u8>)] {
        self.frames.clear();
        let mut fds = std::mem::take(&mut self.fds);
        fds.clear();
        self.fds(&mut fds);
        crate::udp::ready_now(&fds, &mut self.ready);
        self.fds = fds;
        let mut closed = Vec::new();
        let mut buf = [0u8; 8192];
        // Same order as `fds` (the map is not changed in between); the listener is first.
        for ((addr, c), ready) in self.conns.iter_mut().zip(self.ready.iter().skip(1)) {
            let open = !*ready || read_frames(c, *addr, now, &mut buf, &mut self.frames);
            if !open || now.saturating_duration_since(c.last_heard) > IDLE {
                closed.push(*addr);
            }
        }
        for addr in closed {
            tracing::debug!(%addr, "ICE-TCP connection closed");
            self.conns.remove(&addr);
        }
        if self.ready.first().copied().unwrap_or(true) {
            self.accept(now);
        }
        &self.frames
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let (stream, addr) = match self.listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("ICE-TCP accept: {e}");
                    return;
                }
            };
            if self.conns.len() >= MAX_CONNECTIONS || self.connections_from(addr.ip()) >= MAX_PER_IP {
                tracing::debug!(%addr, "ICE-TCP connection refused: too many");
                continue; // dropped: the client's candidate fails
            }
            if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
                continue;
            }
            self.conns.insert(addr, Conn { stream, read: Vec::new(), write: Vec::new(), last_heard: now });
        }
    }

    fn connections_from(&self, ip: IpAddr) -> usize {
        self.conns.keys().filter(|a| a.ip() == ip).count()
    }

    /// Frames `packet` to the connection from `to` and writes what the socket takes now; the
    /// rest waits for [`TcpMux::flush`]. A packet for no connection (closed) is dropped.
    pub fn send(&mut self, to: SocketAddr, packet: &[u8]) {
        let Some(c) = self.conns.get_mut(&to) else { return };
        let Ok(len) = u16::try_from(packet.len()) else { return };
        if c.write.len() + 2 + packet.len() > MAX_BACKLOG {
            return; // the client reads too slowly: drop, as a full UDP path would
        }
        c.write.extend_from_slice(&len.to_be_bytes());
        c.write.extend_from_slice(packet);
    }

    /// Writes what waits on each connection, as far as the sockets take it.
    pub fn flush(&mut self) {
        let mut broken = Vec::new();
        for (addr, c) in &mut self.conns {
            while !c.write.is_empty() {
                match c.stream.write(&c.write) {
                    Ok(0) => break,
                    Ok(n) => {
                        c.write.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        broken.push(*addr);
                        break;
                    }
                }
            }
        }
        for addr in broken {
            self.conns.remove(&addr);
        }
    }

    #[cfg(test)]
    pub fn connections(&self) -> usize {
        self.conns.len()
    }
}

/// Reads what `c` has and appends its whole frames to `frames`; false if the connection is
/// closed or broke the frame limit.
fn read_frames(c: &mut Conn, addr: SocketAddr, now: Instant, buf: &mut [u8], frames: &mut Vec<(SocketAddr, Vec<u8>)>) -> bool {
    loop {
        match c.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                c.read.extend_from_slice(&buf[..n]);
                c.last_heard = now;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
        if c.read.len() > MAX_FRAME + 2 + buf.len() {
            break; // parse what we have before reading more
        }
    }
    take_frames(&mut c.read, |frame| frames.push((addr, frame.to_vec())))
}

/// Takes the whole RFC 4571 frames (a 16-bit big-endian length, then that many bytes) from the
/// front of `read`, handing each to `frame` in order and leaving the bytes of an incomplete one.
/// False, with `read` unchanged from the first bad frame on, when a frame is empty or longer than
/// [`MAX_FRAME`] (the connection is then closed: no ICE, DTLS or SRTP packet is either).
pub(crate) fn take_frames(read: &mut Vec<u8>, mut frame: impl FnMut(&[u8])) -> bool {
    let mut at = 0;
    let mut ok = true;
    while read.len() - at >= 2 {
        let len = usize::from(u16::from_be_bytes([read[at], read[at + 1]]));
        if len == 0 || len > MAX_FRAME {
            ok = false;
            break;
        }
        if read.len() - at - 2 < len {
            break;
        }
        frame(&read[at + 2..at + 2 + len]);
        at += 2 + len;
    }
    read.drain(..at);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mux() -> (TcpMux, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (TcpMux::new(listener).unwrap(), addr)
    }

    /// Receives until `n` frames came in all (or 2 s passed).
    fn receive_n(m: &mut TcpMux, n: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(2);
        while got.len() < n && Instant::now() < end {
            got.extend(m.receive(Instant::now()).iter().cloned());
            std::thread::sleep(Duration::from_millis(2));
        }
        got
    }

    #[test]
    fn frames_split_anywhere_arrive_whole_and_replies_are_framed() {
        let (mut m, addr) = mux();
        let mut client = TcpStream::connect(addr).unwrap();
        let me = client.local_addr().unwrap();
        let mut wire = Vec::new();
        for p in [&b"first"[..], &[7u8; 1200][..], b"x"] {
            wire.extend_from_slice(&(p.len() as u16).to_be_bytes());
            wire.extend_from_slice(p);
        }
        // Byte by byte at the start, then the rest: framing does not depend on reads.
        for b in &wire[..4] {
            client.write_all(&[*b]).unwrap();
            m.receive(Instant::now());
        }
        client.write_all(&wire[4..]).unwrap();
        let mut got = receive_n(&mut m, 3);
        got.extend(receive_n(&mut m, 0));
        assert_eq!(got.iter().map(|(a, _)| *a).collect::<Vec<_>>(), vec![me; 3]);
        assert_eq!(got.iter().map(|(_, f)| f.len()).collect::<Vec<_>>(), vec![5, 1200, 1]);
        m.send(me, b"reply");
        m.flush();
        let mut reply = [0u8; 7];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"\x00\x05reply");
    }

    #[test]
    fn a_frame_too_long_or_empty_closes_the_connection() {
        for header in [((MAX_FRAME + 1) as u16).to_be_bytes(), [0, 0]] {
            let (mut m, addr) = mux();
            let mut client = TcpStream::connect(addr).unwrap();
            client.write_all(&header).unwrap();
            let end = Instant::now() + Duration::from_secs(2);
            let mut seen = false;
            while Instant::now() < end {
                m.receive(Instant::now());
                seen |= m.connections() == 1;
                if seen && m.connections() == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            assert_eq!(m.connections(), 0, "closed after a header of {header:?}");
            let mut buf = [0u8; 1];
            assert_eq!(client.read(&mut buf).unwrap_or(0), 0, "the server hung up");
        }
    }

    #[test]
    fn idle_connections_are_closed_and_caps_hold() {
        let (mut m, addr) = mux();
        let clients: Vec<TcpStream> = (0..MAX_PER_IP + 3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let end = Instant::now() + Duration::from_secs(2);
        while m.connections() < MAX_PER_IP && Instant::now() < end {
            m.receive(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(20));
        m.receive(Instant::now());
        assert_eq!(m.connections(), MAX_PER_IP, "at most {MAX_PER_IP} from one address");
        m.receive(Instant::now() + IDLE + Duration::from_secs(1));
        assert_eq!(m.connections(), 0, "silent connections are closed after {IDLE:?}");
        drop(clients);
    }
}
