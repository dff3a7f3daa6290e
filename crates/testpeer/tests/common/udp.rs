//! The engine on its threads over real UDP on loopback (two workers), and Chrome-like peers:
//! for the tests of the socket layer and of the worker threads.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;
use sfu::rtp_parameters::MediaKind;
use sfu::{Direction, Engine, EngineConfig, ProducerId, RouterId, TransportId};
use str0m::Event;
use testpeer::{expect_consumer, produce_parameters, send_rtp_capabilities, ClientTransport, Inbox, Track};

/// The engine's id of a transport the client knows by its string.
pub fn transport_id(id: &str) -> TransportId {
    serde_json::from_value(Value::String(id.to_string())).expect("a transport id")
}

pub fn engine() -> Engine {
    engine_with_idle_timeout(EngineConfig::DEFAULT_IDLE_TIMEOUT)
}

pub fn engine_with_idle_timeout(idle_timeout: Duration) -> Engine {
    Engine::start(EngineConfig {
        workers: 2,
        listen_ip: "127.0.0.1".parse().unwrap(),
        announced_ip: "127.0.0.1".parse().unwrap(),
        base_port: 0,
        media_codecs: sfu::ortc::default_media_codecs(),
        nack_history: EngineConfig::DEFAULT_NACK_HISTORY,
        idle_timeout,
        tcp: true,
        downlink_bwe: true,
    })
    .expect("engine starts")
}

/// A publishing peer: one send transport with its tracks.
pub struct Publisher {
    pub transport: ClientTransport,
    pub tracks: Vec<(Track, ProducerId)>,
    pub keyframe_requests: u32,
    pub bwe_events: u32,
    pub connected: bool,
}

impl Publisher {
    pub async fn new(engine: &Engine, router: &RouterId) -> Publisher {
        Self::with_bwe(engine, router, true).await
    }

    /// `bwe: false` turns off the client's bandwidth estimation and pacer: packets leave in bursts.
    pub async fn with_bwe(engine: &Engine, router: &RouterId, bwe: bool) -> Publisher {
        let caps = send_rtp_capabilities(engine.rtp_capabilities());
        let options = engine.create_webrtc_transport(router.clone(), Direction::Send, Some(caps)).await.unwrap();
        let options = serde_json::to_value(&options).unwrap();
        let (transport, dtls) = ClientTransport::with_bwe(&options, true, bwe).unwrap();
        let tid = serde_json::from_value(options["id"].clone()).unwrap();
        engine.connect_transport(tid, serde_json::from_value(dtls).unwrap()).await.unwrap();
        Publisher { transport, tracks: Vec::new(), keyframe_requests: 0, bwe_events: 0, connected: false }
    }

    pub async fn produce(&mut self, engine: &Engine, kind: MediaKind) -> ProducerId {
        let mid = self.tracks.len().to_string();
        let track = Track::new(kind, &mid);
        let params = produce_parameters(kind, &mid, track.ssrc);
        let tid = transport_id(&self.transport.id);
        let pid = engine.produce(tid, kind, params).await.expect("produce");
        track.declare(&mut self.transport);
        self.tracks.push((track, pid.clone()));
        pid
    }

    pub fn pump(&mut self) {
        for (track, _) in &mut self.tracks {
            track.tick(&mut self.transport);
        }
        for e in self.transport.pump() {
            match e {
                Event::KeyframeRequest(_) => self.keyframe_requests += 1,
                Event::EgressBitrateEstimate(_) => self.bwe_events += 1,
                Event::Connected => self.connected = true,
                _ => {}
            }
        }
    }

    pub fn sent(&self, kind: MediaKind) -> &[Vec<u8>] {
        self.tracks.iter().find(|(t, _)| t.kind == kind).map(|(t, _)| t.sent.as_slice()).unwrap_or(&[])
    }
}

/// A receiving peer: one recv transport, its consumers.
pub struct Subscriber {
    pub transport: ClientTransport,
    pub inbox: Inbox,
    /// (consumer options JSON, consumer ssrc, kind)
    pub consumers: Vec<(Value, u32, MediaKind)>,
}

impl Subscriber {
    pub async fn new(engine: &Engine, router: &RouterId) -> Subscriber {
        let options = engine.create_webrtc_transport(router.clone(), Direction::Recv, None).await.unwrap();
        let options = serde_json::to_value(&options).unwrap();
        let (transport, dtls) = ClientTransport::new(&options, false).unwrap();
        let tid = serde_json::from_value(options["id"].clone()).unwrap();
        engine.connect_transport(tid, serde_json::from_value(dtls).unwrap()).await.unwrap();
        Subscriber { transport, inbox: Inbox::default(), consumers: Vec::new() }
    }

    pub async fn consume(&mut self, engine: &Engine, producer: &ProducerId) -> Result<Value, sfu::ConsumeError> {
        let tid = transport_id(&self.transport.id);
        let options = engine.consume(tid, producer.clone(), engine.rtp_capabilities().clone()).await?;
        let cid = options.id.clone();
        let options = serde_json::to_value(&options).unwrap();
        let (ssrc, kind) = expect_consumer(&mut self.transport, &options).unwrap();
        engine.resume_consumer(cid).await.unwrap();
        self.consumers.push((options.clone(), ssrc, kind));
        Ok(options)
    }

    pub fn pump(&mut self) {
        let events = self.transport.pump();
        self.inbox.take_events(events);
    }

    pub fn received(&self, kind: MediaKind) -> Vec<&testpeer::Received> {
        let ssrcs: Vec<u32> = self.consumers.iter().filter(|c| c.2 == kind).map(|c| c.1).collect();
        self.inbox.packets.iter().filter(|p| ssrcs.contains(&p.ssrc)).collect()
    }
}

/// Pumps the peers for `dur`, or until `done` says so.
pub fn run(
    pubs: &mut [&mut Publisher],
    subs: &mut [&mut Subscriber],
    dur: Duration,
    mut done: impl FnMut(&[&mut Publisher], &[&mut Subscriber]) -> bool,
) -> bool {
    let end = Instant::now() + dur;
    while Instant::now() < end {
        for p in pubs.iter_mut() {
            p.pump();
        }
        for s in subs.iter_mut() {
            s.pump();
        }
        if done(pubs, subs) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// A router with A publishing one `kind` track and B consuming it, both connected.
pub async fn connected_pair(engine: &Engine, kind: MediaKind) -> (Publisher, Subscriber) {
    let router = engine.create_router().await.unwrap();
    let mut a = Publisher::new(engine, &router).await;
    let p = a.produce(engine, kind).await;
    let mut b = Subscriber::new(engine, &router).await;
    b.consume(engine, &p).await.unwrap();
    let connected = run(&mut [&mut a], &mut [&mut b], Duration::from_secs(10), |p, s| p[0].connected && s[0].inbox.connected);
    assert!(connected, "both transports connect");
    (a, b)
}
