//! The engine on its worker threads over real UDP on loopback: the socket layer (batched
//! receive and send, demux by source address), routers spread over workers, and garbage at the
//! real ports. The engine's behaviour in detail is tested in memory (the other files here).
mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::udp::{connected_pair, engine, run, Publisher, Subscriber};
use sfu::rtp_parameters::MediaKind;

async fn publish_and_receive(first: MediaKind) {
    let engine = engine();
    let router = engine.create_router().await.unwrap();
    let mut a = Publisher::new(&engine, &router).await;
    let second = if first == MediaKind::Audio { MediaKind::Video } else { MediaKind::Audio };
    let p1 = a.produce(&engine, first).await;
    let p2 = a.produce(&engine, second).await;
    let mut b = Subscriber::new(&engine, &router).await;
    let c1 = b.consume(&engine, &p1).await.unwrap();
    let c2 = b.consume(&engine, &p2).await.unwrap();

    // Media flows for ~3 s once connected.
    let connected = run(&mut [&mut a], &mut [&mut b], Duration::from_secs(10), |p, s| p[0].connected && s[0].inbox.connected);
    assert!(connected, "both transports connect (ICE-lite + DTLS)");
    run(&mut [&mut a], &mut [&mut b], Duration::from_secs(3), |_, _| false);
    // B asks for a keyframe: it must reach A.
    let video_ssrc = b.consumers.iter().find(|c| c.2 == MediaKind::Video).unwrap().1;
    let before = a.keyframe_requests;
    assert!(testpeer::request_keyframe(&mut b.transport, video_ssrc));
    let pli = run(&mut [&mut a], &mut [&mut b], Duration::from_secs(5), |p, _| p[0].keyframe_requests > before);
    assert!(pli, "B's PLI reaches A");
    // Let the last packets arrive.
    run(&mut [&mut a], &mut [&mut b], Duration::from_millis(300), |_, _| false);

    for (kind, options) in [
        (MediaKind::Video, if first == MediaKind::Video { &c1 } else { &c2 }),
        (MediaKind::Audio, if first == MediaKind::Audio { &c1 } else { &c2 }),
    ] {
        testpeer::assert_forwarded(kind, a.sent(kind), &b.received(kind), options);
    }
    assert!(a.bwe_events > 0, "A gets transport-cc feedback (bandwidth estimates), {first:?} produced first");
    let stats = engine.stats().await.unwrap();
    assert!(stats.keyframe_requests >= 1);
    assert_eq!((stats.routers, stats.transports, stats.producers, stats.consumers), (1, 2, 2, 2));
    // Per worker: the same objects, split; every worker up with some CPU time.
    let per_worker = engine.worker_stats().await;
    assert_eq!(per_worker.len(), stats.workers);
    assert!(per_worker.iter().all(|w| w.up && w.cpu_seconds > 0.0), "{per_worker:?}");
    let objects = |f: fn(&sfu::EngineStats) -> usize| per_worker.iter().filter_map(|w| w.stats.as_ref()).map(f).sum::<usize>();
    assert_eq!((objects(|s| s.routers), objects(|s| s.transports), objects(|s| s.producers), objects(|s| s.consumers)), (1, 2, 2, 2));
    assert!(per_worker.iter().filter_map(|w| w.stats.as_ref()).map(|s| s.rtp_forwarded).sum::<u64>() >= stats.rtp_forwarded);
    engine.close_router(router).await.unwrap();
    let stats = engine.stats().await.unwrap();
    assert_eq!((stats.routers, stats.transports, stats.producers, stats.consumers), (0, 0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_and_video_over_real_udp() {
    publish_and_receive(MediaKind::Video).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_at_the_worker_ports_does_not_disturb_a_call() {
    let engine = engine();
    let (mut a, mut b) = connected_pair(&engine, MediaKind::Video).await;

    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = fastrand::Rng::with_seed(42);
    let stun_header = [0x00u8, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    for (n, (i, addr)) in engine.worker_addrs().iter().enumerate().cycle().take(4000).enumerate() {
        let len = rng.usize(0..1500);
        let mut data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        match i % 4 {
            0 if data.len() > 8 => data[..8].copy_from_slice(&stun_header), // truncated/garbled STUN
            1 if !data.is_empty() => data[0] = 0x16,                        // DTLS record type
            2 if data.len() > 1 => {
                data[0] = 0x80; // RTP version 2
                data.truncate(rng.usize(1..20));
            }
            _ => {}
        }
        let _ = attacker.send_to(&data, addr);
        if n % 200 == 199 {
            // Paced so the kernel's socket buffer (not the engine) does not drop them.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let before = b.received(MediaKind::Video).len();
    let flowing = run(&mut [&mut a], &mut [&mut b], Duration::from_secs(10), |_, s| s[0].received(MediaKind::Video).len() > before + 30);
    assert!(flowing, "media keeps flowing after 4000 garbage datagrams");
    let stats = engine.stats().await.unwrap();
    assert!(stats.datagrams_dropped >= 3000, "garbage was counted and dropped: {stats:?}");
    assert_eq!(stats.transports, 2);
}

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
