//! One media worker: an OS thread owning a UDP socket and every router, transport, producer and
//! consumer placed on it. Commands arrive on a channel; the loop sleeps until the next datagram,
//! command or str0m timeout. No locks and no async runtime on the media path.
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::config::Fingerprint;
use str0m::ice::{IceCreds, StunMessage};
use str0m::media::{KeyframeRequestKind, MediaKind as StrMediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};
use str0m::{Event, Input, Output};
use tokio::sync::oneshot;

use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::ortc;
use crate::rtp_parameters::{DtlsParameters, DtlsRole, MediaKind, RtpCapabilities, RtpParameters};
use crate::plain::{rtp_packet, starts_keyframe, PlainTransport};
use crate::seq::SeqRewriter;
use crate::transport::WebRtcTransport;
use crate::{ConsumerOptions, Direction, EngineError, EngineStats, WebRtcTransportOptions};

type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

pub(crate) enum Command {
    CreateRouter { reply: Reply<RouterId> },
    CloseRouter { id: RouterId, reply: Reply<()> },
    CreateTransport { router: RouterId, direction: Direction, send_caps: Option<RtpCapabilities>, reply: Reply<WebRtcTransportOptions> },
    ConnectTransport { id: TransportId, dtls: DtlsParameters, reply: Reply<()> },
    CloseTransport { id: TransportId, reply: Reply<()> },
    Produce { transport: TransportId, kind: MediaKind, params: RtpParameters, reply: Reply<ProducerId> },
    Consume { transport: TransportId, producer: ProducerId, caps: RtpCapabilities, reply: Reply<ConsumerOptions> },
    SetConsumerPaused { id: ConsumerId, paused: bool, reply: Reply<()> },
    SetProducerPaused { id: ProducerId, paused: bool, reply: Reply<()> },
    CloseProducer { id: ProducerId, reply: Reply<()> },
    Stats { reply: Reply<EngineStats> },
    CreatePlainTransport { router: RouterId, remote: SocketAddr, reply: Reply<TransportId> },
    RequestKeyframe { id: ProducerId, reply: Reply<()> },
}

/// Keyframe requests reach a producer at most this often (unless forced by a resume).
const KEYFRAME_THROTTLE: Duration = Duration::from_secs(1);
/// Longest sleep of the loop: bounds the latency of commands.
const MAX_SLEEP: Duration = Duration::from_millis(5);

struct Router {
    transports: Vec<TransportId>,
}

struct Producer {
    transport: TransportId,
    router: RouterId,
    kind: MediaKind,
    ssrc: Ssrc,
    cname: Option<String>,
    /// client payload type -> router payload type
    pt_map: HashMap<u8, u8>,
    router_pts: Vec<u8>,
    consumers: Vec<ConsumerId>,
    paused: bool,
    last_keyframe_request: Option<Instant>,
}

struct Consumer {
    producer: ProducerId,
    /// The codec's MIME type (to spot keyframes) for plain consumers.
    mime: String,
    /// Plain consumers hold video back until a keyframe, so recordings start decodable.
    awaiting_keyframe: bool,
    transport: TransportId,
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
    counter: u64,
    routers: HashMap<RouterId, Router>,
    transports: HashMap<TransportId, WebRtcTransport>,
    plain: HashMap<TransportId, PlainTransport>,
    scratch: Vec<u8>,
    producers: HashMap<ProducerId, Producer>,
    consumers: HashMap<ConsumerId, Consumer>,
    by_ufrag: HashMap<String, TransportId>,
    by_addr: HashMap<SocketAddr, TransportId>,
    stats: EngineStats,
    dirty: Vec<TransportId>,
}

impl Worker {
    pub fn new(index: usize, socket: UdpSocket, addr: SocketAddr, caps: Arc<RtpCapabilities>) -> Worker {
        Worker {
            index,
            socket,
            addr,
            caps,
            counter: 0,
            routers: HashMap::new(),
            transports: HashMap::new(),
            plain: HashMap::new(),
            scratch: Vec::with_capacity(1500),
            producers: HashMap::new(),
            consumers: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            stats: EngineStats::default(),
            dirty: Vec::new(),
        }
    }

