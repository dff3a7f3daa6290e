//! Peers wired straight to an in-process [`sfu::Engine`] (no signaling): what the engine's
//! tests and the fanout example use. A publisher is one send transport with its tracks; a
//! subscriber is one receive transport with its consumers. Both are pumped by the caller
//! ([`run`]) so tests decide when to stop.
use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use sfu::rtp_parameters::MediaKind;
use sfu::{ConsumerId, Direction, Engine, EngineConfig, ProducerId, RouterId, TransportId};
use str0m::Event;

use crate::{expect_consumer, produce_parameters, send_rtp_capabilities, ClientTransport, Inbox, Received, Track};

/// An engine on loopback with `workers` workers on free ports and the default codecs.
pub fn loopback_engine(workers: usize) -> Result<Engine, String> {
    let lo = std::net::IpAddr::from([127, 0, 0, 1]);
    Engine::start(EngineConfig {
        workers,
        listen_ip: lo,
        announced_ip: lo,
        base_port: 0,
        media_codecs: sfu::ortc::default_media_codecs(),
    })
    .map_err(|e| e.to_string())
}

fn transport_id(options: &Value) -> Result<TransportId, String> {
    serde_json::from_value(options["id"].clone()).map_err(|e| format!("transport id: {e}"))
}

/// A publishing peer: one send transport and its tracks.
pub struct Publisher {
    pub transport: ClientTransport,
    pub transport_id: TransportId,
    pub tracks: Vec<(Track, ProducerId)>,
    pub connected: bool,
}

impl Publisher {
    /// Creates and connects (DTLS parameters) a send transport, like mediasoup-client does
    /// on its first produce.
    pub async fn new(engine: &Engine, router: &RouterId) -> Result<Publisher, String> {
        let caps = send_rtp_capabilities(engine.rtp_capabilities());
        let options = engine.create_webrtc_transport(router.clone(), Direction::Send, Some(caps)).await.map_err(|e| e.to_string())?;
        let options = serde_json::to_value(&options).map_err(|e| e.to_string())?;
        let (transport, dtls) = ClientTransport::new(&options, true)?;
        let transport_id = transport_id(&options)?;
        let dtls = serde_json::from_value(dtls).map_err(|e| e.to_string())?;
        engine.connect_transport(transport_id.clone(), dtls).await.map_err(|e| e.to_string())?;
        Ok(Publisher { transport, transport_id, tracks: Vec::new(), connected: false })
    }

    /// Produces a new synthetic track of `kind` (mid = its index).
    pub async fn produce(&mut self, engine: &Engine, kind: MediaKind) -> Result<ProducerId, String> {
        let mid = self.tracks.len().to_string();
        let track = Track::new(kind, &mid);
        let params = produce_parameters(kind, &mid, track.ssrc);
        let pid = engine.produce(self.transport_id.clone(), kind, params).await.map_err(|e| e.to_string())?;
        track.declare(&mut self.transport);
        self.tracks.push((track, pid.clone()));
        Ok(pid)
    }

    /// Sends what is due, reads what arrived; keyframe requests make the next video frame a
    /// keyframe (as an encoder does).
    pub fn pump(&mut self) {
        for (track, _) in &mut self.tracks {
            track.tick(&mut self.transport);
        }
        for e in self.transport.pump() {
            match e {
                Event::KeyframeRequest(_) => {
                    for (t, _) in self.tracks.iter_mut().filter(|(t, _)| t.kind == MediaKind::Video) {
                        t.force_keyframe = true;
                    }
                }
                Event::Connected => self.connected = true,
                _ => {}
            }
        }
    }

    pub fn track(&self, kind: MediaKind) -> Option<&Track> {
        self.tracks.iter().find(|(t, _)| t.kind == kind).map(|(t, _)| t)
    }

    pub fn track_mut(&mut self, kind: MediaKind) -> Option<&mut Track> {
        self.tracks.iter_mut().find(|(t, _)| t.kind == kind).map(|(t, _)| t)
    }

    /// Payloads sent on the track of `kind`, in order.
    pub fn sent(&self, kind: MediaKind) -> &[Vec<u8>] {
        self.track(kind).map(|t| t.sent.as_slice()).unwrap_or(&[])
    }

    /// Packets of the track of `kind` that transport-cc feedback reported as received.
    pub fn twcc_acked(&self, kind: MediaKind) -> u64 {
        self.track(kind).and_then(|t| self.transport.twcc_acked.get(&t.ssrc)).copied().unwrap_or(0)
    }
}

