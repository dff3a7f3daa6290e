//! Three rooms at once on two workers: media never crosses rooms.
mod common;

use std::time::Duration;

use common::{engine, run, Publisher, Subscriber};
use sfu::rtp_parameters::MediaKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rooms_two_workers_no_crossing() {
    let engine = engine();
    let mut rooms = Vec::new();
    for _ in 0..3 {
        let router = engine.create_router().await.unwrap();
        let mut publisher = Publisher::new(&engine, &router).await;
        let producer = publisher.produce(&engine, MediaKind::Video).await;
        let mut subscriber = Subscriber::new(&engine, &router).await;
        subscriber.consume(&engine, &producer).await.unwrap();
        rooms.push((router, publisher, subscriber, producer));
    }
    let workers: std::collections::HashSet<_> = rooms.iter().map(|r| r.0.worker()).collect();
    assert_eq!(workers.len(), 2, "routers are spread over both workers");
    // Consuming a producer of another room is refused (same worker or not).
    for i in 0..3 {
        let other = rooms[(i + 1) % 3].3.clone();
        let err = rooms[i].2.consume(&engine, &other).await.unwrap_err();
        assert!(matches!(err, sfu::ConsumeError::OtherRouter), "{err}");
    }
    let (mut p0, mut p1, mut p2);
    let (mut s0, mut s1, mut s2);
    {
        let mut it = rooms.drain(..);
        let r0 = it.next().unwrap();
        let r1 = it.next().unwrap();
        let r2 = it.next().unwrap();
        (p0, s0) = (r0.1, r0.2);
        (p1, s1) = (r1.1, r1.2);
        (p2, s2) = (r2.1, r2.2);
    }
    run(&mut [&mut p0, &mut p1, &mut p2], &mut [&mut s0, &mut s1, &mut s2], Duration::from_secs(10), |_, s| {
        s.iter().all(|s| s.received(MediaKind::Video).len() > 30)
    });
    for (p, s) in [(&p0, &s0), (&p1, &s1), (&p2, &s2)] {
        let mine: std::collections::HashSet<&[u8]> = p.sent(MediaKind::Video).iter().map(|x| x.as_slice()).collect();
        let got = s.received(MediaKind::Video);
        assert!(got.len() > 30, "each subscriber receives its room's video ({})", got.len());
        assert!(got.iter().all(|r| mine.contains(r.payload.as_slice())), "only its own room's packets");
        assert_eq!(s.inbox.packets.len(), got.len(), "no stray streams");
    }
}
