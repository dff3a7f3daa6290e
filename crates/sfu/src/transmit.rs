//! What the worker gives its driver to send: datagrams with their destination, in order.
use std::collections::VecDeque;
use std::net::SocketAddr;

pub use str0m::net::Protocol;

/// One datagram to send from the worker's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// UDP, or TCP for a client connected over ICE-TCP (RFC 6544).
    pub proto: Protocol,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// The datagrams a worker produced and not yet handed out, with running totals.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Transmit>,
    /// Datagrams and bytes ever queued.
    pub packets: u64,
    pub bytes: u64,
}

impl Outbox {
    /// Queues a UDP datagram.
    pub fn push(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        self.push_via(Protocol::Udp, destination, contents);
    }

    pub fn push_via(&mut self, proto: Protocol, destination: SocketAddr, contents: Vec<u8>) {
        self.packets += 1;
        self.bytes += contents.len() as u64;
        self.queue.push_back(Transmit { proto, destination, contents });
    }

    pub fn pop(&mut self) -> Option<Transmit> {
        self.queue.pop_front()
    }
}

#[cfg(feature = "fuzzing")]
impl Outbox {
    /// Datagrams queued and not yet handed out.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}