/// One consumer as the subscriber knows it.
pub struct SubscribedConsumer {
    pub id: ConsumerId,
    pub producer: ProducerId,
    pub kind: MediaKind,
    pub ssrc: u32,
    /// The consumerOptions JSON the server returned.
    pub options: Value,
}

/// A receiving peer: one receive transport and its consumers.
pub struct Subscriber {
    pub transport: ClientTransport,
    pub transport_id: TransportId,
    pub inbox: Inbox,
    pub consumers: Vec<SubscribedConsumer>,
}

impl Subscriber {
    pub async fn new(engine: &Engine, router: &RouterId) -> Result<Subscriber, String> {
        let options = engine.create_webrtc_transport(router.clone(), Direction::Recv, None).await.map_err(|e| e.to_string())?;
        let options = serde_json::to_value(&options).map_err(|e| e.to_string())?;
        let (transport, dtls) = ClientTransport::new(&options, false)?;
        let transport_id = transport_id(&options)?;
        let dtls = serde_json::from_value(dtls).map_err(|e| e.to_string())?;
        engine.connect_transport(transport_id.clone(), dtls).await.map_err(|e| e.to_string())?;
        Ok(Subscriber { transport, transport_id, inbox: Inbox::default(), consumers: Vec::new() })
    }

    /// Consumes `producer` (paused, as the engine creates it) without resuming.
    pub async fn consume_paused(&mut self, engine: &Engine, producer: &ProducerId) -> Result<ConsumerId, String> {
        let caps = engine.rtp_capabilities().clone();
        let options = engine.consume(self.transport_id.clone(), producer.clone(), caps).await.map_err(|e| e.to_string())?;
        let id = options.id.clone();
        let json = serde_json::to_value(&options).map_err(|e| e.to_string())?;
        let (ssrc, kind) = expect_consumer(&mut self.transport, &json)?;
        self.consumers.push(SubscribedConsumer { id: id.clone(), producer: producer.clone(), kind, ssrc, options: json });
        Ok(id)
    }

    /// Consumes `producer` and resumes the consumer (what the client app does); returns the
    /// consumerOptions JSON.
    pub async fn consume(&mut self, engine: &Engine, producer: &ProducerId) -> Result<Value, String> {
        let id = self.consume_paused(engine, producer).await?;
        engine.resume_consumer(id.clone()).await.map_err(|e| e.to_string())?;
        let c = self.consumers.iter().find(|c| c.id == id).ok_or("consumer vanished")?;
        Ok(c.options.clone())
    }

    pub fn pump(&mut self) {
        let events = self.transport.pump();
        self.inbox.take_events(events);
    }

    pub fn consumer(&self, kind: MediaKind) -> Option<&SubscribedConsumer> {
        self.consumers.iter().find(|c| c.kind == kind)
    }

    /// Packets received on the consumers of `kind`.
    pub fn received(&self, kind: MediaKind) -> Vec<&Received> {
        let ssrcs: HashSet<u32> = self.consumers.iter().filter(|c| c.kind == kind).map(|c| c.ssrc).collect();
        self.inbox.packets.iter().filter(|p| ssrcs.contains(&p.ssrc)).collect()
    }
}

/// Pumps the peers for at most `limit`, until `done` says so; returns whether it did.
pub fn run(
    pubs: &mut [&mut Publisher],
    subs: &mut [&mut Subscriber],
    limit: Duration,
    mut done: impl FnMut(&[&mut Publisher], &[&mut Subscriber]) -> bool,
) -> bool {
    let end = Instant::now() + limit;
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

/// A router with A publishing one `kind` track and B consuming it (resumed), both connected.
pub async fn connected_pair(engine: &Engine, kind: MediaKind) -> Result<(RouterId, Publisher, Subscriber), String> {
    let router = engine.create_router().await.map_err(|e| e.to_string())?;
    let mut a = Publisher::new(engine, &router).await?;
    let p = a.produce(engine, kind).await?;
    let mut b = Subscriber::new(engine, &router).await?;
    b.consume(engine, &p).await?;
    let connected = run(&mut [&mut a], &mut [&mut b], Duration::from_secs(15), |p, s| p[0].connected && s[0].inbox.connected);
    if !connected {
        return Err("transports did not connect within 15 s".into());
    }
    Ok((router, a, b))
}
