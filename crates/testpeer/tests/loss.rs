//! (c) 5% of A's video packets are lost on the way in: the engine NACKs, A retransmits over
//! RTX, and B still gets every packet.
use std::collections::HashSet;
use std::time::Duration;

use sfu::rtp_parameters::MediaKind;
use testpeer::local::{connected_pair, loopback_engine, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_and_rtx_recover_lost_packets() {
    let engine = loopback_engine(2).unwrap();
    let (_router, mut a, mut b) = connected_pair(&engine, MediaKind::Video).await.unwrap();
    // Wait for the first keyframe at B, then start losing.
    let ok = run(&mut [&mut a], &mut [&mut b], Duration::from_secs(10), |_, s| !s[0].received(MediaKind::Video).is_empty());
    assert!(ok, "video flows");
    let from = a.sent(MediaKind::Video).len();
    a.transport.drop_pct = 5;
    run(&mut [&mut a], &mut [&mut b], Duration::from_secs(6), |_, _| false);
    a.transport.drop_pct = 0;
    // Time for the last retransmissions.
    run(&mut [&mut a], &mut [&mut b], Duration::from_millis(700), |_, _| false);

    let sent = a.sent(MediaKind::Video);
    let got: HashSet<&[u8]> = b.received(MediaKind::Video).iter().map(|p| p.payload.as_slice()).collect();
    let judged = &sent[from..];
    let missing = judged.iter().filter(|p| !got.contains(p.as_slice())).count();
    println!("sent {}, dropped on the way in {}, missing at B {missing}", judged.len(), a.transport.dropped);
    assert!(a.transport.dropped >= 4, "the test dropped packets ({})", a.transport.dropped);
    assert!(missing * 100 <= judged.len(), "missing {missing} of {}: NACK/RTX did not recover", judged.len());
}
