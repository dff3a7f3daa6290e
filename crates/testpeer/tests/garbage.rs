//! Garbage datagrams at the worker: no panic, the media keeps flowing.
mod common;

use std::time::Duration;

use common::{connected_pair, run, sim};
use sfu::rtp_parameters::MediaKind;

#[test]
fn garbage_datagrams_do_not_disturb_a_call() {
    let mut sim = sim();
    let (mut a, mut b) = connected_pair(&mut sim, MediaKind::Video);
    let attacker = "198.18.9.9:666".parse().unwrap();
    let mut rng = fastrand::Rng::with_seed(42);
    let stun_header = [0x00u8, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    let dropped_before = sim.worker.stats().datagrams_dropped;
    for i in 0..4000 {
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
        sim.worker.handle_datagram(sim.now, attacker, &data);
    }
    let stats = sim.worker.stats();
    assert_eq!(stats.datagrams_dropped - dropped_before, 4000, "every garbage datagram was counted and dropped: {stats:?}");
    let before = b.received(MediaKind::Video).len();
    let flowing =
        run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(2), |_, s| s[0].received(MediaKind::Video).len() > before + 30);
    assert!(flowing, "media keeps flowing after 4000 garbage datagrams");
    assert_eq!(sim.worker.stats().transports, 2);
}
