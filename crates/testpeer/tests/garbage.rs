//! Garbage UDP at the worker ports: no panic, the media keeps flowing.
mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{connected_pair, engine, run};
use sfu::rtp_parameters::MediaKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_do_not_disturb_a_call() {
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