    pub fn run(mut self, commands: Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
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
            self.flush();
            let now = Instant::now();
            let next = self.transports.values().map(|t| t.next_timeout).min().unwrap_or(now + MAX_SLEEP);
            let wait = next.saturating_duration_since(now).clamp(Duration::from_millis(1), MAX_SLEEP);
            if self.socket.set_read_timeout(Some(wait)).is_err() {
                std::thread::sleep(wait);
            }
            match self.socket.recv_from(&mut buf) {
                Ok((n, src)) => {
                    let now = Instant::now();
                    self.on_datagram(now, src, &buf[..n]);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                // ICMP errors from a peer that went away surface here on Linux: not fatal.
                Err(e) => tracing::debug!(worker = self.index, "recv_from: {e}"),
            }
            let now = Instant::now();
            let due: Vec<TransportId> =
                self.transports.iter().filter(|(_, t)| t.next_timeout <= now).map(|(id, _)| id.clone()).collect();
            for id in due {
                if let Some(t) = self.transports.get_mut(&id) {
                    if let Err(e) = t.rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(transport = %id, "timeout: {e}");
                    }
                    self.dirty.push(id);
                }
            }
            self.flush();
            self.reap_dead();
        }
    }

    fn next_counter(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::CreateRouter { reply } => {
                let id = RouterId::new(self.index, self.next_counter());
                self.routers.insert(id.clone(), Router { transports: Vec::new() });
                let _ = reply.send(Ok(id));
            }
            Command::CloseRouter { id, reply } => {
                let result = match self.routers.remove(&id) {
                    Some(router) => {
                        for t in router.transports {
                            self.close_transport(&t);
                        }
                        Ok(())
                    }
                    None => Err(EngineError::UnknownRouter),
                };
                let _ = reply.send(result);
            }
            Command::CreateTransport { router, direction, send_caps, reply } => {
                let _ = reply.send(self.create_transport(router, direction, send_caps));
            }
            Command::ConnectTransport { id, dtls, reply } => {
                let _ = reply.send(self.connect_transport(&id, dtls));
            }
            Command::CloseTransport { id, reply } => {
                let result = if self.close_transport(&id) { Ok(()) } else { Err(EngineError::UnknownTransport) };
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
                let result = match self.producers.get_mut(&id) {
                    Some(p) => {
                        p.paused = paused;
                        let consumers = p.consumers.clone();
                        let video = p.kind == MediaKind::Video;
                        for c in consumers {
                            if let Some(c) = self.consumers.get_mut(&c) {
                                c.seq.pause();
                            }
                        }
                        if !paused && video {
                            self.request_keyframe(&id, true);
                        }
                        Ok(())
                    }
                    None => Err(EngineError::UnknownProducer),
                };
                let _ = reply.send(result);
            }
            Command::CloseProducer { id, reply } => {
                let result = if self.close_producer(&id) { Ok(()) } else { Err(EngineError::UnknownProducer) };
                let _ = reply.send(result);
            }
            Command::CreatePlainTransport { router, remote, reply } => {
                let result = match self.routers.get_mut(&router) {
                    Some(r) => {
                        self.counter += 1;
                        let id = TransportId::new(self.index, self.counter);
                        r.transports.push(id.clone());
                        self.plain.insert(id.clone(), PlainTransport { router, remote, consumers: Vec::new() });
                        Ok(id)
                    }
                    None => Err(EngineError::UnknownRouter),
                };
                let _ = reply.send(result);
            }
            Command::RequestKeyframe { id, reply } => {
                let result = if self.producers.contains_key(&id) {
                    self.request_keyframe(&id, false);
                    Ok(())
                } else {
                    Err(EngineError::UnknownProducer)
                };
                let _ = reply.send(result);
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
        router: RouterId,
        direction: Direction,
        send_caps: Option<RtpCapabilities>,
    ) -> Result<WebRtcTransportOptions, EngineError> {
        if !self.routers.contains_key(&router) {
            return Err(EngineError::UnknownRouter);
        }
        let id = TransportId::new(self.index, self.next_counter());
        let mut t = WebRtcTransport::new(id.clone(), router.clone(), direction, &self.caps, send_caps, self.addr)?;
        let options = t.options();
        self.by_ufrag.insert(t.ufrag().to_string(), id.clone());
        self.transports.insert(id.clone(), t);
        if let Some(r) = self.routers.get_mut(&router) {
            r.transports.push(id);
        }
        Ok(options)
    }

    fn connect_transport(&mut self, id: &TransportId, dtls: DtlsParameters) -> Result<(), EngineError> {
        let t = self.transports.get_mut(id).ok_or(EngineError::UnknownTransport)?;
        let fp = dtls
            .fingerprints
            .iter()
            .find(|f| f.algorithm.eq_ignore_ascii_case("sha-256"))
            .or(dtls.fingerprints.first())
            .ok_or_else(|| EngineError::Invalid("dtlsParameters has no fingerprint".into()))?;
        let text = format!("{} {}", fp.algorithm.to_ascii_lowercase(), fp.value);
        let fingerprint: Fingerprint =
            text.parse().map_err(|_| EngineError::Invalid(format!("unreadable DTLS fingerprint {:?}", fp.value)))?;
        // The client as DTLS server makes us the client; `client` or `auto` (Chrome) make us server.
        let client_is_server = dtls.role == Some(DtlsRole::Server);
        t.connect(fingerprint, client_is_server)?;
        let _ = t.rtc.handle_input(Input::Timeout(Instant::now()));
        self.dirty.push(id.clone());
        Ok(())
    }

    fn produce(&mut self, tid: &TransportId, kind: MediaKind, params: RtpParameters) -> Result<ProducerId, EngineError> {
        let mapping = ortc::map_producer_codecs(&self.caps, kind, &params)?;
        let enc = params.encodings.first().ok_or_else(|| EngineError::Invalid("no encodings".into()))?;
        let ssrc = enc.ssrc.ok_or_else(|| EngineError::Invalid("encodings[0].ssrc is required (no simulcast yet)".into()))?;
        let rtx = enc.rtx.map(|r| Ssrc::from(r.ssrc));
        let mid_text = params.mid.clone().ok_or_else(|| EngineError::Invalid("rtpParameters.mid is required".into()))?;
        if mid_text.is_empty() || mid_text.len() > 16 {
            return Err(EngineError::Invalid("rtpParameters.mid must be 1 to 16 characters".into()));
        }
        let id = ProducerId::new(self.index, self.next_counter());
        let t = self.transports.get_mut(tid).ok_or(EngineError::UnknownTransport)?;
        if t.direction != Direction::Send {
            return Err(EngineError::WrongDirection(Direction::Send));
        }
        if t.producers.iter().any(|p| self.producers.get(p).is_some_and(|p| *p.ssrc == ssrc)) {
            return Err(EngineError::Invalid(format!("ssrc {ssrc} is already produced on this transport")));
        }
        if let Some(m) = mapping.iter().find(|m| !t.knows_pt(m.client_pt)) {
            return Err(EngineError::Invalid(format!(
                "payload type {} is not in the rtpCapabilities given at createTransport",
                m.client_pt
            )));
        }
        let replay = t.thaw(&params.header_extensions)?;
        let mid: Mid = mid_text.as_str().into();
        {
            let mut api = t.rtc.direct_api();
            let str_kind = if kind == MediaKind::Audio { StrMediaKind::Audio } else { StrMediaKind::Video };
            api.declare_media(mid, str_kind);
            api.expect_stream_rx(Ssrc::from(ssrc), rtx, mid, None);
        }
        t.producers.push(id.clone());
        let router = t.router.clone();
        self.producers.insert(
            id.clone(),
            Producer {
                transport: tid.clone(),
                router,
                kind,
                ssrc: Ssrc::from(ssrc),
                cname: params.rtcp.cname.clone(),
                pt_map: mapping.iter().map(|m| (m.client_pt, m.router_pt)).collect(),
                router_pts: mapping.iter().map(|m| m.router_pt).collect(),
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
        if self.plain.contains_key(tid) {
            return self.consume_plain(tid, pid, caps);
        }
        let id = ConsumerId::new(self.index, self.next_counter());
        let p = self.producers.get(pid).ok_or(EngineError::UnknownProducer)?;
        let t = self.transports.get_mut(tid).ok_or(EngineError::UnknownTransport)?;
        if t.direction != Direction::Recv {
            return Err(EngineError::WrongDirection(Direction::Recv));
        }
        if t.router != p.router {
            return Err(EngineError::OtherRouter);
        }
        let ssrc = fastrand::u32(100_000_000..=999_999_999);
        let mut params = ortc::consumer_rtp_parameters(&self.caps, p.kind, &p.router_pts, caps, ssrc, p.cname.clone())?;
        let mid_text = t.next_mid.to_string();
        t.next_mid += 1;
        params.mid = Some(mid_text.clone());
        let mid: Mid = mid_text.as_str().into();
        let rtx = params.encodings[0].rtx.map(|r| Ssrc::from(r.ssrc)); // one encoding, built above
        {
            let mut api = t.rtc.direct_api();
            let str_kind = if p.kind == MediaKind::Audio { StrMediaKind::Audio } else { StrMediaKind::Video };
            api.declare_media(mid, str_kind);
            api.declare_stream_tx(Ssrc::from(ssrc), rtx, mid, None);
        }
        t.consumers.push(id.clone());
        let kind = p.kind;
        Ok(self.add_consumer(id, pid, tid, kind, Ssrc::from(ssrc), mid, params))
    }

    /// Registers a consumer (paused) with its producer; returns what the client needs.
    #[allow(clippy::too_many_arguments)]
    fn add_consumer(
        &mut self,
        id: ConsumerId,
        pid: &ProducerId,
        tid: &TransportId,
        kind: MediaKind,
        ssrc: Ssrc,
        mid: Mid,
        params: RtpParameters,
    ) -> ConsumerOptions {
        let plain = self.plain.contains_key(tid);
        let consumer = Consumer {
            producer: pid.clone(),
            transport: tid.clone(),
            kind,
            ssrc,
            mid,
            pts: params.codecs.iter().filter(|c| !c.is_rtx()).map(|c| c.payload_type).collect(),
            paused: true,
            seq: SeqRewriter::new(fastrand::u16(1000..30000)),
            mime: params.codecs.first().map(|c| c.mime_type.clone()).unwrap_or_default(),
            awaiting_keyframe: plain && kind == MediaKind::Video,
        };
        self.consumers.insert(id.clone(), consumer);
        if let Some(p) = self.producers.get_mut(pid) {
            p.consumers.push(id.clone());
        }
        ConsumerOptions { id, producer_id: pid.clone(), kind, rtp_parameters: params }
    }

    /// A consumer on a plain transport: same rewriting, raw RTP out, video held until a keyframe.
    fn consume_plain(&mut self, tid: &TransportId, pid: &ProducerId, caps: &RtpCapabilities) -> Result<ConsumerOptions, EngineError> {
        let id = ConsumerId::new(self.index, self.next_counter());
        let p = self.producers.get(pid).ok_or(EngineError::UnknownProducer)?;
        let t = self.plain.get_mut(tid).ok_or(EngineError::UnknownTransport)?;
        if t.router != p.router {
            return Err(EngineError::OtherRouter);
        }
        let ssrc = fastrand::u32(100_000_000..=999_999_999);
        let mut params = ortc::consumer_rtp_parameters(&self.caps, p.kind, &p.router_pts, caps, ssrc, p.cname.clone())?;
        // Plain RTP: no retransmissions, no header extensions.
        params.codecs.retain(|c| !c.is_rtx());
        params.header_extensions.clear();
        params.encodings[0].rtx = None; // one encoding, built above
        t.consumers.push(id.clone());
        let kind = p.kind;
        Ok(self.add_consumer(id, pid, tid, kind, Ssrc::from(ssrc), Mid::from("plain"), params))
    }

    fn set_consumer_paused(&mut self, id: &ConsumerId, paused: bool) -> Result<(), EngineError> {
        let c = self.consumers.get_mut(id).ok_or(EngineError::UnknownConsumer)?;
        if c.paused == paused {
            return Ok(());
        }
        c.paused = paused;
        if paused {
            c.seq.pause();
            return Ok(());
        }
        let (producer, transport, video) = (c.producer.clone(), c.transport.clone(), c.kind == MediaKind::Video);
        // A keyframe sent before the consumer's transport is up is wasted (and the throttle would
        // then swallow the consumer's own requests): wait for Connected in that case.
        let connected = self.plain.contains_key(&transport) || self.transports.get(&transport).is_some_and(|t| t.is_connected());
        if video && connected {
            self.request_keyframe(&producer, true);
        }
        Ok(())
    }

    fn request_keyframe(&mut self, pid: &ProducerId, force: bool) {
        let now = Instant::now();
        let Some(p) = self.producers.get_mut(pid) else { return };
        if p.kind != MediaKind::Video {
            return;
        }
        if !force && p.last_keyframe_request.is_some_and(|l| now.duration_since(l) < KEYFRAME_THROTTLE) {
            return;
        }
        p.last_keyframe_request = Some(now);
        let (ssrc, tid) = (p.ssrc, p.transport.clone());
        if let Some(t) = self.transports.get_mut(&tid) {
            if let Some(rx) = t.rtc.direct_api().stream_rx(&ssrc) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                self.stats.keyframe_requests += 1;
            }
            let _ = t.rtc.handle_input(Input::Timeout(now));
            self.dirty.push(tid);
        }
    }

    fn close_consumer(&mut self, id: &ConsumerId) {
        if let Some(c) = self.consumers.remove(id) {
            if let Some(p) = self.producers.get_mut(&c.producer) {
                p.consumers.retain(|x| x != id);
            }
            if let Some(t) = self.transports.get_mut(&c.transport) {
                t.consumers.retain(|x| x != id);
            }
            if let Some(t) = self.plain.get_mut(&c.transport) {
                t.consumers.retain(|x| x != id);
            }
        }
    }

    fn close_producer(&mut self, id: &ProducerId) -> bool {
        let Some(p) = self.producers.remove(id) else { return false };
        for c in &p.consumers {
            self.close_consumer(c);
        }
        if let Some(t) = self.transports.get_mut(&p.transport) {
            t.producers.retain(|x| x != id);
        }
        true
    }

    fn close_transport(&mut self, id: &TransportId) -> bool {
        if let Some(t) = self.plain.remove(id) {
            for c in &t.consumers {
                self.close_consumer(c);
            }
            if let Some(r) = self.routers.get_mut(&t.router) {
                r.transports.retain(|x| x != id);
            }
            return true;
        }
        let Some(t) = self.transports.remove(id) else { return false };
        for p in &t.producers {
            self.close_producer(p);
        }
        for c in &t.consumers {
            self.close_consumer(c);
        }
        self.by_ufrag.remove(t.ufrag());
        self.by_addr.retain(|_, tid| tid != id);
        if let Some(r) = self.routers.get_mut(&t.router) {
            r.transports.retain(|x| x != id);
        }
        true
    }

    /// Closes transports whose ICE or DTLS has failed for good.
    fn reap_dead(&mut self) {
        let dead: Vec<TransportId> =
            self.transports.iter().filter(|(_, t)| !t.rtc.is_alive()).map(|(id, _)| id.clone()).collect();
        for id in dead {
            tracing::info!(transport = %id, "transport disconnected; closing it");
            self.close_transport(&id);
        }
    }

    /// udp_mux: find the transport by STUN username on first contact, then by source address.
    fn on_datagram(&mut self, now: Instant, src: SocketAddr, data: &[u8]) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += data.len() as u64;
        let mut target = None;
        if data.len() >= 20 && data[0] < 2 {
            if let Ok(msg) = StunMessage::parse(data) {
                if msg.is_binding_request() {
                    if let Some((local, remote)) = msg.split_username() {
                        if let Some(id) = self.by_ufrag.get(local).cloned() {
                            if let Some(t) = self.transports.get_mut(&id) {
                                if !t.sniffed && !t.frozen {
                                    // ICE-lite answers only once it knows the remote ufrag, and
                                    // mediasoup-client never sends it: take it from the request.
                                    t.rtc.direct_api().set_remote_ice_credentials(IceCreds {
                                        ufrag: remote.to_string(),
                                        pass: String::new(),
                                    });
                                    t.sniffed = true;
                                }
                                self.by_addr.insert(src, id.clone());
                                target = Some(id);
                            }
                        }
                    }
                }
            }
        }
        let Some(id) = target.or_else(|| self.by_addr.get(&src).cloned()) else {
            self.stats.datagrams_dropped += 1;
            return;
        };
        let Some(t) = self.transports.get_mut(&id) else { return };
        if t.frozen {
            t.buffer(src, data);
            return;
        }
        let input = match Receive::new(Protocol::Udp, src, self.addr, data) {
            Ok(r) => Input::Receive(now, r),
            Err(_) => {
                self.stats.datagrams_dropped += 1;
                return;
            }
        };
        if let Err(e) = t.rtc.handle_input(input) {
            self.stats.datagrams_dropped += 1;
            tracing::debug!(transport = %id, "input: {e}");
        }
        self.dirty.push(id);
        self.flush();
    }

    /// Polls every transport marked dirty until none is left.
    fn flush(&mut self) {
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

    fn poll(&mut self, id: &TransportId) {
        let mut events = Vec::new();
        {
            let Worker { transports, socket, stats, .. } = self;
            let Some(t) = transports.get_mut(id) else { return };
            loop {
                match t.rtc.poll_output() {
                    Ok(Output::Timeout(at)) => {
                        t.next_timeout = at;
                        break;
                    }
                    Ok(Output::Transmit(tx)) => {
                        stats.packets_out += 1;
                        stats.bytes_out += tx.contents.len() as u64;
                        if let Err(e) = socket.send_to(&tx.contents, tx.destination) {
                            tracing::debug!(transport = %id, "send_to {}: {e}", tx.destination);
                        }
                    }
                    Ok(Output::Event(e)) => events.push(e),
                    Err(e) => {
                        tracing::debug!(transport = %id, "poll_output: {e}");
                        t.next_timeout = Instant::now() + Duration::from_millis(50);
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
            Event::RtpPacket(p) => self.forward(tid, p),
            Event::KeyframeRequest(r) => {
                let producer = self.transports.get(tid).and_then(|t| {
                    t.consumers.iter().filter_map(|c| self.consumers.get(c)).find(|c| c.mid == r.mid).map(|c| c.producer.clone())
                });
                if let Some(p) = producer {
                    self.request_keyframe(&p, false);
                }
            }
            Event::Connected => {
                tracing::debug!(transport = %tid, "DTLS connected");
                let producers: Vec<ProducerId> = self
                    .transports
                    .get(tid)
                    .map(|t| {
                        t.consumers
                            .iter()
                            .filter_map(|c| self.consumers.get(c))
                            .filter(|c| !c.paused && c.kind == MediaKind::Video)
                            .map(|c| c.producer.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                for p in producers {
                    self.request_keyframe(&p, true);
                }
            }
            Event::IceConnectionStateChange(state) => tracing::debug!(transport = %tid, ?state, "ICE state"),
            _ => {}
        }
    }

    /// Fan-out of one producer packet to its consumers (SSRC, PT and sequence rewritten).
    fn forward(&mut self, tid: &TransportId, packet: RtpPacket) {
        let Some(t) = self.transports.get(tid) else { return };
        let Some(pid) = t.producers.iter().find(|p| self.producers.get(*p).is_some_and(|p| p.ssrc == packet.header.ssrc)).cloned()
        else {
            return;
        };
        let Some(producer) = self.producers.get(&pid) else { return };
        if producer.paused {
            return;
        }
        let Some(&router_pt) = producer.pt_map.get(&*packet.header.payload_type) else { return };
        let video = producer.kind == MediaKind::Video;
        let consumers = producer.consumers.clone();
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let seq = *packet.seq_no;
        let mut want_keyframe = false;
        for cid in consumers {
            let Some(c) = self.consumers.get_mut(&cid) else { continue };
            if c.paused || !c.pts.contains(&router_pt) {
                continue;
            }
            if let Some(plain) = self.plain.get(&c.transport) {
                if c.awaiting_keyframe {
                    if !starts_keyframe(&c.mime, &packet.payload) {
                        want_keyframe = true;
                        continue;
                    }
                    c.awaiting_keyframe = false;
                }
                if packet.payload.is_empty() {
                    c.seq.skip(seq);
                    continue;
                }
                let Some(out) = c.seq.rewrite(seq) else { continue };
                rtp_packet(router_pt, out as u16, packet.header.timestamp, *c.ssrc, packet.header.marker, &packet.payload, &mut self.scratch);
                match self.socket.send_to(&self.scratch, plain.remote) {
                    Ok(n) => {
                        self.stats.packets_out += 1;
                        self.stats.bytes_out += n as u64;
                        self.stats.rtp_forwarded += 1;
                    }
                    Err(e) => tracing::debug!(consumer = %cid, "plain send: {e}"),
                }
                continue;
            }
            let Some(t) = self.transports.get_mut(&c.transport) else { continue };
            if !t.is_connected() {
                continue; // do not burn sequence numbers before SRTP is up
            }
            if packet.payload.is_empty() {
                c.seq.skip(seq);
                continue;
            }
            let Some(out) = c.seq.rewrite(seq) else { continue };
            let mut api = t.rtc.direct_api();
            let Some(tx) = api.stream_tx(&c.ssrc) else { continue };
            tx.write_rtp(
                RtpWrite::new(Pt::from(router_pt), out.into(), packet.header.timestamp, packet.timestamp, packet.payload.clone())
                    .marker(packet.header.marker)
                    .ext_vals(ext.clone())
                    .nackable(video),
            );
            let _ = t.rtc.handle_input(Input::Timeout(Instant::now()));
            self.stats.rtp_forwarded += 1;
            self.dirty.push(c.transport.clone());
        }
        if want_keyframe {
            self.request_keyframe(&pid, false);
        }
    }
}
