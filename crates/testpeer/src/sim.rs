//! One media worker and its clients in memory, on a simulated clock: no sockets, no sleeping,
//! faster than real time and independent of the machine's load. Each [`Sim::step`] hands the
//! clients' datagrams to the worker, lets the worker's time move, hands its datagrams to the
//! clients, and advances the clock by [`STEP`] (the one-way delay of the simulated network).
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfu::ortc::{default_media_codecs, router_rtp_capabilities};
use sfu::rtp_parameters::RtpCapabilities;
use sfu::worker::{Worker, WorkerConfig};
use sfu::{Direction, EngineConfig, EngineEvent, Protocol, RouterId};

use crate::ClientTransport;

#[derive(PartialEq, Eq)]
enum Net {
    Udp,
    UdpWithBwe,
    Tcp,
}

/// Simulated time per step.
pub const STEP: Duration = Duration::from_millis(1);

pub struct Sim {
    /// The simulated clock.
    pub now: Instant,
    pub worker: Worker,
    /// What the worker decided on its own, in order.
    pub events: Vec<EngineEvent>,
    /// Datagrams the worker sent to no client of the simulation.
    pub undelivered: u64,
    /// Datagrams (UDP) and frames (TCP) the worker sent.
    sent: [u64; 2],
    next_client: u32,
    /// Clients whose downlink is limited.
    links: Vec<(SocketAddr, Link)>,
}

/// A client's downlink limited like `tc tbf`: datagrams leave one after the other at `bps`,
/// and one that would wait more than `max_queue` is dropped.
pub struct Link {
    pub bps: u64,
    pub max_queue: Duration,
    /// When the link is free again.
    free_at: Instant,
    queue: VecDeque<(Instant, Protocol, Vec<u8>)>,
    /// Datagrams dropped because the queue was full.
    pub dropped: u64,
}

impl Sim {
    /// A worker with the engine's default codecs, NACK history and `idle_timeout`.
    pub fn new(idle_timeout: Duration) -> Sim {
        // The default codecs are a constant the engine's own tests check.
        let caps = router_rtp_capabilities(&default_media_codecs()).expect("default codecs");
        let now = Instant::now();
        let config = WorkerConfig {
            index: 0,
            addr: "198.18.0.1:40000".parse().expect("a literal address"),
            caps: Arc::new(caps),
            nack_history: EngineConfig::DEFAULT_NACK_HISTORY,
            idle_timeout,
            tcp: true,
            downlink_bwe: true,
        };
        Sim { now, worker: Worker::new(config, now), events: Vec::new(), undelivered: 0, sent: [0; 2], next_client: 0, links: Vec::new() }
    }

    /// Limits the downlink of the client at `client` to `bps` (None: lifts the limit; what is
    /// queued is still delivered), with `max_queue` of buffering (tbf's latency).
    pub fn limit_downlink(&mut self, client: SocketAddr, bps: Option<u64>, max_queue: Duration) {
        let now = self.now;
        match (self.links.iter_mut().find(|(a, _)| *a == client), bps) {
            (Some((_, link)), Some(bps)) => (link.bps, link.max_queue) = (bps, max_queue),
            (Some((_, link)), None) => link.bps = u64::MAX,
            (None, Some(bps)) => {
                self.links.push((client, Link { bps, max_queue, free_at: now, queue: VecDeque::new(), dropped: 0 }));
            }
            (None, None) => {}
        }
    }

    /// The limited downlink of the client at `client`, if any.
    pub fn link(&self, client: SocketAddr) -> Option<&Link> {
        self.links.iter().find(|(a, _)| *a == client).map(|(_, l)| l)
    }

    /// How many datagrams (UDP) or frames (TCP) the worker has sent.
    pub fn sent_by_protocol(&self, proto: Protocol) -> u64 {
        self.sent[usize::from(proto == Protocol::Tcp)]
    }

    pub fn rtp_capabilities(&self) -> RtpCapabilities {
        self.worker.rtp_capabilities().clone()
    }

