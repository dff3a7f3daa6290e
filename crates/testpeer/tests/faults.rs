//! A fault while the worker handles one transport closes that transport (and what depends on
//! it) and nothing else; a worker that fails for good is reported, its routers are gone and no
//! new router is placed on it.
mod common;

use std::time::Duration;

use common::udp::{connected_pair, engine, run, transport_id};
use sfu::rtp_parameters::MediaKind;
use sfu::{CallError, CloseReason, EngineEvent, ErrorCode, WorkerState};

async fn next_event(events: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>) -> EngineEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("an event in time").expect("the stream is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_on_one_transport_closes_it_and_the_worker_goes_on() {
    let engine = engine();
    let mut events = engine.take_events().unwrap();
    let (mut a, mut b) = connected_pair(&engine, MediaKind::Video).await;
    let (mut c, mut d) = connected_pair(&engine, MediaKind::Video).await;
    let worker = transport_id(&a.transport.id).worker().unwrap();
    let producer = a.tracks[0].1.clone();

    let err = engine.inject_fault(worker, Some(transport_id(&a.transport.id))).await.unwrap_err();
    assert!(matches!(err, CallError::Fault), "{err}");
    assert_eq!(err.code(), "internal");
    match next_event(&mut events).await {
        EngineEvent::TransportClosed { transport, producers, reason, .. } => {
            assert_eq!(transport, transport_id(&a.transport.id));
            assert_eq!(producers, vec![producer]);
            assert_eq!(reason, CloseReason::Fault);
        }
        other => panic!("unexpected {other:?}"),
    }
    // The other call on the same engine still flows, and the worker takes commands.
    let before = d.received(MediaKind::Video).len();
    run(&mut [&mut c, &mut a], &mut [&mut d, &mut b], Duration::from_millis(700), |_, _| false);
    assert!(d.received(MediaKind::Video).len() > before + 10, "the other call goes on");
    assert!(engine.workers().iter().all(|w| w.state == WorkerState::Running));
    let stats = engine.stats().await.unwrap();
    assert_eq!(stats.producers, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_fails_for_good_is_reported_and_skipped() {
    let engine = engine();
    let mut events = engine.take_events().unwrap();
    let router = engine.create_router().await.unwrap();
    let dead = router.worker().unwrap();
    let _ = engine.inject_fault(dead, None).await;
    assert_eq!(next_event(&mut events).await, EngineEvent::WorkerDied { worker: dead });
    assert_eq!(engine.workers()[dead].state, WorkerState::Failed);
    let err = engine.create_webrtc_transport(router.clone(), sfu::Direction::Recv, None).await.unwrap_err();
    assert_eq!(err.code(), "worker_unavailable", "{err}");
    for _ in 0..4 {
        let r = engine.create_router().await.expect("routers go to the worker that runs");
        assert_ne!(r.worker(), Some(dead));
    }
    let stats = engine.stats().await.expect("stats skip the failed worker");
    assert_eq!(stats.routers, 4);
}
