//! The worker: every router, transport, producer and consumer of one UDP port, as a sans-IO
//! state machine (after str0m's `Rtc`). It owns no socket and reads no clock:
//!
//! - input: [`Worker::handle_datagram`] (a datagram that arrived, with the time),
//!   [`Worker::handle_command`] or the typed operations ([`Worker::produce`], ...), and
//!   [`Worker::handle_timeout`] (time moved on);
//! - output: [`Worker::poll_transmit`] (datagrams to send), [`Worker::poll_event`] (what the
//!   engine decided on its own), [`Worker::poll_timeout`] (when to call `handle_timeout` next).
//!
//! The driver ([`crate::driver`]) runs one on a thread with a real socket and clock; tests run
//! it in memory on a simulated clock. Objects are addressed by [`Key`] inside the worker; public
//! ids are resolved once per operation. Packet path: docs/architecture.md.
mod allocate;
mod command;
mod forward;
#[cfg(feature = "fuzzing")]
mod fuzzing;
mod media;
mod ops;
mod stats;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::Event;

pub use command::Command;
#[cfg(feature = "fuzzing")]
pub use fuzzing::Footprint;
#[cfg(feature = "fuzzing")]
pub(crate) use media::binding_request_ufrags;

use crate::consumer::Consumer;
use crate::ids::{ConsumerId, FastMap, Key, ProducerId, RouterId, TransportId};
use crate::producer::Producer;
use crate::router::Router;
use crate::rtp_parameters::RtpCapabilities;
use crate::transmit::{Outbox, Protocol, Transmit};
use crate::transport::cert::LocalCert;
use crate::transport::Transport;
use crate::{CloseReason, EngineEvent, EngineStats};

/// How often transports are checked for silence (and plain transports kept alive).
const LIVENESS_EVERY: Duration = Duration::from_millis(500);

/// What a worker is given when created.
#[derive(Clone)]
pub struct WorkerConfig {
    /// The worker's index; part of every id it mints.
    pub index: usize,
    /// The announced address: the ICE candidate, and the local address of every datagram.
    pub addr: SocketAddr,
    /// The router capabilities (from [`crate::ortc::router_rtp_capabilities`]).
    pub caps: Arc<RtpCapabilities>,
    /// How long a video consumer keeps what it sent, to answer NACKs.
    pub nack_history: Duration,
    /// A WebRTC transport heard once and then silent this long is closed.
    pub idle_timeout: Duration,
    /// Offer a passive ICE-TCP candidate on the same port (the driver must listen on it).
    pub tcp: bool,
    /// Estimate each receive transport's downlink and share it among its consumers' layers
    /// (see [`crate::allocator`]).
    pub downlink_bwe: bool,
}

pub struct Worker {
    config: WorkerConfig,
    /// The last key minted; keys are never reused, so a stale key finds nothing.
    last_key: Key,
    routers: FastMap<Key, Router>,
    transports: FastMap<Key, Transport>,
    producers: FastMap<Key, Producer>,
    consumers: FastMap<Key, Consumer>,
    by_ufrag: HashMap<String, Key>,
    /// Only filled from STUN requests carrying one of our ufrags, so peers cannot flood it.
    by_addr: FastMap<(SocketAddr, Protocol), Key>,
    /// The DTLS certificate of its WebRTC transports.
    cert: LocalCert,
    /// Traffic counters (objects are counted when asked, see [`Worker::stats`]).
    stats: EngineStats,
    /// The time of the last input.
    now: Instant,
    /// Transports to poll at the next flush (duplicates allowed).
    dirty: Vec<Key>,
    /// The transports of the flush round under way (kept for its allocation).
    polling: Vec<Key>,
    /// Transports found dead while polled or silent, closed after the flush.
    dead: Vec<(Key, CloseReason)>,
    /// When transports are next checked for silence.
    next_liveness: Instant,
    /// When the downlinks are next shared out ([`allocate::ALLOCATE_EVERY`]).
    next_allocation: Instant,
    /// When the earliest deferred keyframe request is due (see `producer::KEYFRAME_THROTTLE`).
    next_keyframe_due: Option<Instant>,
    /// No transport's str0m timeout is earlier than this; a scan then finds what is due.
    next_due: Instant,
    out: Outbox,
    events: VecDeque<EngineEvent>,
    /// Events of one Rtc poll (kept for its allocation).
    rtc_events: Vec<Event>,
    /// Whether the last poll gave out an RTP packet (the datagram fed before it authenticated).
    rtp_delivered: bool,
    /// The transport being handled: the one closed if handling it panics.
    current: Option<Key>,
    /// Set by an injected permanent fault: every input panics.
    #[cfg(any(test, feature = "fault-injection"))]
    fail_always: bool,
}

/// The key of the object a public id names, if it lives in `map`: the key encoded in the id must
/// hold an object with that very id (a forged id with a known counter is refused).
fn resolve<V>(map: &FastMap<Key, V>, key: Option<Key>, has_id: impl Fn(&V) -> bool) -> Option<Key> {
    key.filter(|k| map.get(k).is_some_and(has_id))
}

impl Worker {
    pub fn new(config: WorkerConfig, now: Instant) -> Worker {
        Worker {
            config,
            last_key: Key::default(),
            routers: FastMap::default(),
            transports: FastMap::default(),
            producers: FastMap::default(),
            consumers: FastMap::default(),
            by_ufrag: HashMap::new(),
            by_addr: FastMap::default(),
            cert: LocalCert::default(),
            stats: EngineStats::default(),
            now,
            dirty: Vec::new(),
            polling: Vec::new(),
            dead: Vec::new(),
            next_liveness: now + LIVENESS_EVERY,
            next_allocation: now + allocate::ALLOCATE_EVERY,
            next_keyframe_due: None,
            next_due: now,
            out: Outbox::default(),
            events: VecDeque::new(),
            rtc_events: Vec::new(),
            rtp_delivered: false,
            current: None,
            #[cfg(any(test, feature = "fault-injection"))]
            fail_always: false,
        }
    }