    /// A WebRTC transport on `router` and its in-memory client (connected with
    /// `connectTransport`); `bwe` turns the client's bandwidth estimation and pacer on.
    pub fn client(&mut self, router: &RouterId, direction: Direction, bwe: bool) -> ClientTransport {
        self.client_on(router, direction, if bwe { Net::UdpWithBwe } else { Net::Udp })
    }

    /// As [`Sim::client`], for a client that reaches the worker over ICE-TCP only.
    pub fn tcp_client(&mut self, router: &RouterId, direction: Direction) -> ClientTransport {
        self.client_on(router, direction, Net::Tcp)
    }

    fn client_on(&mut self, router: &RouterId, direction: Direction, net: Net) -> ClientTransport {
        let send = direction == Direction::Send;
        let caps = send.then(|| crate::send_rtp_capabilities(&self.rtp_capabilities()));
        let options = self.worker.create_webrtc_transport(self.now, router, direction, caps).expect("transport");
        let options = serde_json::to_value(&options).expect("options serialise");
        self.next_client += 1;
        let local = SocketAddr::from(([198, 18, (self.next_client >> 8) as u8 + 1, self.next_client as u8], 50000));
        let (client, dtls) = match net {
            Net::Tcp => ClientTransport::in_memory_tcp(&options, send, local, self.now),
            _ => ClientTransport::in_memory(&options, send, net == Net::UdpWithBwe, local, self.now),
        }
        .expect("client");
        let id = serde_json::from_value(options["id"].clone()).expect("a transport id");
        self.worker.connect_transport(&id, &serde_json::from_value(dtls).expect("dtls parameters")).expect("connect");
        client
    }

    /// One step: clients -> worker, the worker's timeouts, worker -> clients, events; then the
    /// clock moves by [`STEP`]. Clients are pumped by their owners before each step.
    pub fn step(&mut self, clients: &mut [&mut ClientTransport]) {
        let server = self.worker.addr();
        for c in clients.iter_mut() {
            let from = c.local();
            for (proto, to, data) in c.take_outgoing() {
                if to == server {
                    self.worker.handle_receive(self.now, proto, from, &data);
                }
            }
        }
        self.worker.handle_timeout(self.now);
        while let Some(t) = self.worker.poll_transmit() {
            self.sent[usize::from(t.proto == Protocol::Tcp)] += 1;
            if let Some((_, link)) = self.links.iter_mut().find(|(a, _)| *a == t.destination) {
                link.enqueue(self.now, t.proto, t.contents);
                continue;
            }
            match clients.iter_mut().find(|c| c.local() == t.destination) {
                Some(c) => c.deliver(t.proto, server, t.contents),
                None => self.undelivered += 1,
            }
        }
        for (addr, link) in &mut self.links {
            while let Some((proto, data)) = link.dequeue(self.now) {
                match clients.iter_mut().find(|c| c.local() == *addr) {
                    Some(c) => c.deliver(proto, server, data),
                    None => self.undelivered += 1,
                }
            }
        }
        while let Some(e) = self.worker.poll_event() {
            self.events.push(e);
        }
        self.now += STEP;
    }
}

impl Link {
    fn enqueue(&mut self, now: Instant, proto: Protocol, data: Vec<u8>) {
        let start = self.free_at.max(now);
        if start.saturating_duration_since(now) > self.max_queue {
            self.dropped += 1;
            return;
        }
        let micros = (data.len() as u64 * 8).saturating_mul(1_000_000) / self.bps.max(1);
        self.free_at = start + Duration::from_micros(micros);
        self.queue.push_back((self.free_at, proto, data));
    }

    fn dequeue(&mut self, now: Instant) -> Option<(Protocol, Vec<u8>)> {
        if self.queue.front().is_some_and(|(at, _, _)| *at <= now) {
            return self.queue.pop_front().map(|(_, p, d)| (p, d));
        }
        None
    }
}
