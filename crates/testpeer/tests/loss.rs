//! 5% of A's video packets are lost on the way in: NACK/RTX recovers them at B.
mod common;

use std::time::Duration;

use common::{connected_pair, run, sim};
use sfu::rtp_parameters::MediaKind;

#[test]
fn nack_and_rtx_recover_lost_packets() {
    let mut sim = sim();
    let (mut a, mut b) = connected_pair(&mut sim, MediaKind::Video);
    a.transport.drop_pct = 5;
    run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(8), |_, _| false);
    a.transport.drop_pct = 0;
    // Time for the last retransmissions.
    run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_millis(500), |_, _| false);

    let sent = a.sent(MediaKind::Video);
    let got: std::collections::HashSet<Vec<u8>> = b.received(MediaKind::Video).iter().map(|p| p.payload.clone()).collect();
    // Judge the frames sent while loss was on (all but the last few, which may still be in flight).
    let judged = &sent[..sent.len() - 3];
    let missing = judged.iter().filter(|p| !got.contains(*p)).count();
    println!("sent {}, dropped on the way in {}, missing at B {}", sent.len(), a.transport.dropped, missing);
    assert!(a.transport.dropped >= 4, "the test dropped packets ({})", a.transport.dropped);
    assert!(missing * 100 <= judged.len(), "missing {missing} of {}: NACK/RTX did not recover", judged.len());
}
