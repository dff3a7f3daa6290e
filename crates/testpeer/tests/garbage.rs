//! (e) Garbage UDP at the worker ports, from unknown addresses and from the peers' own
//! (known) addresses: random bytes, truncated STUN, DTLS-looking and RTP-looking datagrams.
//! No panic, nothing is closed, and the media keeps flowing.
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use sfu::rtp_parameters::MediaKind;
use testpeer::local::{connected_pair, loopback_engine, run};

/// Datagram `i` of a deterministic garbage sequence.
fn garbage(rng: &mut fastrand::Rng, i: usize) -> Vec<u8> {
    let len = rng.usize(0..1500);
    let mut data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
    match i % 6 {
        // Truncated/garbled STUN binding request with the magic cookie.
        0 if data.len() > 8 => data[..8].copy_from_slice(&[0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42]),
        // A DTLS handshake or application-data record header.
        1 if data.len() > 13 => data[..3].copy_from_slice(&[if i % 12 == 1 { 0x16 } else { 0x17 }, 0xfe, 0xfd]),
        // Truncated RTP and RTCP headers.
        2 if data.len() > 1 => {
            data[0] = 0x80;
            data.truncate(rng.usize(1..20));
        }
        3 if data.len() > 2 => {
            data[0] = 0x80;
            data[1] = 200; // RTCP SR
        }
        4 => data.truncate(rng.usize(0..4)),
        _ => {}
    }
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_do_not_disturb_a_call() {
    let engine = loopback_engine(2).unwrap();
    let (_router, mut a, mut b) = connected_pair(&engine, MediaKind::Video).await.unwrap();
    let flowing = run(&mut [&mut a], &mut [&mut b], Duration::from_secs(10), |_, s| s[0].received(MediaKind::Video).len() > 10);
    assert!(flowing, "media flows before the garbage");

    // From an address the engine has never seen.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = fastrand::Rng::with_seed(42);
    let targets: Vec<SocketAddr> = engine.worker_addrs();
    for i in 0..4000 {
        let _ = stranger.send_to(&garbage(&mut rng, i), targets[i % targets.len()]);
    }
    let before = engine.stats().await.unwrap();
    assert!(before.datagrams_dropped >= 3000, "unknown senders' datagrams are dropped and counted: {before:?}");

    // From the peers' own addresses, interleaved with the call.
    for round in 0..20 {
        for i in 0..50 {
            a.transport.send_raw(&garbage(&mut rng, round * 50 + i));
            b.transport.send_raw(&garbage(&mut rng, round * 50 + i + 7));
        }
        run(&mut [&mut a], &mut [&mut b], Duration::from_millis(20), |_, _| false);
    }
    let count = b.received(MediaKind::Video).len();
    let flowing = run(&mut [&mut a], &mut [&mut b], Duration::from_secs(10), |_, s| s[0].received(MediaKind::Video).len() > count + 30);
    assert!(flowing, "media keeps flowing after garbage from unknown and known addresses");
    let stats = engine.stats().await.unwrap();
    assert_eq!((stats.transports, stats.producers, stats.consumers), (2, 1, 1), "nothing was closed: {stats:?}");
}
