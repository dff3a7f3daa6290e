//! Transports the engine closes on its own: a peer gone silent, a peer that closed DTLS. Each
//! is said once on the engine's event stream, with the producers that went with it; transports
//! never contacted are left alone.
mod common;

use std::time::{Duration, Instant};

use common::{connected_pair, engine_with_idle_timeout, run, transport_id, Subscriber};
use sfu::rtp_parameters::MediaKind;
use sfu::{CloseReason, EngineEvent};
use tokio::sync::mpsc::UnboundedReceiver;

const IDLE: Duration = Duration::from_secs(2);

/// Pumps `b` until an event comes, or None after `within`.
fn event_while_pumping(events: &mut UnboundedReceiver<EngineEvent>, b: &mut Subscriber, within: Duration) -> Option<EngineEvent> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(event) = events.try_recv() {
            return Some(event);
        }
        run(&mut [], &mut [&mut *b], Duration::from_millis(20), |_, _| false);
    }
    None
}

/// The next event, or None after `within`.
async fn next_event(events: &mut UnboundedReceiver<EngineEvent>, within: Duration) -> Option<EngineEvent> {
    tokio::time::timeout(within, events.recv()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_publisher_is_closed_with_its_producers() {
    let engine = engine_with_idle_timeout(IDLE);
    let mut events = engine.take_events().expect("first taker gets the events");
    assert!(engine.take_events().is_none(), "events have one taker");
    let (mut a, mut b) = connected_pair(&engine, MediaKind::Video).await;
    run(&mut [&mut a], &mut [&mut b], Duration::from_millis(500), |_, _| false);
    assert!(!b.received(MediaKind::Video).is_empty(), "media flows first");
    let producer = a.tracks[0].1.clone();

    // A goes silent (its process froze, its network went away): nothing more is sent. B talks on.
    let silent_since = Instant::now();
    let event = event_while_pumping(&mut events, &mut b, IDLE * 3).expect("the engine says it closed A's transport");
    let after = silent_since.elapsed();
    assert_eq!(
        event,
        EngineEvent::TransportClosed {
            transport: transport_id(&a.transport.id),
            producers: vec![producer],
            consumers: vec![],
            reason: CloseReason::Silent
        }
    );
    assert!(after >= IDLE && after < IDLE * 2, "closed after {after:?} of silence (idle timeout {IDLE:?})");
    let stats = engine.stats().await.unwrap();
    assert_eq!((stats.transports, stats.producers, stats.consumers), (1, 0, 0), "A's producer and B's consumer of it are gone, B stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_closing_dtls_is_closed_at_once() {
    let engine = engine_with_idle_timeout(Duration::from_secs(30));
    let mut events = engine.take_events().unwrap();
    let (mut a, mut b) = connected_pair(&engine, MediaKind::Audio).await;
    // B closes its PeerConnection: str0m sends RTCP BYE and DTLS close_notify.
    b.transport.rtc.close().unwrap();
    let closed_at = Instant::now();
    run(&mut [&mut a], &mut [&mut b], Duration::from_millis(300), |_, _| false);
    let event = next_event(&mut events, Duration::from_secs(2)).await.expect("B's transport is closed");
    let consumer: sfu::ConsumerId = serde_json::from_value(b.consumers[0].0["id"].clone()).unwrap();
    assert_eq!(
        event,
        EngineEvent::TransportClosed {
            transport: transport_id(&b.transport.id),
            producers: vec![],
            consumers: vec![consumer],
            reason: CloseReason::PeerClosed
        }
    );
    assert!(closed_at.elapsed() < Duration::from_secs(2));
    let stats = engine.stats().await.unwrap();
    assert_eq!((stats.transports, stats.producers, stats.consumers), (1, 1, 0), "A keeps publishing; B's consumer is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transports_never_contacted_are_kept() {
    let engine = engine_with_idle_timeout(IDLE);
    let mut events = engine.take_events().unwrap();
    let router = engine.create_router().await.unwrap();
    // mediasoup-client connects a receive transport with its first consumer, maybe much later.
    let waiting = engine.create_webrtc_transport(router.clone(), sfu::Direction::Recv, None).await.unwrap();
    // B connects, then goes silent: the sweeps that close B pass over the waiting transport.
    let mut b = Subscriber::new(&engine, &router).await;
    let connected = run(&mut [], &mut [&mut b], Duration::from_secs(5), |_, s| s[0].inbox.connected);
    assert!(connected);
    let event = next_event(&mut events, IDLE * 3).await.expect("silent B is closed");
    assert_eq!(
        event,
        EngineEvent::TransportClosed {
            transport: transport_id(&b.transport.id),
            producers: vec![],
            consumers: vec![],
            reason: CloseReason::Silent
        }
    );
    tokio::time::sleep(IDLE).await;
    assert_eq!(next_event(&mut events, Duration::from_millis(100)).await, None, "nothing else closed");
    let stats = engine.stats().await.unwrap();
    assert_eq!(stats.transports, 1, "{} is kept", waiting.id);
}
