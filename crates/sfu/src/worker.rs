//! One media worker: an OS thread owning a UDP socket and every router, transport, producer and
//! consumer placed on it. Commands arrive on a channel; the loop sleeps until the next datagram,
//! command or str0m timeout. No locks and no async runtime on the media path.
//!
//! Packet path, per loop turn: take every waiting datagram (one `recvmmsg`), feed each to its
//! transport, poll the transports touched (forwarding decrypted RTP into the consumers' Rtcs),
//! poll those, and send everything produced in one `sendmmsg`. Objects are addressed by
//! [`Key`] inside the worker; public ids are resolved once per command.
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::ice::{IceCreds, StunMessage};
use str0m::media::{KeyframeRequestKind, MediaKind as StrMediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};
use str0m::{Event, Input, Output};
use tokio::sync::oneshot;

use crate::ids::{ConsumerId, FastMap, Key, ProducerId, RouterId, TransportId};
use crate::ortc;
use crate::plain::{rtp_packet, starts_keyframe, PlainTransport};
use crate::rtp_parameters::{DtlsParameters, DtlsRole, MediaKind, RtpCapabilities, RtpParameters};
use crate::seq::SeqRewriter;
use crate::seq_guard::{rtp_ssrc_seq, Admit};
use crate::transport::{random_token, WebRtcTransport};
use crate::udp::{self, RecvBatch, SendBatch};
use crate::{CloseReason, ConsumerOptions, Direction, EngineError, EngineEvent, EngineStats, WebRtcTransportOptions};

type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

pub(crate) enum Command {
    CreateRouter {
        reply: Reply<RouterId>,
    },
    CloseRouter {
        id: RouterId,
        reply: Reply<()>,
    },
    CreateTransport {
        router: RouterId,
        direction: Direction,
        send_caps: Option<RtpCapabilities>,
        reply: Reply<WebRtcTransportOptions>,
    },
    ConnectTransport {
        id: TransportId,
        dtls: DtlsParameters,
        reply: Reply<()>,
    },
    CloseTransport {
        id: TransportId,
        reply: Reply<()>,
    },
    Produce {
        transport: TransportId,
        kind: MediaKind,
        params: RtpParameters,
        reply: Reply<ProducerId>,
    },
    Consume {
        transport: TransportId,
        producer: ProducerId,
        caps: RtpCapabilities,
        reply: Reply<ConsumerOptions>,
    },
    SetConsumerPaused {
        id: ConsumerId,
        paused: bool,
        reply: Reply<()>,
    },
    SetProducerPaused {
        id: ProducerId,
        paused: bool,
        reply: Reply<()>,
    },
    CloseProducer {
        id: ProducerId,
        reply: Reply<()>,
    },
    Stats {
        reply: Reply<EngineStats>,
    },
    CreatePlainTransport {
        router: RouterId,
        remote: SocketAddr,
        reply: Reply<TransportId>,
    },
    RequestKeyframe {
        id: ProducerId,
        reply: Reply<()>,
    },
    /// Panics while handling it: on `transport` (closed then), or for good when `None`.
    #[cfg(any(test, feature = "fault-injection"))]
    InjectFault {
        transport: Option<TransportId>,
        reply: Reply<()>,
    },
}

/// How a worker's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    EngineDropped,
    Failed,
}

/// Faults in consecutive loop turns after which the worker gives up.
const MAX_FAULTS_IN_A_ROW: u32 = 3;

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Keyframe requests reach a producer at most this often (unless forced by a resume).
const KEYFRAME_THROTTLE: Duration = Duration::from_secs(1);
/// Most packets a video consumer keeps to answer NACKs (its age limit is the engine's
/// `nack_history`). str0m's default (2,000 packets, 3 s) costs ~400 KiB per 1 Mbit/s consumer.
const RTX_CACHE_PACKETS: usize = 500;
/// Share of a consumer's bitrate retransmissions may take (str0m's default).
const RTX_RATIO_CAP: f32 = 0.15;
/// Longest sleep of the loop: bounds the latency of commands.
const MAX_SLEEP: Duration = Duration::from_millis(5);
/// Shortest sleep when the socket is idle, so a timeout str0m keeps at "now" cannot make us spin.
const MIN_SLEEP: Duration = Duration::from_millis(1);
/// How often transports are checked for silence.
const LIVENESS_EVERY: Duration = Duration::from_millis(500);

/// What a worker takes from the engine's configuration.
pub(crate) struct Settings {
    pub nack_history: Duration,
    pub idle_timeout: Duration,
    pub events: tokio::sync::mpsc::UnboundedSender<EngineEvent>,
}

struct Router {
    id: RouterId,
    transports: Vec<Key>,
}

struct Producer {
    id: ProducerId,
    transport: Key,
    router: Key,
    kind: MediaKind,
    ssrc: Ssrc,
    cname: Option<String>,
    /// (client payload type, router payload type); a handful of entries, scanned per packet.
    pt_map: Vec<(u8, u8)>,
    /// The validated parameters and what consumers are built from.
    plan: ortc::ProducerPlan,
    consumers: Vec<Key>,
    paused: bool,
    last_keyframe_request: Option<Instant>,
}

impl Producer {
    fn router_pt(&self, client_pt: u8) -> Option<u8> {
        self.pt_map.iter().find(|(c, _)| *c == client_pt).map(|(_, r)| *r)
    }
}

