//! (d) Closing cascades (transport -> producers -> consumers, router -> everything), the
//! events the server relays, and counters back to zero once every transport and router closed.
use std::time::Duration;

use sfu::rtp_parameters::MediaKind;
use sfu::{EngineEvent, EngineStats};
use testpeer::local::{loopback_engine, run, Publisher, Subscriber};
use tokio::sync::mpsc::Receiver;

fn counts(s: &EngineStats) -> (usize, usize, usize, usize) {
    (s.routers, s.transports, s.producers, s.consumers)
}

/// The events received within `wait`.
async fn drain(rx: &mut Receiver<EngineEvent>, wait: Duration) -> Vec<EngineEvent> {
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(wait, rx.recv()).await {
        out.push(e);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_cascades_emits_events_and_counts_drop_to_zero() {
    let engine = loopback_engine(2).unwrap();
    let mut events = engine.take_events().expect("the first caller gets the event stream");
    assert!(engine.take_events().is_none(), "only once");

    let room = engine.create_router().await.unwrap();
    let mut a = Publisher::new(&engine, &room).await.unwrap();
    let audio = a.produce(&engine, MediaKind::Audio).await.unwrap();
    let video = a.produce(&engine, MediaKind::Video).await.unwrap();
    let mut b = Subscriber::new(&engine, &room).await.unwrap();
    let mut c = Subscriber::new(&engine, &room).await.unwrap();
    for p in [&audio, &video] {
        b.consume(&engine, p).await.unwrap();
    }
    c.consume(&engine, &video).await.unwrap();
    let (b_audio, b_video, c_video) =
        (b.consumers[0].id.clone(), b.consumers[1].id.clone(), c.consumers[0].id.clone());
    // A second room, closed only through its router.
    let other = engine.create_router().await.unwrap();
    let mut d = Publisher::new(&engine, &other).await.unwrap();
    let d_video = d.produce(&engine, MediaKind::Video).await.unwrap();
    let mut e = Subscriber::new(&engine, &other).await.unwrap();
    e.consume(&engine, &d_video).await.unwrap();
    assert_eq!(counts(&engine.stats().await.unwrap()), (2, 5, 3, 4));

    let ok = run(&mut [&mut a, &mut d], &mut [&mut b, &mut c, &mut e], Duration::from_secs(15), |p, s| {
        p.iter().all(|p| p.connected) && s.iter().all(|s| !s.received(MediaKind::Video).is_empty())
    });
    assert!(ok, "everyone connects and video flows");
    let connected = drain(&mut events, Duration::from_millis(100)).await;
    let transports = [&a.transport_id, &b.transport_id, &c.transport_id, &d.transport_id, &e.transport_id];
    for t in transports {
        assert!(
            connected.iter().any(|ev| matches!(ev, EngineEvent::TransportConnected { transport, .. } if transport == t)),
            "TransportConnected for {t}: {connected:?}"
        );
    }

    // An explicit producer close: no event for the producer, ConsumerClosed for its consumer.
    engine.close_producer(audio.clone()).await.unwrap();
    let evs = drain(&mut events, Duration::from_millis(100)).await;
    assert_eq!(
        evs,
        vec![EngineEvent::ConsumerClosed { router: room.clone(), transport: b.transport_id.clone(), consumer: b_audio.clone(), producer: audio.clone() }]
    );
    assert!(engine.consumer_stats(b_audio.clone()).await.is_err(), "the consumer is gone");

    // A's transport closes: its video producer closes (event) and both its consumers (events).
    engine.close_transport(a.transport_id.clone()).await.unwrap();
    let evs = drain(&mut events, Duration::from_millis(100)).await;
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert_eq!(evs[0], EngineEvent::ProducerClosed { router: room.clone(), transport: a.transport_id.clone(), producer: video.clone() });
    for (consumer, transport) in [(&b_video, &b.transport_id), (&c_video, &c.transport_id)] {
        let expected = EngineEvent::ConsumerClosed { router: room.clone(), transport: transport.clone(), consumer: consumer.clone(), producer: video.clone() };
        assert!(evs.contains(&expected), "{expected:?} in {evs:?}");
    }
    assert_eq!(counts(&engine.stats().await.unwrap()), (2, 4, 1, 1));
    assert!(engine.produce(a.transport_id.clone(), MediaKind::Audio, testpeer::produce_parameters(MediaKind::Audio, "9", 5)).await.is_err());

    // The subscribers' transports close without events (whoever closed them knows).
    engine.close_transport(b.transport_id.clone()).await.unwrap();
    engine.close_transport(c.transport_id.clone()).await.unwrap();
    assert!(engine.close_transport(c.transport_id.clone()).await.is_err(), "closing twice is an error, not a panic");
    engine.close_router(room.clone()).await.unwrap();
    // The other room goes with its router: its producer's close is reported with its consumer.
    engine.close_router(other.clone()).await.unwrap();
    let evs = drain(&mut events, Duration::from_millis(100)).await;
    assert!(evs.contains(&EngineEvent::ProducerClosed { router: other.clone(), transport: d.transport_id.clone(), producer: d_video.clone() }), "{evs:?}");
    assert!(evs.iter().all(|ev| !matches!(ev, EngineEvent::TransportClosed { .. })), "explicit closes are not reported");

    let stats = engine.stats().await.unwrap();
    assert_eq!(counts(&stats), (0, 0, 0, 0), "{stats:?}");
    assert!(engine.close_router(room).await.is_err());
    assert!(engine.create_webrtc_transport(other, sfu::Direction::Recv, None).await.is_err(), "a closed router takes nothing");
    assert!(stats.rtp_forwarded > 0 && stats.packets_in > 0 && stats.events_dropped == 0);
}
