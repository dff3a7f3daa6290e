//! Two peers through the engine in memory on a simulated clock: A publishes audio and video, B consumes both.
mod common;

use std::time::Duration;

use common::{run, sim, Publisher, Subscriber};
use sfu::rtp_parameters::MediaKind;

fn publish_and_receive(first: MediaKind) {
    let mut sim = sim();
    let router = sim.worker.create_router();
    let mut a = Publisher::new(&mut sim, &router);
    let second = if first == MediaKind::Audio { MediaKind::Video } else { MediaKind::Audio };
    let p1 = a.produce(&mut sim, first);
    let p2 = a.produce(&mut sim, second);
    let mut b = Subscriber::new(&mut sim, &router);
    let c1 = b.consume(&mut sim, &p1).unwrap();
    let c2 = b.consume(&mut sim, &p2).unwrap();

    // Media flows for ~3 s once connected.
    let connected = run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(10), |p, s| p[0].connected && s[0].inbox.connected);
    assert!(connected, "both transports connect (ICE-lite + DTLS)");
    run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(3), |_, _| false);
    // B asks for a keyframe: it must reach A.
    let video_ssrc = b.consumers.iter().find(|c| c.2 == MediaKind::Video).unwrap().1;
    let before = a.keyframe_requests;
    assert!(testpeer::request_keyframe(&mut b.transport, video_ssrc));
    let pli = run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(5), |p, _| p[0].keyframe_requests > before);
    assert!(pli, "B's PLI reaches A");
    // Let the last packets arrive.
    run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_millis(300), |_, _| false);

    for (kind, options) in [
        (MediaKind::Video, if first == MediaKind::Video { &c1 } else { &c2 }),
        (MediaKind::Audio, if first == MediaKind::Audio { &c1 } else { &c2 }),
    ] {
        let sent = a.sent(kind);
        let got = b.received(kind);
        assert!(sent.len() > 50, "{kind:?}: A sent {}", sent.len());
        let router_pt = options["rtpParameters"]["codecs"][0]["payloadType"].as_u64().unwrap() as u8;
        let ssrc = options["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
        assert_eq!(router_pt, if kind == MediaKind::Audio { 100 } else { 101 });
        assert!(got.iter().all(|p| p.pt == router_pt && p.ssrc == ssrc), "{kind:?}: router PT and consumer SSRC");
        let sent_set: std::collections::HashSet<&[u8]> = sent.iter().map(|p| p.as_slice()).collect();
        let exact = got.iter().filter(|p| sent_set.contains(p.payload.as_slice())).count();
        assert_eq!(exact, got.len(), "{kind:?}: every received payload is byte-identical to a sent one");
        let unique: std::collections::HashSet<&[u8]> = got.iter().map(|p| p.payload.as_slice()).collect();
        // Packets sent before B's transport connected are not forwarded: count from the first received.
        let first_idx = sent.iter().position(|s| unique.contains(s.as_slice())).unwrap_or(0);
        let expected = sent.len() - first_idx;
        let ratio = unique.len() as f64 / expected as f64;
        println!("{kind:?}: sent {} (after B connected {expected}), received {} unique ({:.1}%)", sent.len(), unique.len(), ratio * 100.0);
        assert!(ratio >= 0.95, "{kind:?}: received {:.1}% of packets", ratio * 100.0);
        // Sequence numbers at B are contiguous from below 65536.
        let mut seqs: Vec<u64> = got.iter().map(|p| p.seq).collect();
        seqs.sort();
        seqs.dedup();
        assert!(seqs[0] < 65536);
        // The engine runs no downlink bandwidth estimation: it stamps no transport-wide sequence
        // numbers (and so gets no feedback), though the video consumer's parameters allow them.
        let uris: Vec<&str> =
            options["rtpParameters"]["headerExtensions"].as_array().unwrap().iter().map(|e| e["uri"].as_str().unwrap()).collect();
        assert_eq!(uris.contains(&sfu::ortc::URI_TWCC), kind == MediaKind::Video, "{uris:?}");
        assert!(got.iter().all(|p| p.transport_cc.is_none()), "{kind:?}: no transport-cc stamped downstream");
    }
    assert!(a.bwe_events > 0, "A gets transport-cc feedback (bandwidth estimates), {first:?} produced first");
    let stats = sim.worker.stats();
    assert!(stats.keyframe_requests >= 1);
    assert_eq!((stats.routers, stats.transports, stats.producers, stats.consumers), (1, 2, 2, 2));
    sim.worker.close_router(&router).unwrap();
    let stats = sim.worker.stats();
    assert_eq!((stats.routers, stats.transports, stats.producers, stats.consumers), (0, 0, 0, 0));
}

#[test]
fn video_first_then_audio() {
    publish_and_receive(MediaKind::Video);
}

#[test]
fn audio_first_then_video() {
    publish_and_receive(MediaKind::Audio);
}