struct Consumer {
    id: ConsumerId,
    producer: Key,
    /// The codec's MIME type (to spot keyframes) for plain consumers.
    mime: String,
    /// Plain consumers hold video back until a keyframe, so recordings start decodable.
    awaiting_keyframe: bool,
    transport: Key,
    kind: MediaKind,
    ssrc: Ssrc,
    mid: Mid,
    pts: Vec<u8>,
    paused: bool,
    seq: SeqRewriter,
}

pub(crate) struct Worker {
    index: usize,
    socket: UdpSocket,
    /// The announced address: ICE candidate and str0m's local address.
    addr: SocketAddr,
    caps: Arc<RtpCapabilities>,
    settings: Settings,
    /// The last key minted; keys are never reused, so a stale key finds nothing.
    last_key: Key,
    routers: FastMap<Key, Router>,
    transports: FastMap<Key, WebRtcTransport>,
    plain: FastMap<Key, PlainTransport>,
    producers: FastMap<Key, Producer>,
    consumers: FastMap<Key, Consumer>,
    by_ufrag: HashMap<String, Key>,
    /// Only filled from STUN requests carrying one of our ufrags, so peers cannot flood it.
    by_addr: FastMap<SocketAddr, Key>,
    stats: EngineStats,
    /// Transports to poll at the next flush round (duplicates allowed).
    dirty: Vec<Key>,
    /// The transports of the flush round under way (kept for its allocation).
    polling: Vec<Key>,
    /// Transports found dead while polled or silent, closed after the flush.
    dead: Vec<(Key, CloseReason)>,
    /// When transports are next checked for silence.
    next_liveness: Instant,
    /// No transport's str0m timeout is earlier than this; a scan then finds what is due.
    next_due: Instant,
    /// Datagrams produced during a flush, sent at its end.
    out: SendBatch,
    /// Events of one poll (kept for its allocation).
    events: Vec<Event>,
    /// Whether the last poll gave out an RTP packet (the datagram fed before it authenticated).
    rtp_delivered: bool,
    /// The transport being handled: the one closed if handling it panics.
    current: Option<Key>,
    /// Set by an injected permanent fault: every turn panics.
    #[cfg(any(test, feature = "fault-injection"))]
    fail_always: bool,
}

/// The key of the object a public id names, if it lives in `map`: the key encoded in the id must
/// hold an object with that very id (a forged id with a known counter is refused).
fn resolve<V>(map: &FastMap<Key, V>, key: Option<Key>, has_id: impl Fn(&V) -> bool) -> Option<Key> {
    key.filter(|k| map.get(k).is_some_and(has_id))
}

impl Worker {
    pub fn new(index: usize, socket: UdpSocket, addr: SocketAddr, caps: Arc<RtpCapabilities>, settings: Settings) -> Worker {
        Worker {
            index,
            socket,
            addr,
            caps,
            settings,
            next_liveness: Instant::now() + LIVENESS_EVERY,
            last_key: Key::default(),
            routers: FastMap::default(),
            transports: FastMap::default(),
            plain: FastMap::default(),
            producers: FastMap::default(),
            consumers: FastMap::default(),
            by_ufrag: HashMap::new(),
            by_addr: FastMap::default(),
            stats: EngineStats::default(),
            dirty: Vec::new(),
            polling: Vec::new(),
            dead: Vec::new(),
            next_due: Instant::now(),
            out: SendBatch::default(),
            events: Vec::new(),
            rtp_delivered: false,
            current: None,
            #[cfg(any(test, feature = "fault-injection"))]
            fail_always: false,
        }
    }

    /// Runs until the engine is dropped (`Exit::EngineDropped`) or faults repeat past recovery
    /// (`Exit::Failed`). A panic while handling one datagram or command closes the transport
    /// involved (see [`Worker::recover`]) and the worker goes on.
    pub fn run(mut self, commands: Receiver<Command>) -> Exit {
        let mut rx = RecvBatch::new();
        let mut faults_in_a_row = 0;
        loop {
            match panic::catch_unwind(AssertUnwindSafe(|| self.turn(&commands, &mut rx))) {
                Ok(true) => faults_in_a_row = 0,
                Ok(false) => {
                    tracing::info!(worker = self.index, "engine dropped; worker stops");
                    return Exit::EngineDropped;
                }
                Err(payload) => {
                    faults_in_a_row += 1;
                    rx.clear();
                    if faults_in_a_row > MAX_FAULTS_IN_A_ROW {
                        tracing::error!(worker = self.index, "worker keeps failing; it stops");
                        return Exit::Failed;
                    }
                    self.recover(panic_message(payload.as_ref()));
                }
            }
        }
    }

    /// One loop turn: commands, the datagrams received, timeouts, the flush, liveness, then
    /// waiting for the next datagram. False once the engine is gone.
    fn turn(&mut self, commands: &Receiver<Command>, rx: &mut RecvBatch) -> bool {
        if !self.drain_commands(commands) {
            return false;
        }
        let now = Instant::now();
        for (src, data) in rx.datagrams() {
            self.on_datagram(now, src, data);
        }
        self.fire_timeouts(now);
        self.flush(now);
        self.find_silent(now);
        self.reap_dead();
        self.current = None;
        self.receive(rx);
        true
    }

    /// After a panic: the work in flight is dropped and the transport being handled (with its
    /// producers, consumers, and their consumers) is closed and reported with
    /// [`CloseReason::Fault`]. Everything else on the worker goes on.
    fn recover(&mut self, why: String) {
        let culprit = self.current.take();
        let id = culprit
            .and_then(|k| self.transports.get(&k).map(|t| t.id.to_string()).or_else(|| self.plain.get(&k).map(|t| t.id.to_string())));
        tracing::error!(worker = self.index, transport = ?id, "worker caught a fault: {why}; closing the transport involved");
        self.dirty.clear();
        self.polling.clear();
        self.events.clear();
        if let Some(key) = culprit {
            if self.plain.contains_key(&key) {
                self.close_transport(key);
            } else {
                self.dead.push((key, CloseReason::Fault));
            }
        }
    }

