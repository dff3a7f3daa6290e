//! A live worker for the datagram target: one router with a publisher (Opus and VP8 on a send
//! transport), a subscriber consuming both (recv transport), a plain transport recording both,
//! and a WebRTC transport nobody connected yet (its DTLS handshake is the fuzzer's). Built once
//! per process (and again now and then), deterministically: `fastrand` is seeded, so ufrags,
//! passwords, SSRCs and sequence numbers are the same in every process, and after the DTLS
//! handshake both peers switch to the known SRTP keys of [`crate::srtp`], so datagrams recorded
//! in one process (the seed corpus) authenticate in another.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sfu::ortc::{default_media_codecs, router_rtp_capabilities};
use sfu::rtp_parameters::{DtlsFingerprint, DtlsParameters, DtlsRole, MediaKind};
use sfu::worker::{Footprint, Worker, WorkerConfig};
use sfu::{ConsumerId, Direction, EngineConfig, EngineEvent, ProducerId, RouterId, TransportId};
use str0m::crypto::dtls::KeyingMaterial;
use str0m::Event;
use testpeer::{expect_consumer, produce_parameters, send_rtp_capabilities, ClientTransport, Track};

use crate::srtp::{Srtp, MATERIAL, PROFILE};

/// `fastrand`'s seed for every world.
pub const SEED: u64 = 0x0a70_3e16;
pub const SERVER: &str = "198.18.0.1:40000";
pub const PUBLISHER: &str = "198.18.1.1:50000";
pub const SUBSCRIBER: &str = "198.18.1.2:50000";
/// Where the unconnected transport's peer would be.
pub const NEWCOMER: &str = "198.18.1.3:50000";
pub const RECORDER: &str = "198.18.0.50:5004";
/// The fingerprint given for the unconnected transport (no certificate has it).
const NEWCOMER_FINGERPRINT: &str = "sha-256";

/// Simulated time per step (the one-way delay of the simulated network).
pub const STEP: Duration = Duration::from_millis(1);

/// One peer of the world: its client Rtc and what the fuzz target needs to speak for it.
pub struct Peer {
    pub client: ClientTransport,
    pub id: TransportId,
    pub addr: SocketAddr,
    pub ufrag: String,
    pub password: String,
    /// Encrypts as the peer does (left half of the known keys).
    pub srtp: Srtp,
    pub connected: bool,
    pub received: u64,
    pub keyframe_requests: u64,
}

/// A transport with no client: the fuzzer's STUN and DTLS go there.
pub struct Newcomer {
    pub id: TransportId,
    pub ufrag: String,
    pub password: String,
    /// Whether an input touched it since it was (re)created.
    pub touched: bool,
    /// Whether the worker closed it.
    pub closed: bool,
    /// Inputs that used it.
    pub uses: u32,
}

pub struct World {
    pub now: Instant,
    pub worker: Worker,
    pub router: RouterId,
    pub publisher: Peer,
    pub subscriber: Peer,
    pub tracks: Vec<(Track, ProducerId)>,
    /// Consumers on the subscriber's transport: (id, SSRC, kind).
    pub consumers: Vec<(ConsumerId, u32, MediaKind)>,
    pub plain: TransportId,
    pub plain_consumers: Vec<ConsumerId>,
    pub newcomer: Newcomer,
    /// Datagrams the clients sent the worker while the world was built (STUN, DTLS, SRTP and
    /// SRTCP with the known keys): the fuzz target replays and mutates them.
    pub captured: Vec<(SocketAddr, Vec<u8>)>,
    /// The first of `captured` sent with the known keys.
    pub keys_from: usize,
    pub events: Vec<EngineEvent>,
    /// Whether a transport closed (then the world is built again).
    pub broken: bool,
    /// The footprint right after building: what every input must come back to.
    pub baseline: Footprint,
    /// When the world was built.
    pub born: Instant,
    pub capture: bool,
    /// What the input being run may still spend: milliseconds of jumps, steps.
    pub budget: (u64, u32),
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a literal address")
}

