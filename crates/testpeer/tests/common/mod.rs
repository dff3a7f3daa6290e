//! One worker in memory on a simulated clock ([`testpeer::sim::Sim`]) and Chrome-like peers:
//! the engine's behaviour without sockets or the wall clock. `udp` has the same peers over real
//! UDP against the engine's threads.
#![allow(dead_code)]

pub mod udp;

use std::time::Duration;

use serde_json::Value;
use sfu::rtp_parameters::MediaKind;
use sfu::{Direction, EngineConfig, ProducerId, RouterId, TransportId};
use str0m::Event;
use testpeer::sim::Sim;
use testpeer::{expect_consumer, produce_parameters, ClientTransport, Inbox, Track};

/// The engine's id of a transport the client knows by its string.
pub fn transport_id(id: &str) -> TransportId {
    serde_json::from_value(Value::String(id.to_string())).expect("a transport id")
}

pub fn sim() -> Sim {
    Sim::new(EngineConfig::DEFAULT_IDLE_TIMEOUT)
}

/// A publishing peer: one send transport with its tracks.
pub struct Publisher {
    pub router: RouterId,
    pub transport: ClientTransport,
    pub tracks: Vec<(Track, ProducerId)>,
    pub keyframe_requests: u32,
    pub bwe_events: u32,
    pub connected: bool,
}

impl Publisher {
    pub fn new(sim: &mut Sim, router: &RouterId) -> Publisher {
        Self::with_bwe(sim, router, true)
    }

    /// `bwe: false` turns off the client's bandwidth estimation and pacer: packets leave in bursts.
    pub fn with_bwe(sim: &mut Sim, router: &RouterId, bwe: bool) -> Publisher {
        let transport = sim.client(router, Direction::Send, bwe);
        Publisher { router: router.clone(), transport, tracks: Vec::new(), keyframe_requests: 0, bwe_events: 0, connected: false }
    }

    pub fn produce(&mut self, sim: &mut Sim, kind: MediaKind) -> ProducerId {
        let mid = self.tracks.len().to_string();
        let track = Track::new(kind, &mid);
        let params = produce_parameters(kind, &mid, track.ssrc);
        let pid = sim.worker.produce(sim.now, &transport_id(&self.transport.id), kind, params).expect("produce");
        track.declare(&mut self.transport);
        self.tracks.push((track, pid.clone()));
        pid
    }

    pub fn pump(&mut self, now: std::time::Instant) {
        for (track, _) in &mut self.tracks {
            track.tick_at(&mut self.transport, now);
        }
        for e in self.transport.pump_at(now) {
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
    /// The client's ICE connection states, in order.
    pub ice_states: Vec<str0m::IceConnectionState>,
}

impl Subscriber {
    pub fn new(sim: &mut Sim, router: &RouterId) -> Subscriber {
        Self::with_feedback(sim, router, false)
    }

    /// `feedback`: the client sends transport-cc feedback, as browsers do (the engine then
    /// estimates its downlink).
    pub fn with_feedback(sim: &mut Sim, router: &RouterId, feedback: bool) -> Subscriber {
        let transport = sim.client(router, Direction::Recv, feedback);
        Subscriber { transport, inbox: Inbox::default(), consumers: Vec::new(), ice_states: Vec::new() }
    }

    /// Consumes `producer` and resumes the consumer (as mediasoup-client's app does).
    pub fn consume(&mut self, sim: &mut Sim, producer: &ProducerId) -> Result<Value, sfu::ConsumeError> {
        let caps = sim.rtp_capabilities();
        let options = sim.worker.consume(&transport_id(&self.transport.id), producer, &caps)?;
        let cid = options.id.clone();
        let options = serde_json::to_value(&options).unwrap();
        let (ssrc, kind) = expect_consumer(&mut self.transport, &options).unwrap();
        sim.worker.set_consumer_paused(sim.now, &cid, false).unwrap();
        self.consumers.push((options.clone(), ssrc, kind));
        Ok(options)
    }

    pub fn pump(&mut self, now: std::time::Instant) {
        let events = self.transport.pump_at(now);
        for e in self.inbox.take_events(events) {
            if let Event::IceConnectionStateChange(s) = e {
                self.ice_states.push(s);
            }
        }
    }

    pub fn received(&self, kind: MediaKind) -> Vec<&testpeer::Received> {
        let ssrcs: Vec<u32> = self.consumers.iter().filter(|c| c.2 == kind).map(|c| c.1).collect();
        self.inbox.packets.iter().filter(|p| ssrcs.contains(&p.ssrc)).collect()
    }
}

/// Runs the peers and the worker for `dur` of simulated time, or until `done` says so.
pub fn run(
    sim: &mut Sim,
    pubs: &mut [&mut Publisher],
    subs: &mut [&mut Subscriber],
    dur: Duration,
    mut done: impl FnMut(&[&mut Publisher], &[&mut Subscriber]) -> bool,
) -> bool {
    let end = sim.now + dur;
    while sim.now < end {
        for p in pubs.iter_mut() {
            p.pump(sim.now);
        }
        for s in subs.iter_mut() {
            s.pump(sim.now);
        }
        {
            let mut clients: Vec<&mut ClientTransport> =
                pubs.iter_mut().map(|p| &mut p.transport).chain(subs.iter_mut().map(|s| &mut s.transport)).collect();
            sim.step(&mut clients);
        }
        if done(pubs, subs) {
            return true;
        }
    }
    false
}

/// A router with A publishing one `kind` track and B consuming it, both connected.
pub fn connected_pair(sim: &mut Sim, kind: MediaKind) -> (Publisher, Subscriber) {
    let router = sim.worker.create_router();
    let mut a = Publisher::new(sim, &router);
    let p = a.produce(sim, kind);
    let mut b = Subscriber::new(sim, &router);
    b.consume(sim, &p).unwrap();
    let connected = run(sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(10), |p, s| p[0].connected && s[0].inbox.connected);
    assert!(connected, "both transports connect");
    (a, b)
}