    /// Runs every queued command; false once the engine is gone.
    fn drain_commands(&mut self, commands: &Receiver<Command>) -> bool {
        #[cfg(any(test, feature = "fault-injection"))]
        if self.fail_always {
            panic!("injected permanent fault");
        }
        loop {
            match commands.try_recv() {
                Ok(cmd) => self.command(cmd),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Takes the datagrams waiting on the socket; if there are none, sleeps until one arrives, the
    /// next str0m timeout is due or MAX_SLEEP has passed (commands are read between turns).
    fn receive(&self, rx: &mut RecvBatch) {
        if rx.recv(&self.socket) > 0 {
            return;
        }
        let wait = self.next_due.saturating_duration_since(Instant::now()).clamp(MIN_SLEEP, MAX_SLEEP);
        if udp::wait_readable(&self.socket, wait) {
            rx.recv(&self.socket);
        }
    }

    /// Marks every transport whose str0m timeout has passed for a tick and a poll. The scan runs
    /// only once the earliest deadline known has come, not on every datagram.
    fn fire_timeouts(&mut self, now: Instant) {
        if now < self.next_due {
            return;
        }
        // Polls move the deadlines of the transports ticked now into `next_due` again.
        let mut next = now + MAX_SLEEP;
        for (&key, t) in self.transports.iter_mut() {
            if t.next_timeout <= now {
                t.needs_tick = true;
                self.dirty.push(key);
            } else {
                next = next.min(t.next_timeout);
            }
        }
        self.next_due = next;
    }

    fn next_key(&mut self) -> Key {
        self.last_key = self.last_key.next();
        self.last_key
    }

    fn router_key(&self, id: &RouterId) -> Option<Key> {
        resolve(&self.routers, id.key(), |r| r.id == *id)
    }

    /// A WebRTC transport's key.
    fn transport_key(&self, id: &TransportId) -> Option<Key> {
        resolve(&self.transports, id.key(), |t| t.id == *id)
    }

    fn plain_key(&self, id: &TransportId) -> Option<Key> {
        resolve(&self.plain, id.key(), |t| t.id == *id)
    }

    fn producer_key(&self, id: &ProducerId) -> Option<Key> {
        resolve(&self.producers, id.key(), |p| p.id == *id)
    }

    fn consumer_key(&self, id: &ConsumerId) -> Option<Key> {
        resolve(&self.consumers, id.key(), |c| c.id == *id)
    }

    /// The transport a command acts on (closed if handling the command panics).
    fn transport_of(&self, cmd: &Command) -> Option<Key> {
        let of_producer = |id: &ProducerId| self.producer_key(id).and_then(|k| self.producers.get(&k)).map(|p| p.transport);
        match cmd {
            Command::ConnectTransport { id, .. } | Command::CloseTransport { id, .. } => {
                self.transport_key(id).or_else(|| self.plain_key(id))
            }
            Command::Produce { transport, .. } | Command::Consume { transport, .. } => {
                self.transport_key(transport).or_else(|| self.plain_key(transport))
            }
            Command::SetConsumerPaused { id, .. } => self.consumer_key(id).and_then(|k| self.consumers.get(&k)).map(|c| c.transport),
            Command::SetProducerPaused { id, .. } | Command::CloseProducer { id, .. } | Command::RequestKeyframe { id, .. } => {
                of_producer(id)
            }
            #[cfg(any(test, feature = "fault-injection"))]
            Command::InjectFault { transport: Some(id), .. } => self.transport_key(id),
            _ => None,
        }
    }

    fn command(&mut self, cmd: Command) {
        self.current = self.transport_of(&cmd);
        match cmd {
            Command::CreateRouter { reply } => {
                let key = self.next_key();
                let id = RouterId::new(self.index, key);
                self.routers.insert(key, Router { id: id.clone(), transports: Vec::new() });
                let _ = reply.send(Ok(id));
            }
            Command::CloseRouter { id, reply } => {
                let result = match self.router_key(&id).and_then(|k| self.routers.remove(&k)) {
                    Some(router) => {
                        for t in router.transports {
                            self.close_transport(t);
                        }
                        Ok(())
                    }
                    None => Err(EngineError::UnknownRouter),
                };
                let _ = reply.send(result);
            }
            Command::CreateTransport { router, direction, send_caps, reply } => {
                let _ = reply.send(self.create_transport(&router, direction, send_caps));
            }
            Command::ConnectTransport { id, dtls, reply } => {
                let _ = reply.send(self.connect_transport(&id, dtls));
            }
            Command::CloseTransport { id, reply } => {
                let key = self.transport_key(&id).or_else(|| self.plain_key(&id));
                let result = if key.is_some_and(|k| self.close_transport(k)) { Ok(()) } else { Err(EngineError::UnknownTransport) };
                let _ = reply.send(result);
            }
            Command::Produce { transport, kind, params, reply } => {
                let _ = reply.send(self.produce(&transport, kind, params));
            }
            Command::Consume { transport, producer, caps, reply } => {
                let _ = reply.send(self.consume(&transport, &producer, &caps));
            }
            Command::SetConsumerPaused { id, paused, reply } => {
                let _ = reply.send(self.set_consumer_paused(&id, paused));
            }
            Command::SetProducerPaused { id, paused, reply } => {
                let _ = reply.send(self.set_producer_paused(&id, paused));
            }
            Command::CloseProducer { id, reply } => {
                let key = self.producer_key(&id);
                let result = if key.is_some_and(|k| self.close_producer(k)) { Ok(()) } else { Err(EngineError::UnknownProducer) };
                let _ = reply.send(result);
            }
            Command::CreatePlainTransport { router, remote, reply } => {
                let _ = reply.send(self.create_plain_transport(&router, remote));
            }
            Command::RequestKeyframe { id, reply } => {
                let result = match self.producer_key(&id) {
                    Some(key) => {
                        self.request_keyframe(key, false, Instant::now());
                        Ok(())
                    }
                    None => Err(EngineError::UnknownProducer),
                };
                let _ = reply.send(result);
            }
            #[cfg(any(test, feature = "fault-injection"))]
            Command::InjectFault { transport, reply } => {
                let _ = reply;
                match transport {
                    Some(_) => panic!("injected fault on a transport"),
                    None => {
                        self.current = None;
                        self.fail_always = true;
                        panic!("injected fault: the worker fails from now on")
                    }
                }
            }
            Command::Stats { reply } => {
                let mut s = self.stats.clone();
                s.routers = self.routers.len();
                s.transports = self.transports.len() + self.plain.len();
                s.producers = self.producers.len();
                s.consumers = self.consumers.len();
                let _ = reply.send(Ok(s));
            }
        }
    }

    fn create_transport(
        &mut self,
        router: &RouterId,
        direction: Direction,
        send_caps: Option<RtpCapabilities>,
    ) -> Result<WebRtcTransportOptions, EngineError> {
        let router = self.router_key(router).ok_or(EngineError::UnknownRouter)?;
        let key = self.next_key();
        let id = TransportId::new(self.index, key);
        let mut t = WebRtcTransport::new(id, router, direction, &self.caps, send_caps, self.addr)?;
        let options = t.options();
        self.by_ufrag.insert(t.ufrag().to_string(), key);
        self.next_due = self.next_due.min(t.next_timeout);
        self.transports.insert(key, t);
        if let Some(r) = self.routers.get_mut(&router) {
            r.transports.push(key);
        }
        Ok(options)
    }

    fn create_plain_transport(&mut self, router: &RouterId, remote: SocketAddr) -> Result<TransportId, EngineError> {
        let router = self.router_key(router).ok_or(EngineError::UnknownRouter)?;
        let key = self.next_key();
        let id = TransportId::new(self.index, key);
        if let Some(r) = self.routers.get_mut(&router) {
            r.transports.push(key);
        }
        self.plain.insert(key, PlainTransport { id: id.clone(), router, remote, consumers: Vec::new() });
        Ok(id)
    }

    fn connect_transport(&mut self, id: &TransportId, dtls: DtlsParameters) -> Result<(), EngineError> {
        let key = self.transport_key(id).ok_or(EngineError::UnknownTransport)?;
        let t = self.transports.get_mut(&key).ok_or(EngineError::UnknownTransport)?;
        let fingerprint = crate::transport::remote_fingerprint(&dtls)?;
        // mediasoup's rule (WebRtcTransport::Connect): a client that says `client` makes us the
        // DTLS server; `server`, `auto` or no role make us the client (we are ICE-controlled).
        let we_are_client = dtls.role != Some(DtlsRole::Client);
        t.connect(fingerprint, we_are_client)?;
        t.needs_tick = true;
        self.dirty.push(key);
        Ok(())
    }

    fn produce(&mut self, tid: &TransportId, kind: MediaKind, params: RtpParameters) -> Result<ProducerId, EngineError> {
        let plan = ortc::producer_plan(&self.caps, kind, &params)?;
        let tkey = self.transport_key(tid).ok_or(EngineError::UnknownTransport)?;
        let t = self.transports.get(&tkey).ok_or(EngineError::UnknownTransport)?;
        if t.direction != Direction::Send {
            return Err(EngineError::WrongDirection(Direction::Send));
        }
        check_unique(t.producers.iter().filter_map(|p| self.producers.get(p)), &plan)?;
        if let Some(m) = plan.mapping.iter().find(|m| !t.knows_pt(m.client_pt)) {
            return Err(EngineError::Invalid(format!(
                "payload type {} is not in the rtpCapabilities given at createTransport",
                m.client_pt
            )));
        }
        let key = self.next_key();
        let id = ProducerId::new(self.index, key);
        let t = self.transports.get_mut(&tkey).ok_or(EngineError::UnknownTransport)?;
        let replay = t.thaw(&params.header_extensions)?;
        // mediasoup (Transport.produce): every producer of a transport carries the first cname
        // given on it, or a random one.
        let cname = t.cname_for_producers.get_or_insert_with(|| params.rtcp.cname.clone().unwrap_or_else(|| random_token(8))).clone();
        let mid: Mid = plan.mid.as_str().into();
        let (ssrc, rtx) = (Ssrc::from(plan.ssrc), plan.rtx_ssrc.map(Ssrc::from));
        {
            let mut api = t.rtc.direct_api();
            let str_kind = if kind == MediaKind::Audio { StrMediaKind::Audio } else { StrMediaKind::Video };
            api.declare_media(mid, str_kind);
            api.expect_stream_rx(ssrc, rtx, mid, None);
        }
        t.guard_ssrcs(plan.ssrc, plan.rtx_ssrc);
        t.producers.push(key);
        let router = t.router;
        self.producers.insert(
            key,
            Producer {
                id: id.clone(),
                transport: tkey,
                router,
                kind,
                ssrc,
                cname: Some(cname),
                pt_map: plan.mapping.iter().map(|m| (m.client_pt, m.router_pt)).collect(),
                plan,
                consumers: Vec::new(),
                paused: false,
                last_keyframe_request: None,
            },
        );
        let now = Instant::now();
        for (src, data) in replay {
            self.on_datagram(now, src, &data);
        }
        Ok(id)
    }

    fn consume(&mut self, tid: &TransportId, pid: &ProducerId, caps: &RtpCapabilities) -> Result<ConsumerOptions, EngineError> {
        if let Some(tkey) = self.plain_key(tid) {
            return self.consume_plain(tkey, pid, caps);
        }
        let pkey = self.producer_key(pid).ok_or(EngineError::UnknownProducer)?;
        let tkey = self.transport_key(tid).ok_or(EngineError::UnknownTransport)?;
        let key = self.next_key();
        let p = self.producers.get(&pkey).ok_or(EngineError::UnknownProducer)?;
        let t = self.transports.get_mut(&tkey).ok_or(EngineError::UnknownTransport)?;
        if t.direction != Direction::Recv {
            return Err(EngineError::WrongDirection(Direction::Recv));
        }
        if t.router != p.router {
            return Err(EngineError::OtherRouter);
        }
        let ssrc = fastrand::u32(100_000_000..=999_999_999);
        let mut params = ortc::consumer_rtp_parameters(&p.plan, p.kind, caps, ssrc, p.cname.clone())?;
        let mid_text = t.next_mid.to_string();
        t.next_mid += 1;
        params.mid = Some(mid_text.clone());
        let mid: Mid = mid_text.as_str().into();
        let rtx = params.encodings[0].rtx.map(|r| Ssrc::from(r.ssrc)); // one encoding, built above
        {
            let mut api = t.rtc.direct_api();
            let str_kind = if p.kind == MediaKind::Audio { StrMediaKind::Audio } else { StrMediaKind::Video };
            api.declare_media(mid, str_kind);
            let tx = api.declare_stream_tx(Ssrc::from(ssrc), rtx, mid, None);
            // Audio is written not nackable (a late Opus frame is useless): str0m caches none of it.
            if p.kind == MediaKind::Video {
                tx.set_rtx_cache(RTX_CACHE_PACKETS, self.settings.nack_history, Some(RTX_RATIO_CAP));
            }
        }
        t.consumers.push(key);
        let kind = p.kind;
        Ok(self.add_consumer(key, pkey, pid, tkey, kind, Ssrc::from(ssrc), mid, params))
    }

    /// Registers a consumer (paused) with its producer; returns what the client needs.
    #[allow(clippy::too_many_arguments)]
    fn add_consumer(
        &mut self,
        key: Key,
        pkey: Key,
        pid: &ProducerId,
        tkey: Key,
        kind: MediaKind,
        ssrc: Ssrc,
        mid: Mid,
        params: RtpParameters,
    ) -> ConsumerOptions {
        let plain = self.plain.contains_key(&tkey);
        let id = ConsumerId::new(self.index, key);
        let consumer = Consumer {
            id: id.clone(),
            producer: pkey,
            transport: tkey,
            kind,
            ssrc,
            mid,
            pts: params.codecs.iter().filter(|c| !c.is_rtx()).map(|c| c.payload_type).collect(),
            paused: true,
            seq: SeqRewriter::new(fastrand::u16(1000..30000)),
            mime: params.codecs.first().map(|c| c.mime_type.clone()).unwrap_or_default(),
            awaiting_keyframe: plain && kind == MediaKind::Video,
        };
        self.consumers.insert(key, consumer);
        if let Some(p) = self.producers.get_mut(&pkey) {
            p.consumers.push(key);
        }
        ConsumerOptions { id, producer_id: pid.clone(), kind, rtp_parameters: params }
    }

    /// A consumer on a plain transport: same rewriting, raw RTP out, video held until a keyframe.
    fn consume_plain(&mut self, tkey: Key, pid: &ProducerId, caps: &RtpCapabilities) -> Result<ConsumerOptions, EngineError> {
        let pkey = self.producer_key(pid).ok_or(EngineError::UnknownProducer)?;
        let key = self.next_key();
        let p = self.producers.get(&pkey).ok_or(EngineError::UnknownProducer)?;
        let t = self.plain.get_mut(&tkey).ok_or(EngineError::UnknownTransport)?;
        if t.router != p.router {
            return Err(EngineError::OtherRouter);
        }
        let ssrc = fastrand::u32(100_000_000..=999_999_999);
        let mut params = ortc::consumer_rtp_parameters(&p.plan, p.kind, caps, ssrc, p.cname.clone())?;
        // Plain RTP: no retransmissions, no header extensions.
        params.codecs.retain(|c| !c.is_rtx());
        params.header_extensions.clear();
        params.encodings[0].rtx = None; // one encoding, built above
        t.consumers.push(key);
        let kind = p.kind;
        Ok(self.add_consumer(key, pkey, pid, tkey, kind, Ssrc::from(ssrc), Mid::from("plain"), params))
    }

    fn set_consumer_paused(&mut self, id: &ConsumerId, paused: bool) -> Result<(), EngineError> {
        let key = self.consumer_key(id).ok_or(EngineError::UnknownConsumer)?;
        let c = self.consumers.get_mut(&key).ok_or(EngineError::UnknownConsumer)?;
        if c.paused == paused {
            return Ok(());
        }
        c.paused = paused;
        if paused {
            c.seq.pause();
            return Ok(());
        }
        let (producer, transport, video) = (c.producer, c.transport, c.kind == MediaKind::Video);
        // A keyframe sent before the consumer's transport is up is wasted (and the throttle would
        // then swallow the consumer's own requests): wait for Connected in that case.
        let connected = self.plain.contains_key(&transport) || self.transports.get(&transport).is_some_and(|t| t.is_connected());
        if video && connected {
            self.request_keyframe(producer, true, Instant::now());
        }
        Ok(())
    }

    fn set_producer_paused(&mut self, id: &ProducerId, paused: bool) -> Result<(), EngineError> {
        let key = self.producer_key(id).ok_or(EngineError::UnknownProducer)?;
        let Worker { producers, consumers, .. } = self;
        let p = producers.get_mut(&key).ok_or(EngineError::UnknownProducer)?;
        p.paused = paused;
        for c in &p.consumers {
            if let Some(c) = consumers.get_mut(c) {
                c.seq.pause();
            }
        }
        if !paused && p.kind == MediaKind::Video {
            self.request_keyframe(key, true, Instant::now());
        }
        Ok(())
    }

    fn request_keyframe(&mut self, key: Key, force: bool, now: Instant) {
        let Some(p) = self.producers.get_mut(&key) else { return };
        if p.kind != MediaKind::Video {
            return;
        }
        if !force && p.last_keyframe_request.is_some_and(|l| now.duration_since(l) < KEYFRAME_THROTTLE) {
            return;
        }
        p.last_keyframe_request = Some(now);
        let (ssrc, tkey) = (p.ssrc, p.transport);
        if let Some(t) = self.transports.get_mut(&tkey) {
            if let Some(rx) = t.rtc.direct_api().stream_rx(&ssrc) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                self.stats.keyframe_requests += 1;
            }
            t.needs_tick = true;
            self.dirty.push(tkey);
        }
    }

    fn close_consumer(&mut self, key: Key) {
        if let Some(c) = self.consumers.remove(&key) {
            if let Some(p) = self.producers.get_mut(&c.producer) {
                p.consumers.retain(|x| *x != key);
            }
            if let Some(t) = self.transports.get_mut(&c.transport) {
                t.consumers.retain(|x| *x != key);
            }
            if let Some(t) = self.plain.get_mut(&c.transport) {
                t.consumers.retain(|x| *x != key);
            }
        }
    }

    fn close_producer(&mut self, key: Key) -> bool {
        let Some(p) = self.producers.remove(&key) else { return false };
        for &c in &p.consumers {
            self.close_consumer(c);
        }
        if let Some(t) = self.transports.get_mut(&p.transport) {
            t.producers.retain(|x| *x != key);
        }
        true
    }

    /// Closes a WebRTC or plain transport and everything on it.
    fn close_transport(&mut self, key: Key) -> bool {
        if let Some(t) = self.plain.remove(&key) {
            for &c in &t.consumers {
                self.close_consumer(c);
            }
            if let Some(r) = self.routers.get_mut(&t.router) {
                r.transports.retain(|x| *x != key);
            }
            return true;
        }
        let Some(t) = self.transports.remove(&key) else { return false };
        for &p in &t.producers {
            self.close_producer(p);
        }
        for &c in &t.consumers {
            self.close_consumer(c);
        }
        self.by_ufrag.remove(t.ufrag());
        self.by_addr.retain(|_, k| *k != key);
        if let Some(r) = self.routers.get_mut(&t.router) {
            r.transports.retain(|x| *x != key);
        }
        true
    }

    /// Marks for closing the transports that heard from their peer once and then nothing for
    /// the idle timeout. Transports never contacted are left alone: mediasoup-client connects a
    /// receive transport only with its first consumer, which may come much later.
    fn find_silent(&mut self, now: Instant) {
        if now < self.next_liveness {
            return;
        }
        self.next_liveness = now + LIVENESS_EVERY;
        self.keep_plain_alive();
        let idle = self.settings.idle_timeout;
        for (&key, t) in &self.transports {
            if t.last_heard.is_some_and(|at| now.saturating_duration_since(at) > idle) {
                self.dead.push((key, CloseReason::Silent));
            }
        }
    }

    /// An empty RTCP receiver report (RFC 3550 6.4.2) to each plain transport's RTCP port, every
    /// liveness tick: a recorder (FFmpeg) then hears from us while its producer is paused, and
    /// silence means the server is gone, which ends its file after its read timeout.
    fn keep_plain_alive(&mut self) {
        for t in self.plain.values() {
            let Some(ssrc) = t.consumers.iter().find_map(|c| self.consumers.get(c)).map(|c| *c.ssrc) else { continue };
            let mut rr = vec![0x80, 201, 0, 1];
            rr.extend_from_slice(&ssrc.to_be_bytes());
            let rtcp = SocketAddr::new(t.remote.ip(), t.remote.port().wrapping_add(1));
            self.stats.packets_out += 1;
            self.stats.bytes_out += rr.len() as u64;
            self.out.push(rtcp, rr); // sent with the next flush, a few milliseconds on
        }
    }

    /// Closes the transports found dead (DTLS closed by the peer, or silent) and says so.
    fn reap_dead(&mut self) {
        while let Some((key, reason)) = self.dead.pop() {
            let Some(t) = self.transports.get(&key) else { continue }; // listed twice
            self.current = Some(key);
            tracing::info!(transport = %t.id, ?reason, "transport lost; closing it");
            let transport = t.id.clone();
            let producers = t.producers.iter().filter_map(|p| self.producers.get(p)).map(|p| p.id.clone()).collect();
            let consumers = t.consumers.iter().filter_map(|c| self.consumers.get(c)).map(|c| c.id.clone()).collect();
            self.close_transport(key);
            // No receiver (nobody took the events) is fine: the event is dropped.
            let _ = self.settings.events.send(EngineEvent::TransportClosed { transport, producers, consumers, reason });
        }
    }

    /// udp_mux: find the transport by STUN username on first contact, then by source address.
    /// The transport is polled at once; the consumers it forwards to are polled at the flush.
    fn on_datagram(&mut self, now: Instant, src: SocketAddr, data: &[u8]) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += data.len() as u64;
        self.current = None;
        let Some(key) = self.stun_target(src, data).or_else(|| self.by_addr.get(&src).copied()) else {
            self.stats.datagrams_dropped += 1;
            return;
        };
        self.current = Some(key);
        let Some(t) = self.transports.get_mut(&key) else { return };
        t.last_heard = Some(now);
        if t.frozen {
            t.buffer(src, data);
            return;
        }
        let rtp = rtp_ssrc_seq(data);
        if let Some((ssrc, seq)) = rtp {
            match t.admit(ssrc, seq, data, &mut self.stats.rtp_guarded) {
                Admit::Pass => {}
                Admit::Held | Admit::Drop => return,
                Admit::Release(held) => {
                    for (held_seq, bytes) in held {
                        self.feed(key, now, src, &bytes, Some((ssrc, held_seq)));
                    }
                }
            }
        }
        self.feed(key, now, src, data, rtp);
    }

    /// Hands one datagram to its transport's str0m and polls it; tells the sequence guard when
    /// an RTP packet came out (str0m authenticated it).
    fn feed(&mut self, key: Key, now: Instant, src: SocketAddr, data: &[u8], rtp: Option<(u32, u16)>) {
        let Some(t) = self.transports.get_mut(&key) else { return };
        let input = match Receive::new(Protocol::Udp, src, self.addr, data) {
            Ok(r) => Input::Receive(now, r),
            Err(_) => {
                self.stats.datagrams_dropped += 1;
                return;
            }
        };
        if let Err(e) = t.rtc.handle_input(input) {
            self.stats.datagrams_dropped += 1;
            tracing::debug!(transport = %t.id, "input: {e}");
        }
        // In RTP mode str0m holds one received packet until the next poll_output: poll before
        // the next datagram or a burst of packets overwrites itself (tests/bursts.rs).
        self.rtp_delivered = false;
        self.poll(key, now);
        if let (true, Some((ssrc, seq))) = (self.rtp_delivered, rtp) {
            if let Some(t) = self.transports.get_mut(&key) {
                t.accepted(ssrc, seq);
            }
        }
    }

    /// The transport a STUN binding request is for (by our ufrag), remembering its source address.
    fn stun_target(&mut self, src: SocketAddr, data: &[u8]) -> Option<Key> {
        if data.len() < 20 || data[0] >= 2 {
            return None;
        }
        let msg = StunMessage::parse(data).ok()?;
        if !msg.is_binding_request() {
            return None;
        }
        let (local, remote) = msg.split_username()?;
        let key = *self.by_ufrag.get(local)?;
        let t = self.transports.get_mut(&key)?;
        if !t.sniffed && !t.frozen {
            // ICE-lite answers only once it knows the remote ufrag, and mediasoup-client never
            // sends it: take it from the request.
            t.rtc.direct_api().set_remote_ice_credentials(IceCreds { ufrag: remote.to_string(), pass: String::new() });
            t.sniffed = true;
        }
        self.by_addr.insert(src, key);
        Some(key)
    }

    /// Polls every transport marked dirty until none is left, then sends what they produced.
    fn flush(&mut self, now: Instant) {
        for _round in 0..16 {
            if self.dirty.is_empty() {
                break;
            }
            std::mem::swap(&mut self.dirty, &mut self.polling);
            self.polling.sort_unstable();
            self.polling.dedup();
            for i in 0..self.polling.len() {
                let key = self.polling[i];
                self.poll(key, now);
            }
            self.polling.clear();
        }
        self.out.send(&self.socket);
    }

    fn poll(&mut self, key: Key, now: Instant) {
        self.current = Some(key);
        let Worker { transports, out, stats, next_due, dead, events, .. } = self;
        let Some(t) = transports.get_mut(&key) else { return };
        if std::mem::take(&mut t.needs_tick) {
            if let Err(e) = t.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(transport = %t.id, "timeout: {e}");
            }
        }
        loop {
            match t.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    t.next_timeout = at;
                    break;
                }
                Ok(Output::Transmit(tx)) => {
                    stats.packets_out += 1;
                    stats.bytes_out += tx.contents.len() as u64;
                    out.push(tx.destination, tx.contents.into());
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => {
                    tracing::debug!(transport = %t.id, "poll_output: {e}");
                    t.next_timeout = now + Duration::from_millis(50);
                    break;
                }
            }
        }
        *next_due = (*next_due).min(t.next_timeout);
        if !t.rtc.is_alive() {
            dead.push((key, CloseReason::PeerClosed));
        }
        let mut events = std::mem::take(events);
        for e in events.drain(..) {
            self.on_event(key, e, now);
        }
        self.events = events;
    }

    fn on_event(&mut self, tkey: Key, event: Event, now: Instant) {
        match event {
            Event::RtpPacket(p) => {
                self.rtp_delivered = true;
                self.forward(tkey, p, now)
            }
            Event::KeyframeRequest(r) => {
                let producer = self
                    .transports
                    .get(&tkey)
                    .and_then(|t| t.consumers.iter().filter_map(|c| self.consumers.get(c)).find(|c| c.mid == r.mid).map(|c| c.producer));
                if let Some(p) = producer {
                    self.request_keyframe(p, false, now);
                }
            }
            Event::Connected => {
                let Some(t) = self.transports.get(&tkey) else { return };
                tracing::debug!(transport = %t.id, "DTLS connected");
                let producers: Vec<Key> = t
                    .consumers
                    .iter()
                    .filter_map(|c| self.consumers.get(c))
                    .filter(|c| !c.paused && c.kind == MediaKind::Video)
                    .map(|c| c.producer)
                    .collect();
                for p in producers {
                    self.request_keyframe(p, true, now);
                }
            }
            Event::IceConnectionStateChange(state) => {
                if let Some(t) = self.transports.get(&tkey) {
                    tracing::debug!(transport = %t.id, ?state, "ICE state");
                }
            }
            _ => {}
        }
    }

    /// Fan-out of one producer packet to its consumers (SSRC, PT and sequence rewritten). The
    /// consumers' Rtcs only queue it: their transports are ticked and polled by the flush.
    fn forward(&mut self, tkey: Key, packet: RtpPacket, now: Instant) {
        let Worker { transports, plain, producers, consumers, stats, dirty, out, current, .. } = self;
        let Some(t) = transports.get(&tkey) else { return };
        let Some(pkey) = t.producers.iter().copied().find(|p| producers.get(p).is_some_and(|p| p.ssrc == packet.header.ssrc)) else {
            return;
        };
        let Some(producer) = producers.get(&pkey) else { return };
        if producer.paused {
            return;
        }
        let Some(router_pt) = producer.router_pt(*packet.header.payload_type) else { return };
        let video = producer.kind == MediaKind::Video;
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let seq = *packet.seq_no;
        let mut want_keyframe = false;
        for ckey in &producer.consumers {
            let Some(c) = consumers.get_mut(ckey) else { continue };
            if c.paused || !c.pts.contains(&router_pt) {
                continue;
            }
            if let Some(p) = plain.get(&c.transport) {
                want_keyframe |= forward_plain(c, p.remote, router_pt, &packet, out, stats);
                continue;
            }
            let Some(t) = transports.get_mut(&c.transport) else { continue };
            *current = Some(c.transport); // a panic in its str0m closes that transport
            if !t.is_connected() {
                continue; // do not burn sequence numbers before SRTP is up
            }
            if packet.payload.is_empty() {
                c.seq.skip(seq);
                continue;
            }
            let Some(out_seq) = c.seq.rewrite(seq) else { continue };
            let mut api = t.rtc.direct_api();
            let Some(tx) = api.stream_tx(&c.ssrc) else { continue };
            // str0m keeps the payload (for retransmissions), so each consumer needs its own copy.
            tx.write_rtp(
                RtpWrite::new(Pt::from(router_pt), out_seq.into(), packet.header.timestamp, packet.timestamp, packet.payload.clone())
                    .marker(packet.header.marker)
                    .ext_vals(ext.clone())
                    .nackable(video),
            );
            t.needs_tick = true;
            stats.rtp_forwarded += 1;
            dirty.push(c.transport);
        }
        *current = Some(tkey);
        if want_keyframe {
            self.request_keyframe(pkey, false, now);
        }
    }
}