/// A transport on `router` and its in-memory client at `local`, connected with
/// `connectTransport` (as `testpeer::sim::Sim::client`, keeping the ICE credentials).
fn peer(worker: &mut Worker, now: Instant, router: &RouterId, direction: Direction, local: SocketAddr) -> Peer {
    let send = direction == Direction::Send;
    let caps = send.then(|| send_rtp_capabilities(worker.rtp_capabilities()));
    let options = worker.create_webrtc_transport(now, router, direction, caps).expect("transport");
    let (ufrag, password) = (options.ice_parameters.username_fragment.clone(), options.ice_parameters.password.clone());
    let id = options.id.clone();
    let json = serde_json::to_value(&options).expect("options serialise");
    let (client, dtls) = ClientTransport::in_memory(&json, send, false, local, now).expect("client");
    worker.connect_transport(&id, &serde_json::from_value(dtls).expect("dtls parameters")).expect("connect");
    Peer { client, id, addr: local, ufrag, password, srtp: Srtp::new(true), connected: false, received: 0, keyframe_requests: 0 }
}

impl World {
    /// Builds the world; `capture` keeps the clients' datagrams (for the seed corpus and the
    /// target's replays).
    pub fn build(capture: bool) -> World {
        fastrand::seed(SEED);
        let caps = router_rtp_capabilities(&default_media_codecs()).expect("default codecs");
        let now = Instant::now();
        let config = WorkerConfig {
            index: 0,
            addr: addr(SERVER),
            caps: Arc::new(caps),
            nack_history: EngineConfig::DEFAULT_NACK_HISTORY,
            idle_timeout: EngineConfig::DEFAULT_IDLE_TIMEOUT,
            tcp: false,
            downlink_bwe: true,
        };
        let mut worker = Worker::new(config, now);
        let router = worker.create_router();
        let mut publisher = peer(&mut worker, now, &router, Direction::Send, addr(PUBLISHER));
        let mut tracks = Vec::new();
        for (mid, kind) in [("0", MediaKind::Audio), ("1", MediaKind::Video)] {
            let mut track = Track::new(kind, mid);
            track.record = false;
            let params = produce_parameters(kind, mid, track.ssrc);
            let pid = worker.produce(now, &publisher.id, kind, params).expect("produce");
            track.declare(&mut publisher.client);
            tracks.push((track, pid));
        }
        let mut subscriber = peer(&mut worker, now, &router, Direction::Recv, addr(SUBSCRIBER));
        let caps = worker.rtp_capabilities().clone();
        let mut consumers = Vec::new();
        for (_, pid) in &tracks {
            let options = worker.consume(&subscriber.id, pid, &caps).expect("consume");
            let json: Value = serde_json::to_value(&options).expect("consumer options serialise");
            let (ssrc, kind) = expect_consumer(&mut subscriber.client, &json).expect("consumer");
            worker.set_consumer_paused(now, &options.id, false).expect("resume");
            consumers.push((options.id, ssrc, kind));
        }
        let plain = worker.create_plain_transport(&router, addr(RECORDER)).expect("plain transport");
        let mut plain_consumers = Vec::new();
        for (_, pid) in &tracks {
            let c = worker.consume(&plain, pid, &caps).expect("plain consume").id;
            worker.set_consumer_paused(now, &c, false).expect("resume");
            plain_consumers.push(c);
        }
        let newcomer = Self::newcomer(&mut worker, now, &router);
        let mut w = World {
            now,
            worker,
            router,
            publisher,
            subscriber,
            tracks,
            consumers,
            plain,
            plain_consumers,
            newcomer,
            captured: Vec::new(),
            keys_from: 0,
            events: Vec::new(),
            broken: false,
            baseline: Footprint::default(),
            born: now,
            capture,
            budget: (0, 0),
        };
        let connected = w.run_until(Duration::from_secs(10), |w| w.publisher.connected && w.subscriber.connected);
        assert!(connected, "the world's peers connect");
        // From here on both ends use the known keys.
        for peer in [&mut w.publisher, &mut w.subscriber] {
            assert!(w.worker.fuzz_set_srtp_keys(&peer.id, &MATERIAL, PROFILE, false));
            peer.client.rtc._set_srtp_keys(KeyingMaterial::new(&MATERIAL), PROFILE, true);
        }
        w.keys_from = w.captured.len();
        w.self_check();
        w.baseline = w.worker.fuzz_footprint();
        w
    }

