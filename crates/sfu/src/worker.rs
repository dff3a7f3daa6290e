//! One media worker: an OS thread owning a UDP socket and every router, transport, producer and
//! consumer placed on it, by id (no shared graph, no locks, no async runtime on the media
//! path). Commands arrive on a channel with a oneshot reply; the loop sleeps until the next
//! datagram, str0m timeout or deferred keyframe request, at most [`MAX_SLEEP`] (which bounds
//! the latency of commands).
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output};
use tokio::sync::{mpsc, oneshot};

use crate::consumer::Consumer;
use crate::error::{ConsumeError, ProduceError, RouterError, TransportError, WorkerGone};
use crate::events::EngineEvent;
use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::producer::Producer;
use crate::router::Router;
use crate::rtp_parameters::{DtlsParameters, MediaKind, RtpCapabilities, RtpParameters};
use crate::transport::Transport;
use crate::udp_mux::UdpMux;
use crate::{ConsumerOptions, ConsumerStats, Direction, EngineStats, ProducerStats, TransportStats, WebRtcTransportOptions};

type Reply<T, E> = oneshot::Sender<Result<T, E>>;

pub(crate) enum Command {
    CreateRouter { reply: Reply<RouterId, RouterError> },
    CloseRouter { id: RouterId, reply: Reply<(), RouterError> },
    CreateWebRtcTransport {
        router: RouterId,
        direction: Direction,
        send_caps: Option<RtpCapabilities>,
        reply: Reply<WebRtcTransportOptions, TransportError>,
    },
    CreatePlainTransport { router: RouterId, remote: SocketAddr, reply: Reply<TransportId, TransportError> },
    ConnectTransport { id: TransportId, dtls: DtlsParameters, reply: Reply<(), TransportError> },
    CloseTransport { id: TransportId, reply: Reply<(), TransportError> },
    TransportStats { id: TransportId, reply: Reply<TransportStats, TransportError> },
    Produce { transport: TransportId, kind: MediaKind, params: RtpParameters, reply: Reply<ProducerId, ProduceError> },
    SetProducerPaused { id: ProducerId, paused: bool, reply: Reply<(), ProduceError> },
    CloseProducer { id: ProducerId, reply: Reply<(), ProduceError> },
    RequestKeyframe { id: ProducerId, reply: Reply<(), ProduceError> },
    ProducerStats { id: ProducerId, reply: Reply<ProducerStats, ProduceError> },
    Consume { transport: TransportId, producer: ProducerId, caps: RtpCapabilities, reply: Reply<ConsumerOptions, ConsumeError> },
    SetConsumerPaused { id: ConsumerId, paused: bool, reply: Reply<(), ConsumeError> },
    CloseConsumer { id: ConsumerId, reply: Reply<(), ConsumeError> },
    ConsumerStats { id: ConsumerId, reply: Reply<ConsumerStats, ConsumeError> },
    Stats { reply: Reply<EngineStats, WorkerGone> },
}

/// Longest sleep of the loop.
const MAX_SLEEP: Duration = Duration::from_millis(5);
const MIN_SLEEP: Duration = Duration::from_millis(1);
/// Largest datagram read; longer ones are truncated (and then fail to parse).
const RECV_BUFFER: usize = 4096;

/// Traffic counters of a worker (object counts come from the maps).
#[derive(Debug, Default, Clone)]
pub(crate) struct Totals {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub rtp_forwarded: u64,
    pub keyframe_requests: u64,
    pub datagrams_dropped: u64,
    pub events_dropped: u64,
}