/// One packet to a plain (recording) consumer: raw RTP into the send batch. Returns whether the
/// consumer is still waiting for a keyframe (so one should be requested).
fn forward_plain(
    c: &mut Consumer,
    remote: SocketAddr,
    router_pt: u8,
    packet: &RtpPacket,
    out: &mut SendBatch,
    stats: &mut EngineStats,
) -> bool {
    if c.awaiting_keyframe {
        if !starts_keyframe(&c.mime, &packet.payload) {
            return true;
        }
        c.awaiting_keyframe = false;
    }
    if packet.payload.is_empty() {
        c.seq.skip(*packet.seq_no);
        return false;
    }
    let Some(seq) = c.seq.rewrite(*packet.seq_no) else { return false };
    let mut datagram = Vec::with_capacity(12 + packet.payload.len());
    // The wire carries the extended number modulo 2^16 (RFC 3550).
    rtp_packet(router_pt, seq as u16, packet.header.timestamp, *c.ssrc, packet.header.marker, &packet.payload, &mut datagram);
    stats.packets_out += 1;
    stats.bytes_out += datagram.len() as u64;
    stats.rtp_forwarded += 1;
    out.push(remote, datagram);
    false
}

/// mediasoup's RtpListener rules for a new producer on a transport: its SSRC, RTX SSRC and mid
/// must not already be produced there (by another producer, or by itself for SSRC and RTX).
fn check_unique<'a>(existing: impl Iterator<Item = &'a Producer>, plan: &ortc::ProducerPlan) -> Result<(), EngineError> {
    if plan.rtx_ssrc == Some(plan.ssrc) {
        return Err(EngineError::DuplicateSsrc(plan.ssrc));
    }
    let new = [Some(plan.ssrc), plan.rtx_ssrc];
    for p in existing {
        let taken = [Some(p.plan.ssrc), p.plan.rtx_ssrc];
        if let Some(ssrc) = new.iter().flatten().find(|s| taken.contains(&Some(**s))) {
            return Err(EngineError::DuplicateSsrc(*ssrc));
        }
        if p.plan.mid == plan.mid {
            return Err(EngineError::DuplicateMid(plan.mid.clone()));
        }
    }
    Ok(())
}