    pub fn index(&self) -> usize {
        self.config.index
    }

    /// The router capabilities every router of this worker has.
    pub fn rtp_capabilities(&self) -> &RtpCapabilities {
        &self.config.caps
    }

    /// The announced address (what clients send to).
    pub fn addr(&self) -> SocketAddr {
        self.config.addr
    }

    /// A UDP datagram arrived from `from` at `now`. What it causes is taken with the polls.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.handle_receive(now, Protocol::Udp, from, data);
    }

    /// A datagram (UDP) or an ICE-TCP frame (RFC 4571, without its length) arrived from `from`.
    pub fn handle_receive(&mut self, now: Instant, proto: Protocol, from: SocketAddr, data: &[u8]) {
        self.advance(now);
        self.on_datagram(now, proto, from, data);
        self.current = None;
    }

    /// Time moved to `now`: runs the str0m timeouts due, checks liveness, flushes, and closes
    /// transports found dead.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        self.fire_timeouts(now);
        self.find_silent(now);
        self.allocate_downlinks(now);
        self.send_deferred_keyframe_requests(now);
        self.flush(now);
        self.reap_dead();
        self.current = None;
    }

    /// The next datagram to send, in order. Polls the transports that have something to say
    /// first (after datagrams and operations).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.dirty.is_empty() {
            self.flush(self.now);
            self.reap_dead();
            self.current = None;
        }
        self.out.pop()
    }

    /// The next thing the engine decided on its own (a transport closed, ...).
    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        if !self.dead.is_empty() {
            self.reap_dead();
            self.current = None;
        }
        self.events.pop_front()
    }

    /// When [`Worker::handle_timeout`] should be called next (it may be called earlier).
    pub fn poll_timeout(&self) -> Instant {
        let due = if self.dirty.is_empty() { self.next_due } else { self.now };
        let next = due.min(self.next_liveness).min(self.next_keyframe_due.unwrap_or(due));
        if self.config.downlink_bwe {
            next.min(self.next_allocation)
        } else {
            next
        }
    }

    /// Objects alive and traffic so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            workers: 1,
            routers: self.routers.len(),
            transports: self.transports.len(),
            producers: self.producers.len(),
            consumers: self.consumers.len(),
            packets_out: self.out.packets,
            bytes_out: self.out.bytes,
            producers_silent: self.silent_producers(self.now),
            ..self.stats.clone()
        }
    }

    /// After a panic while handling an input: the work in flight is dropped and the transport
    /// being handled (with its producers, consumers, and their consumers) is closed and
    /// reported with [`CloseReason::Fault`]. Everything else on the worker goes on.
    pub fn recover(&mut self, why: &str) {
        let culprit = self.current.take();
        let id = culprit.and_then(|k| self.transports.get(&k)).map(|t| t.id().to_string());
        tracing::error!(worker = self.config.index, transport = ?id, "worker caught a fault: {why}; closing the transport involved");
        self.dirty.clear();
        self.polling.clear();
        self.rtc_events.clear();
        if let Some(key) = culprit {
            if self.transports.get(&key).is_some_and(|t| t.plain().is_some()) {
                self.close_transport_key(key);
            } else {
                self.dead.push((key, CloseReason::Fault));
            }
        }
    }

    fn advance(&mut self, now: Instant) {
        #[cfg(any(test, feature = "fault-injection"))]
        if self.fail_always {
            panic!("injected permanent fault");
        }
        self.now = self.now.max(now);
    }

    fn next_key(&mut self) -> Key {
        self.last_key = self.last_key.next();
        self.last_key
    }

    fn router_key(&self, id: &RouterId) -> Option<Key> {
        resolve(&self.routers, id.key(), |r| r.id() == id)
    }

    fn transport_key(&self, id: &TransportId) -> Option<Key> {
        resolve(&self.transports, id.key(), |t| t.id() == id)
    }

    fn producer_key(&self, id: &ProducerId) -> Option<Key> {
        resolve(&self.producers, id.key(), |p| p.id() == id)
    }

    fn consumer_key(&self, id: &ConsumerId) -> Option<Key> {
        resolve(&self.consumers, id.key(), |c| c.id() == id)
    }

    /// Closes the transports found dead (DTLS closed by the peer, silent, or faulty) and says so.
    fn reap_dead(&mut self) {
        while let Some((key, reason)) = self.dead.pop() {
            let Some(t) = self.transports.get(&key) else { continue }; // listed twice
            self.current = Some(key);
            tracing::info!(transport = %t.id(), ?reason, "transport lost; closing it");
            let transport = t.id().clone();
            // A transport is always in a router's list while it lives (closing a router closes
            // its transports first).
            let Some(router) = self.routers.get(&t.router()).map(|r| r.id().clone()) else { continue };
            let producers = t.producers().iter().filter_map(|p| self.producers.get(p)).map(|p| p.id().clone()).collect();
            let consumers = t.consumers().iter().filter_map(|c| self.consumers.get(c)).map(|c| c.id().clone()).collect();
            self.close_transport_key(key);
            self.events.push_back(EngineEvent::TransportClosed { router, transport, producers, consumers, reason });
        }
    }
}

#[cfg(test)]
mod tests;