pub(crate) struct Worker {
    pub index: usize,
    pub socket: UdpSocket,
    /// The announced address: ICE candidate and str0m's local address.
    pub addr: SocketAddr,
    pub caps: Arc<RtpCapabilities>,
    pub counter: u64,
    pub routers: HashMap<RouterId, Router>,
    pub transports: HashMap<TransportId, Transport>,
    pub producers: HashMap<ProducerId, Producer>,
    pub consumers: HashMap<ConsumerId, Consumer>,
    pub mux: UdpMux,
    pub totals: Totals,
    /// Transports to poll (output to send, events to handle).
    pub dirty: Vec<TransportId>,
    /// Producers with a keyframe request waiting for the throttle window to end.
    pub deferred_keyframes: Vec<ProducerId>,
    events: mpsc::Sender<EngineEvent>,
    /// Earliest known timer (a lower bound: waking early only costs a scan).
    earliest: Instant,
}

impl Worker {
    pub fn new(
        index: usize,
        socket: UdpSocket,
        addr: SocketAddr,
        caps: Arc<RtpCapabilities>,
        events: mpsc::Sender<EngineEvent>,
    ) -> Worker {
        Worker {
            index,
            socket,
            addr,
            caps,
            counter: 0,
            routers: HashMap::new(),
            transports: HashMap::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
            mux: UdpMux::default(),
            totals: Totals::default(),
            dirty: Vec::new(),
            deferred_keyframes: Vec::new(),
            events,
            earliest: Instant::now(),
        }
    }

    pub fn run(mut self, commands: Receiver<Command>) {
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut read_timeout = Duration::ZERO;
        loop {
            loop {
                match commands.try_recv() {
                    Ok(cmd) => self.command(cmd),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        tracing::info!(worker = self.index, "engine dropped; worker stops");
                        return;
                    }
                }
            }
            let now = Instant::now();
            if now >= self.earliest {
                self.run_timers(now);
            }
            self.flush();
            let wait = self.earliest.saturating_duration_since(Instant::now()).clamp(MIN_SLEEP, MAX_SLEEP);
            // Whole milliseconds: the syscall is only made when the value changes.
            let wait = Duration::from_millis(wait.as_millis().max(1) as u64);
            if wait != read_timeout {
                match self.socket.set_read_timeout(Some(wait)) {
                    Ok(()) => read_timeout = wait,
                    Err(_) => std::thread::sleep(wait),
                }
            }
            match self.socket.recv_from(&mut buf) {
                Ok((n, src)) => self.on_datagram(Instant::now(), src, &buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                // ICMP errors from a peer that went away surface here on Linux: not fatal.
                Err(e) => tracing::debug!(worker = self.index, "recv_from: {e}"),
            }
        }
    }

    /// str0m timers, deferred keyframe requests, dead transports; then the next wake-up.
    fn run_timers(&mut self, now: Instant) {
        self.handle_transport_timeouts(now);
        self.send_deferred_keyframe_requests(now);
        self.flush();
        self.reap_dead_transports();
        let mut earliest = now + MAX_SLEEP;
        for t in self.transports.values().filter_map(Transport::webrtc) {
            earliest = earliest.min(t.next_timeout);
        }
        if let Some(at) = self.next_deferred_keyframe() {
            earliest = earliest.min(at);
        }
        self.earliest = earliest;
    }

