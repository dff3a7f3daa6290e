//! Wakes a worker's driver when a command is queued. The driver sleeps in poll(2) on its sockets
//! between turns; a command arrives on a channel poll cannot watch, so without a wake-up it waited
//! for the next datagram or the end of the sleep (up to [`crate::driver`]'s `MAX_SLEEP`, 5 ms):
//! every engine call of a quiet worker took ~3 ms on average (a signaling session's dozens of
//! calls, and the signaling fuzz target, waited mostly for that). The wake-up is one byte on a
//! local datagram socket pair that the driver polls with its sockets.
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;

/// The sending half, kept with the worker's command channel (shared by every engine handle).
pub(crate) struct Waker(UnixDatagram);

/// The driver's half.
pub(crate) struct Wakeups(UnixDatagram);

/// A connected pair, both non-blocking.
pub(crate) fn pair() -> std::io::Result<(Waker, Wakeups)> {
    let (tx, rx) = UnixDatagram::pair()?;
    tx.set_nonblocking(true)?;
    rx.set_nonblocking(true)?;
    Ok((Waker(tx), Wakeups(rx)))
}

impl Waker {
    /// Call after queueing a command. A full socket buffer means wake-ups are pending already,
    /// and a closed driver reads no command anyway: both are ignored.
    pub fn wake(&self) {
        match self.0.send(&[1]) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::ConnectionRefused | ErrorKind::BrokenPipe) => {}
            Err(e) => tracing::debug!("worker wake-up not sent: {e}"),
        }
    }
}

impl Wakeups {
    /// Forgets the wake-ups received; call before taking the queued commands (a command queued
    /// after that sends a new one).
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        // Wake-ups are one byte: an empty read (none is ever sent) ends the loop too, so that
        // nothing here can spin.
        while matches!(self.0.recv(&mut buf), Ok(n) if n > 0) {}
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_wake_up_is_readable_until_drained_and_never_blocks() {
        let (waker, wakeups) = pair().unwrap();
        let readable = |w: &Wakeups| crate::udp::wait_any(&[w.fd()], std::time::Duration::ZERO);
        assert!(!readable(&wakeups));
        // Far more than the socket buffer holds: the sender never blocks.
        for _ in 0..100_000 {
            waker.wake();
        }
        assert!(readable(&wakeups));
        wakeups.drain();
        assert!(!readable(&wakeups));
        waker.wake();
        assert!(readable(&wakeups));
        drop(wakeups);
        waker.wake(); // the driver is gone: ignored
    }

    #[test]
    fn once_the_engine_is_gone_the_driver_is_not_woken_and_drains_at_once() {
        let (waker, wakeups) = pair().unwrap();
        waker.wake();
        drop(waker);
        let readable = |w: &Wakeups| crate::udp::wait_any(&[w.fd()], std::time::Duration::ZERO);
        assert!(readable(&wakeups), "what was sent before is still there");
        wakeups.drain();
        assert!(!readable(&wakeups), "a closed peer does not make it readable (the driver would spin)");
        wakeups.drain();
    }
}
