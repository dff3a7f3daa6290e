//! (b) Three routers at once on two workers: media never crosses routers, and consuming a
//! producer of another router is refused (same worker or not).
use std::collections::HashSet;
use std::time::Duration;

use sfu::rtp_parameters::MediaKind;
use sfu::ConsumeError;
use testpeer::local::{loopback_engine, run, Publisher, Subscriber};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_routers_two_workers_no_crossing() {
    let engine = loopback_engine(2).unwrap();
    let mut pubs = Vec::new();
    let mut subs = Vec::new();
    let mut producers = Vec::new();
    let mut routers = Vec::new();
    for _ in 0..3 {
        let router = engine.create_router().await.unwrap();
        let mut publisher = Publisher::new(&engine, &router).await.unwrap();
        let producer = publisher.produce(&engine, MediaKind::Video).await.unwrap();
        let mut subscriber = Subscriber::new(&engine, &router).await.unwrap();
        subscriber.consume(&engine, &producer).await.unwrap();
        pubs.push(publisher);
        subs.push(subscriber);
        producers.push(producer);
        routers.push(router);
    }
    let workers: HashSet<_> = routers.iter().map(|r| r.worker()).collect();
    assert_eq!(workers.len(), 2, "routers are spread over both workers");
    assert_eq!(routers[0].worker(), routers[2].worker(), "two routers share a worker (least loaded placement)");
    for (i, sub) in subs.iter().enumerate() {
        for (j, producer) in producers.iter().enumerate().filter(|(j, _)| *j != i) {
            let caps = engine.rtp_capabilities().clone();
            let err = engine.consume(sub.transport_id.clone(), producer.clone(), caps).await.unwrap_err();
            assert_eq!(err, ConsumeError::OtherRouter, "router {i} consuming router {j}'s producer");
        }
    }

    let mut p: Vec<&mut Publisher> = pubs.iter_mut().collect();
    let mut s: Vec<&mut Subscriber> = subs.iter_mut().collect();
    let ok = run(&mut p, &mut s, Duration::from_secs(15), |_, s| s.iter().all(|s| s.received(MediaKind::Video).len() > 30));
    assert!(ok, "every subscriber receives its router's video");
    for (p, s) in pubs.iter().zip(&subs) {
        let mine: HashSet<&[u8]> = p.sent(MediaKind::Video).iter().map(|x| x.as_slice()).collect();
        let got = s.received(MediaKind::Video);
        assert!(got.iter().all(|r| mine.contains(r.payload.as_slice())), "only its own router's packets");
        assert_eq!(s.inbox.packets.len(), got.len(), "no stray streams");
    }
    let stats = engine.stats().await.unwrap();
    assert_eq!((stats.routers, stats.transports, stats.producers, stats.consumers), (3, 6, 3, 3));
}