    /// The unconnected transport: a receive transport whose client said it is the DTLS client
    /// (so the worker waits for a ClientHello). Its ufrag and password are the same each time.
    fn newcomer(worker: &mut Worker, now: Instant, router: &RouterId) -> Newcomer {
        let mut rng = fastrand::Rng::with_seed(SEED ^ 1);
        let saved = fastrand::get_seed();
        fastrand::seed(rng.u64(..));
        let options = worker.create_webrtc_transport(now, router, Direction::Recv, None).expect("transport");
        fastrand::seed(saved);
        let value = (0..32).map(|i| format!("{:02X}", i * 7)).collect::<Vec<_>>().join(":");
        let dtls = DtlsParameters {
            role: Some(DtlsRole::Client),
            fingerprints: vec![DtlsFingerprint { algorithm: NEWCOMER_FINGERPRINT.into(), value }],
        };
        worker.connect_transport(&options.id, &dtls).expect("connect the newcomer");
        Newcomer {
            id: options.id,
            ufrag: options.ice_parameters.username_fragment,
            password: options.ice_parameters.password,
            touched: false,
            closed: false,
            uses: 0,
        }
    }

    /// Closes the unconnected transport and makes a new one with the same credentials.
    pub fn renew_newcomer(&mut self) {
        if !self.newcomer.closed {
            self.worker.close_transport(&self.newcomer.id).expect("the newcomer is open");
        }
        self.newcomer = Self::newcomer(&mut self.worker, self.now, &self.router);
        self.drain();
    }

