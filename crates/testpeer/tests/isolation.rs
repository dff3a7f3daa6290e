//! Three rooms at once on one worker: media never crosses rooms (tests/udp.rs: on two workers).
mod common;

use std::time::Duration;

use common::{run, sim, Publisher, Subscriber};
use sfu::rtp_parameters::MediaKind;

#[test]
fn three_rooms_on_one_worker_no_crossing() {
    let mut sim = sim();
    let mut rooms = Vec::new();
    for _ in 0..3 {
        let router = sim.worker.create_router();
        let mut publisher = Publisher::new(&mut sim, &router);
        let producer = publisher.produce(&mut sim, MediaKind::Video);
        let mut subscriber = Subscriber::new(&mut sim, &router);
        subscriber.consume(&mut sim, &producer).unwrap();
        rooms.push((router, publisher, subscriber, producer));
    }
    // Consuming a producer of another room is refused.
    for i in 0..3 {
        let other = rooms[(i + 1) % 3].3.clone();
        let err = rooms[i].2.consume(&mut sim, &other).unwrap_err();
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
    run(&mut sim, &mut [&mut p0, &mut p1, &mut p2], &mut [&mut s0, &mut s1, &mut s2], Duration::from_secs(10), |_, s| {
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
