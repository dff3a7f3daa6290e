//! (a) Two peers through the engine over real UDP: A publishes audio and video (one kind, then
//! the other on the live connection), B consumes both. B gets A's packets with the exact
//! payloads, the router's payload types and its consumers' SSRCs, sequence numbers shifted by
//! a constant; B's PLI reaches A; A gets transport-cc feedback for each kind.
use std::collections::HashMap;
use std::time::Duration;

use sfu::rtp_parameters::MediaKind;
use testpeer::local::{loopback_engine, run, Publisher, Subscriber};

fn other(kind: MediaKind) -> MediaKind {
    match kind {
        MediaKind::Audio => MediaKind::Video,
        MediaKind::Video => MediaKind::Audio,
    }
}

async fn publish_and_receive(first: MediaKind) {
    let engine = loopback_engine(2).unwrap();
    let router = engine.create_router().await.unwrap();
    let mut a = Publisher::new(&engine, &router).await.unwrap();
    let mut b = Subscriber::new(&engine, &router).await.unwrap();

    // The first kind alone: transports connect, media reaches B, feedback reaches A.
    let p1 = a.produce(&engine, first).await.unwrap();
    b.consume(&engine, &p1).await.unwrap();
    let ok = run(&mut [&mut a], &mut [&mut b], Duration::from_secs(15), |p, s| {
        p[0].connected && s[0].inbox.connected && s[0].received(first).len() > 20 && p[0].twcc_acked(first) > 20
    });
    assert!(ok, "{first:?} alone: connected, forwarded ({} at B) and acknowledged by transport-cc ({})", b.received(first).len(), a.twcc_acked(first));

    // The second kind, produced on the live connection (audio after video or the reverse).
    let second = other(first);
    let p2 = a.produce(&engine, second).await.unwrap();
    b.consume(&engine, &p2).await.unwrap();
    let ok = run(&mut [&mut a], &mut [&mut b], Duration::from_secs(15), |p, s| {
        s[0].received(second).len() > 20 && p[0].twcc_acked(second) > 20
    });
    assert!(ok, "{second:?} produced second: forwarded ({} at B) and acknowledged by transport-cc ({})", b.received(second).len(), a.twcc_acked(second));
    run(&mut [&mut a], &mut [&mut b], Duration::from_secs(2), |_, _| false);

    // B asks for a keyframe: the request reaches A (within the 1 s throttle window at worst).
    let video_ssrc = b.consumer(MediaKind::Video).unwrap().ssrc;
    let before = a.transport.keyframe_requests;
    assert!(testpeer::request_keyframe(&mut b.transport, video_ssrc));
    let pli = run(&mut [&mut a], &mut [&mut b], Duration::from_secs(5), |p, _| p[0].transport.keyframe_requests > before);
    assert!(pli, "B's PLI reaches A");
    // Let the last packets arrive.
    run(&mut [&mut a], &mut [&mut b], Duration::from_millis(300), |_, _| false);

    for kind in [MediaKind::Audio, MediaKind::Video] {
        let consumer = b.consumer(kind).unwrap();
        let sent = a.sent(kind);
        let got = b.received(kind);
        let router_pt = consumer.options["rtpParameters"]["codecs"][0]["payloadType"].as_u64().unwrap() as u8;
        assert_eq!(router_pt, if kind == MediaKind::Audio { 100 } else { 101 }, "router payload types, not A's");
        assert!(got.iter().all(|p| p.pt == router_pt && p.ssrc == consumer.ssrc), "{kind:?}: router PT and consumer SSRC");

        // Exact bytes, and each packet's place: B's sequence number minus the index of the
        // payload in A's stream is the same for every packet (no gap added or removed).
        let index: HashMap<&[u8], usize> = sent.iter().enumerate().map(|(i, p)| (p.as_slice(), i)).collect();
        let mut offsets = std::collections::HashSet::new();
        for p in &got {
            let i = *index.get(p.payload.as_slice()).unwrap_or_else(|| panic!("{kind:?}: a payload A never sent"));
            offsets.insert(p.seq as i64 - i as i64);
        }
        assert_eq!(offsets.len(), 1, "{kind:?}: sequence numbers are A's shifted by one constant");
        assert!(got.iter().all(|p| p.seq < 65536), "{kind:?}: the consumer's numbering starts below 65536");

        let unique: std::collections::HashSet<&[u8]> = got.iter().map(|p| p.payload.as_slice()).collect();
        let first_idx = got.iter().map(|p| index[p.payload.as_slice()]).min().unwrap();
        let expected = sent.len() - first_idx;
        let ratio = unique.len() as f64 / expected as f64;
        println!("{kind:?} ({first:?} first): sent {} ({expected} since B's first), received {} ({:.1}%)", sent.len(), unique.len(), ratio * 100.0);
        assert!(ratio >= 0.95, "{kind:?}: received {:.1}% of packets", ratio * 100.0);
        if kind == MediaKind::Video {
            let first_packet = got.iter().min_by_key(|p| p.seq).unwrap();
            assert!(testpeer::is_vp8_keyframe(&first_packet.payload), "video starts with a keyframe");
        }

        let cstats = engine.consumer_stats(consumer.id.clone()).await.unwrap();
        assert!(cstats.packets >= got.len() as u64 && !cstats.paused, "{cstats:?}");
        let pstats = engine.producer_stats(consumer.producer.clone()).await.unwrap();
        assert!(pstats.packets >= cstats.packets && pstats.consumers == 1, "{pstats:?}");
    }
    let stats = engine.stats().await.unwrap();
    assert!(stats.keyframe_requests >= 1);
    assert_eq!((stats.routers, stats.transports, stats.producers, stats.consumers), (1, 2, 2, 2));
    engine.close_router(router).await.unwrap();
    let stats = engine.stats().await.unwrap();
    assert_eq!((stats.routers, stats.transports, stats.producers, stats.consumers), (0, 0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_first_then_audio() {
    publish_and_receive(MediaKind::Video).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_first_then_video() {
    publish_and_receive(MediaKind::Audio).await;
}