    pub(crate) fn next_counter(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Reports an event; never blocks (a full channel drops it and counts it).
    pub(crate) fn emit(&mut self, event: EngineEvent) {
        if let Err(e) = self.events.try_send(event) {
            if let mpsc::error::TrySendError::Full(ev) = e {
                tracing::warn!(worker = self.index, ?ev, "engine event channel full; event dropped");
            }
            self.totals.events_dropped += 1;
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::CreateRouter { reply } => {
                let _ = reply.send(Ok(self.create_router()));
            }
            Command::CloseRouter { id, reply } => {
                let _ = reply.send(self.close_router(&id));
            }
            Command::CreateWebRtcTransport { router, direction, send_caps, reply } => {
                let _ = reply.send(self.create_webrtc_transport(router, direction, send_caps));
            }
            Command::CreatePlainTransport { router, remote, reply } => {
                let _ = reply.send(self.create_plain_transport(router, remote));
            }
            Command::ConnectTransport { id, dtls, reply } => {
                let _ = reply.send(self.connect_transport(&id, &dtls));
            }
            Command::CloseTransport { id, reply } => {
                let found = self.close_transport(&id, None);
                let _ = reply.send(if found { Ok(()) } else { Err(TransportError::UnknownTransport) });
            }
            Command::TransportStats { id, reply } => {
                let _ = reply.send(self.transports.get(&id).map(|t| t.stats(&id)).ok_or(TransportError::UnknownTransport));
            }
            Command::Produce { transport, kind, params, reply } => {
                let _ = reply.send(self.produce(&transport, kind, params));
            }
            Command::SetProducerPaused { id, paused, reply } => {
                let _ = reply.send(self.set_producer_paused(&id, paused));
            }
            Command::CloseProducer { id, reply } => {
                let found = self.close_producer(&id, false);
                let _ = reply.send(if found { Ok(()) } else { Err(ProduceError::UnknownProducer) });
            }
            Command::RequestKeyframe { id, reply } => {
                let result = if self.producers.contains_key(&id) {
                    self.request_keyframe(&id);
                    Ok(())
                } else {
                    Err(ProduceError::UnknownProducer)
                };
                let _ = reply.send(result);
            }
            Command::ProducerStats { id, reply } => {
                let _ = reply.send(self.producers.get(&id).map(|p| p.stats(&id)).ok_or(ProduceError::UnknownProducer));
            }
            Command::Consume { transport, producer, caps, reply } => {
                let _ = reply.send(self.consume(&transport, &producer, &caps));
            }
            Command::SetConsumerPaused { id, paused, reply } => {
                let _ = reply.send(self.set_consumer_paused(&id, paused));
            }
            Command::CloseConsumer { id, reply } => {
                let found = self.close_consumer(&id);
                let _ = reply.send(if found { Ok(()) } else { Err(ConsumeError::UnknownConsumer) });
            }
            Command::ConsumerStats { id, reply } => {
                let stats = self.consumers.get(&id).map(|c| {
                    let producer_paused = self.producers.get(&c.producer).is_some_and(|p| p.paused);
                    c.stats(&id, producer_paused)
                });
                let _ = reply.send(stats.ok_or(ConsumeError::UnknownConsumer));
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(self.stats()));
            }
        }
        self.flush();
    }

    fn stats(&self) -> EngineStats {
        let t = &self.totals;
        EngineStats {
            workers: 1,
            routers: self.routers.len(),
            transports: self.transports.len(),
            producers: self.producers.len(),
            consumers: self.consumers.len(),
            packets_in: t.packets_in,
            bytes_in: t.bytes_in,
            packets_out: t.packets_out,
            bytes_out: t.bytes_out,
            rtp_forwarded: t.rtp_forwarded,
            keyframe_requests: t.keyframe_requests,
            datagrams_dropped: t.datagrams_dropped,
            events_dropped: t.events_dropped,
        }
    }

    /// A datagram on the worker's port: route it (udp_mux), then into the transport's Rtc.
    pub(crate) fn on_datagram(&mut self, now: Instant, src: SocketAddr, data: &[u8]) {
        self.totals.packets_in += 1;
        self.totals.bytes_in += data.len() as u64;
        let Some(route) = self.mux.route(src, data) else {
            self.totals.datagrams_dropped += 1;
            return;
        };
        let id = route.transport;
        let Some(t) = self.transports.get_mut(&id).and_then(Transport::webrtc_mut) else {
            self.totals.datagrams_dropped += 1;
            return;
        };
        t.packets_in += 1;
        t.bytes_in += data.len() as u64;
        if t.frozen {
            t.buffer(src, data);
            return;
        }
        if let Some(ufrag) = route.remote_ufrag {
            t.sniff_remote_ufrag(&ufrag);
        }
        let input = match Receive::new(Protocol::Udp, src, self.addr, data) {
            Ok(r) => Input::Receive(now, r),
            Err(_) => {
                self.totals.datagrams_dropped += 1;
                return;
            }
        };
        if let Err(e) = t.rtc.handle_input(input) {
            self.totals.datagrams_dropped += 1;
            tracing::debug!(transport = %id, "input: {e}");
        }
        self.dirty.push(id);
        self.flush();
    }