    /// Media flows with the known keys, and what the target forges authenticates: RTP from the
    /// publisher is forwarded, a PLI from the subscriber reaches the publisher.
    fn self_check(&mut self) {
        let before = self.worker.stats();
        let received = self.subscriber.received;
        self.run_until(Duration::from_millis(1500), |_| false);
        let after = self.worker.stats();
        assert!(after.rtp_forwarded > before.rtp_forwarded + 50, "media flows with the known keys: {after:?}");
        assert!(self.subscriber.received > received + 50, "the subscriber decrypts with the known keys");
        // Forged RTP (Opus) on the audio track's next sequence number: forwarded to both consumers.
        let (track, _) = &mut self.tracks[0];
        let seq = track.next_seq();
        track.set_next_seq(seq + 1);
        let ssrc = track.ssrc;
        let mut rtp = vec![0x80, testpeer::OPUS_PT, 0, 0, 0, 0, 0, 1];
        rtp[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
        rtp.extend_from_slice(&ssrc.to_be_bytes());
        rtp.extend_from_slice(&[0xfc, 1, 2, 3, 4, 5, 6, 7]);
        let datagram = self.publisher.srtp.protect_rtp(&rtp, (seq >> 16) as u32).expect("protect");
        let forwarded = self.worker.stats().rtp_forwarded;
        self.worker.handle_datagram(self.now, self.publisher.addr, &datagram);
        self.drain();
        assert_eq!(self.worker.stats().rtp_forwarded, forwarded + 2, "forged SRTP is forwarded");
        // A forged PLI for the video consumer, after the keyframe throttle: a keyframe request.
        self.run_until(Duration::from_millis(1100), |_| false);
        let video_ssrc = self.consumers[1].1;
        let mut pli = vec![0x81, 206, 0, 2, 0, 0, 0, 1];
        pli.extend_from_slice(&video_ssrc.to_be_bytes());
        let datagram = self.subscriber.srtp.protect_rtcp(&pli).expect("protect");
        let requests = self.worker.stats().keyframe_requests;
        self.worker.handle_datagram(self.now, self.subscriber.addr, &datagram);
        self.drain();
        assert_eq!(self.worker.stats().keyframe_requests, requests + 1, "forged SRTCP is read");
    }

    /// Steps until `done` or `limit` of simulated time.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&World) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }

    /// One step: the clients send (their tracks tick), the worker takes it and its timeouts,
    /// the clients receive; the clock moves by [`STEP`].
    pub fn step(&mut self) {
        let now = self.now;
        for (track, _) in &mut self.tracks {
            track.tick_at(&mut self.publisher.client, now);
        }
        for e in self.publisher.client.pump_at(now) {
            match e {
                Event::Connected => self.publisher.connected = true,
                Event::KeyframeRequest(_) => {
                    self.publisher.keyframe_requests += 1;
                    for (t, _) in self.tracks.iter_mut().filter(|(t, _)| t.kind == MediaKind::Video) {
                        t.force_keyframe = true;
                    }
                }
                _ => {}
            }
        }
        for e in self.subscriber.client.pump_at(now) {
            match e {
                Event::Connected => self.subscriber.connected = true,
                Event::RtpPacket(_) => self.subscriber.received += 1,
                _ => {}
            }
        }
        let server = self.worker.addr();
        for peer in [&mut self.publisher, &mut self.subscriber] {
            for (_, to, data) in peer.client.take_outgoing() {
                if to == server {
                    self.worker.handle_datagram(now, peer.addr, &data);
                    if self.capture {
                        self.captured.push((peer.addr, data));
                    }
                }
            }
        }
        self.worker.handle_timeout(now);
        self.drain();
        self.now += STEP;
    }

    /// Hands the worker's datagrams to the clients they are for and keeps its events.
    pub fn drain(&mut self) {
        let server = self.worker.addr();
        while let Some(t) = self.worker.poll_transmit() {
            if t.destination == self.publisher.addr {
                self.publisher.client.deliver(t.proto, server, t.contents);
            } else if t.destination == self.subscriber.addr {
                self.subscriber.client.deliver(t.proto, server, t.contents);
            }
        }
        while let Some(e) = self.worker.poll_event() {
            // The unconnected transport may be closed by what the fuzzer sends it (a DTLS alert
            // before the handshake): it is made again. Any other closing rebuilds the world.
            match &e {
                EngineEvent::TransportClosed { transport, .. } if *transport == self.newcomer.id => self.newcomer.closed = true,
                _ => self.broken = true,
            }
            self.events.push(e);
            if self.events.len() > 16 {
                self.events.remove(0);
            }
        }
    }

    /// What the world must look like after any input: the same objects, queues drained,
    /// bounded tables. Panics (a finding) otherwise.
    pub fn check(&self) {
        let f = self.worker.fuzz_footprint();
        let b = &self.baseline;
        if self.broken {
            return; // a transport closed (silence after a long jump in time): rebuilt next
        }
        assert_eq!(
            (f.routers, f.transports, f.producers, f.consumers),
            (b.routers, b.transports, b.producers, b.consumers),
            "objects appeared or vanished: {f:?}"
        );
        assert_eq!(
            (f.by_ufrag, f.router_entries, f.producer_consumer_entries),
            (b.by_ufrag, b.router_entries, b.producer_consumer_entries)
        );
        assert_eq!((f.dirty, f.polling, f.dead, f.transmits, f.events), (0, 0, 0, 0, 0), "queues left full: {f:?}");
        assert_eq!(f.pending, 0, "nothing is buffered once every send transport produced: {f:?}");
        assert!(f.held <= f.guards * 2, "a sequence guard holds at most CONFIRM - 1 packets: {f:?}");
        assert_eq!(f.guards, b.guards, "sequence guards are per produced SSRC: {f:?}");
        assert!(f.max_addrs_per_transport <= MAX_ADDRS, "a transport keeps at most {MAX_ADDRS} peer addresses: {f:?}");
    }
}

/// The most peer addresses the target accepts on one transport (see README: the engine's cap).
pub const MAX_ADDRS: usize = 16;
