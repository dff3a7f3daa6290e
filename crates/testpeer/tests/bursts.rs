//! Frames of several packets sent back to back (as a real encoder does at 1 Mbit/s) arrive whole:
//! nothing in the engine or the client may drop the packets of a burst.
mod common;

use std::time::Duration;

use common::{run, sim, Publisher, Subscriber};
use sfu::rtp_parameters::MediaKind;

#[test]
fn every_packet_of_a_multi_packet_frame_is_forwarded() {
    let mut sim = sim();
    let router = sim.worker.create_router();
    // No pacer on the client: the four packets of a frame leave back to back.
    let mut a = Publisher::with_bwe(&mut sim, &router, false);
    let p = a.produce(&mut sim, MediaKind::Video);
    // 4,000-byte frames: four packets of at most 1,100 bytes written in one go, every 33 ms.
    let mut frame = vec![0u8; 4000];
    for (i, b) in frame.iter_mut().enumerate().skip(1) {
        *b = (i % 251) as u8;
    }
    a.tracks[0].0.vp8_frames = Some(vec![frame]);
    let mut b = Subscriber::new(&mut sim, &router);
    b.consume(&mut sim, &p).unwrap();
    let connected = run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(10), |p, s| p[0].connected && s[0].inbox.connected);
    assert!(connected);
    run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(2), |_, _| false);
    run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_millis(300), |_, _| false);

    let got = b.received(MediaKind::Video);
    let mut seqs: Vec<u64> = got.iter().map(|p| p.seq).collect();
    seqs.sort();
    seqs.dedup();
    assert!(seqs.len() > 150, "received {} packets", seqs.len());
    let span = seqs[seqs.len() - 1] - seqs[0] + 1;
    println!("received {} of {span} sequence numbers", seqs.len());
    assert_eq!(seqs.len() as u64, span, "no packet of a burst is missing");
}