    /// Polls every transport marked dirty until none is left (events can dirty others).
    pub(crate) fn flush(&mut self) {
        for _round in 0..16 {
            if self.dirty.is_empty() {
                return;
            }
            let mut ids = std::mem::take(&mut self.dirty);
            ids.sort();
            ids.dedup();
            for id in ids {
                self.poll(&id);
            }
        }
    }

    /// Lets a transport's Rtc catch up (timers, queued media), sends what it wants to send and
    /// handles its events.
    fn poll(&mut self, id: &TransportId) {
        let mut events = Vec::new();
        {
            let Worker { transports, socket, totals, earliest, .. } = self;
            let Some(t) = transports.get_mut(id).and_then(Transport::webrtc_mut) else { return };
            let now = Instant::now();
            // Also releases media queued by write_rtp (str0m's pacer snapshots on timeouts).
            if let Err(e) = t.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(transport = %id, "timeout: {e}");
            }
            loop {
                match t.rtc.poll_output() {
                    Ok(Output::Timeout(at)) => {
                        t.next_timeout = at;
                        *earliest = (*earliest).min(at);
                        break;
                    }
                    Ok(Output::Transmit(tx)) => {
                        totals.packets_out += 1;
                        totals.bytes_out += tx.contents.len() as u64;
                        t.packets_out += 1;
                        t.bytes_out += tx.contents.len() as u64;
                        if let Err(e) = socket.send_to(&tx.contents, tx.destination) {
                            tracing::debug!(transport = %id, "send_to {}: {e}", tx.destination);
                        }
                    }
                    Ok(Output::Event(e)) => events.push(e),
                    Err(e) => {
                        tracing::debug!(transport = %id, "poll_output: {e}");
                        t.next_timeout = now + Duration::from_millis(50);
                        break;
                    }
                }
            }
        }
        for e in events {
            self.on_event(id, e);
        }
    }

    fn on_event(&mut self, tid: &TransportId, event: Event) {
        match event {
            Event::RtpPacket(p) => self.on_rtp(tid, p),
            Event::KeyframeRequest(r) => {
                // A consumer's receiver asks (PLI or FIR): relay to the producer, throttled.
                let producer = self.transports.get(tid).and_then(|t| {
                    t.consumers().iter().filter_map(|c| self.consumers.get(c)).find(|c| c.mid == r.mid).map(|c| c.producer.clone())
                });
                if let Some(p) = producer {
                    self.request_keyframe(&p);
                }
            }
            Event::Connected => self.on_connected(tid),
            Event::IceConnectionStateChange(state) => tracing::debug!(transport = %tid, ?state, "ICE state"),
            _ => {}
        }
    }

    /// DTLS is up: report it, and ask for keyframes for the video consumers already resumed
    /// (their resume could not, see `set_consumer_paused`).
    fn on_connected(&mut self, tid: &TransportId) {
        tracing::debug!(transport = %tid, "DTLS connected");
        let Some(t) = self.transports.get_mut(tid).and_then(Transport::webrtc_mut) else { return };
        if std::mem::replace(&mut t.connected, true) {
            return;
        }
        let router = t.router.clone();
        let producers: Vec<ProducerId> = t
            .consumers
            .iter()
            .filter_map(|c| self.consumers.get(c))
            .filter(|c| !c.paused && c.kind == MediaKind::Video)
            .map(|c| c.producer.clone())
            .collect();
        self.emit(EngineEvent::TransportConnected { router, transport: tid.clone() });
        for p in producers {
            self.request_keyframe(&p);
        }
    }
}
