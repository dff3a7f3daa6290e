//! Transports the engine closes on its own: a peer gone silent, a peer that closed DTLS. Each
//! is said once among the worker's events, with the producers that went with it; transports
//! never contacted are left alone. In memory, on a simulated clock: the idle timeout is the
//! engine's default (30 s) and the test still takes well under a second.
mod common;

use std::time::Duration;

use std::time::Instant;

use common::{connected_pair, run, sim, transport_id, Publisher, Subscriber};
use sfu::rtp_parameters::MediaKind;
use sfu::{CloseReason, Direction, EngineConfig, EngineEvent};
use testpeer::sim::{Sim, STEP};

const IDLE: Duration = EngineConfig::DEFAULT_IDLE_TIMEOUT;

#[test]
fn a_silent_publisher_is_closed_with_its_producers() {
    let mut sim = sim();
    let (mut a, mut b) = connected_pair(&mut sim, MediaKind::Video);
    run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_millis(500), |_, _| false);
    assert!(!b.received(MediaKind::Video).is_empty(), "media flows first");
    let producer = a.tracks[0].1.clone();
    assert!(sim.events.is_empty(), "{:?}", sim.events);

    // A goes silent (its process froze, its network went away): nothing more is sent. B talks on.
    let silent_since = sim.now;
    let closed = run_until_event(&mut sim, &mut [], &mut [&mut b], IDLE * 2).expect("the worker says it closed A's transport");
    let after = closed - silent_since;
    assert_eq!(
        sim.events,
        vec![EngineEvent::TransportClosed {
            router: a.router.clone(),
            transport: transport_id(&a.transport.id),
            producers: vec![producer],
            consumers: vec![],
            reason: CloseReason::Silent
        }]
    );
    assert!(after > IDLE && after <= IDLE + Duration::from_millis(600), "closed after {after:?} of silence (idle timeout {IDLE:?})");
    let stats = sim.worker.stats();
    assert_eq!((stats.transports, stats.producers, stats.consumers), (1, 0, 0), "A's producer and B's consumer of it are gone, B stays");
}

/// Runs the peers and the worker until the worker reports an event; when it did.
fn run_until_event(sim: &mut Sim, pubs: &mut [&mut Publisher], subs: &mut [&mut Subscriber], within: Duration) -> Option<Instant> {
    let seen = sim.events.len();
    let end = sim.now + within;
    while sim.now < end {
        run(sim, pubs, subs, STEP, |_, _| false);
        if sim.events.len() > seen {
            return Some(sim.now);
        }
    }
    None
}

#[test]
fn a_peer_closing_dtls_is_closed_at_once() {
    let mut sim = sim();
    let (mut a, mut b) = connected_pair(&mut sim, MediaKind::Audio);
    // B closes its PeerConnection: str0m sends RTCP BYE and DTLS close_notify.
    b.transport.rtc.close().unwrap();
    let closed_at = sim.now;
    let heard = run_until_event(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(2)).expect("B's transport is closed");
    assert!(heard - closed_at < Duration::from_millis(100), "closed {:?} after the peer's close", heard - closed_at);
    let consumer: sfu::ConsumerId = serde_json::from_value(b.consumers[0].0["id"].clone()).unwrap();
    assert_eq!(
        sim.events,
        vec![EngineEvent::TransportClosed {
            router: a.router.clone(),
            transport: transport_id(&b.transport.id),
            producers: vec![],
            consumers: vec![consumer],
            reason: CloseReason::PeerClosed
        }]
    );
    let stats = sim.worker.stats();
    assert_eq!((stats.transports, stats.producers, stats.consumers), (1, 1, 0), "A keeps publishing; B's consumer is gone");
}

#[test]
fn transports_never_contacted_are_kept() {
    let mut sim = sim();
    let router = sim.worker.create_router();
    // mediasoup-client connects a receive transport with its first consumer, maybe much later.
    let waiting = sim.worker.create_webrtc_transport(sim.now, &router, Direction::Recv, None).unwrap();
    // B connects, then goes silent: the sweeps that close B pass over the waiting transport.
    let mut b = Subscriber::new(&mut sim, &router);
    let connected = run(&mut sim, &mut [], &mut [&mut b], Duration::from_secs(5), |_, s| s[0].inbox.connected);
    assert!(connected);
    // B stops; the simulation goes on without it for three idle timeouts.
    let mut nobody = Subscriber::new(&mut sim, &router);
    sim.events.clear();
    run(&mut sim, &mut [], &mut [&mut nobody], IDLE * 3, |_, _| false);
    let silent = |t: &sfu::TransportId| EngineEvent::TransportClosed {
        router: router.clone(),
        transport: t.clone(),
        producers: vec![],
        consumers: vec![],
        reason: CloseReason::Silent,
    };
    assert_eq!(sim.events, vec![silent(&transport_id(&b.transport.id))], "only B is closed");
    assert_eq!(sim.worker.stats().transports, 2, "{} (and the one never used) are kept", waiting.id);
}
