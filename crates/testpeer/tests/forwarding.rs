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
        testpeer::assert_forwarded(kind, a.sent(kind), &b.received(kind), options);
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
