//! A stray RTP packet never locks a stream out (issue: "one authentic packet 200 sequence
//! numbers ahead, then normal packets: the next 40 are all dropped"; "one packet 1,100 behind
//! near the start of a stream blocks every later packet"). The publisher's str0m writes the
//! strays itself, so they are authentic SRTP; the subscriber must get every ordinary packet.
mod common;

use std::time::Duration;

use common::{connected_pair, run, Publisher, Subscriber};
use sfu::rtp_parameters::MediaKind;
use testpeer::sim::Sim;

/// Pumps until the publisher has sent `n` packets in all.
fn send_until(sim: &mut Sim, a: &mut Publisher, b: &mut Subscriber, n: usize) {
    let sent = run(sim, &mut [&mut *a], &mut [&mut *b], Duration::from_secs(10), |p, _| p[0].sent(MediaKind::Video).len() >= n);
    assert!(sent, "the publisher sends {n} packets");
}

/// Whether every payload in `payloads` reached the subscriber (pumping up to 3 s for the tail).
fn all_received(sim: &mut Sim, a: &mut Publisher, b: &mut Subscriber, payloads: &[Vec<u8>]) -> usize {
    run(sim, &mut [&mut *a], &mut [&mut *b], Duration::from_secs(3), |_, s| {
        let got = s[0].received(MediaKind::Video);
        payloads.iter().all(|p| got.iter().any(|r| &r.payload == p))
    });
    let got = b.received(MediaKind::Video);
    payloads.iter().filter(|p| got.iter().any(|r| &r.payload == *p)).count()
}

/// Sends one packet numbered `stray`, then goes on from where the stream was; returns the next
/// 40 payloads sent after the stray.
fn stray_then_40(sim: &mut Sim, a: &mut Publisher, b: &mut Subscriber, stray: u64) -> Vec<Vec<u8>> {
    let before = a.sent(MediaKind::Video).len();
    let resume = a.tracks[0].0.next_seq();
    a.tracks[0].0.set_next_seq(stray);
    send_until(sim, a, b, before + 1);
    a.tracks[0].0.set_next_seq(resume);
    send_until(sim, a, b, before + 41);
    a.sent(MediaKind::Video)[before + 1..before + 41].to_vec()
}

#[test]
fn one_packet_far_ahead_does_not_drop_the_packets_after_it() {
    let mut sim = common::sim();
    let (mut a, mut b) = connected_pair(&mut sim, MediaKind::Video);
    send_until(&mut sim, &mut a, &mut b, 40);
    let jump = a.tracks[0].0.next_seq() + 200;
    let after = stray_then_40(&mut sim, &mut a, &mut b, jump);
    let n = all_received(&mut sim, &mut a, &mut b, &after);
    assert_eq!(n, 40, "of the 40 packets after a stray 200 ahead, {n} arrived");
    let stats = sim.worker.stats();
    assert_eq!(stats.rtp_guarded, 1, "the stray was held, then given up: {stats:?}");
}

#[test]
fn one_packet_far_behind_near_the_start_does_not_block_the_stream() {
    let mut sim = common::sim();
    let (mut a, mut b) = connected_pair(&mut sim, MediaKind::Video);
    // Number the stream from 20, as a stream just started near the bottom of the range.
    a.tracks[0].0.set_next_seq(20);
    send_until(&mut sim, &mut a, &mut b, 40);
    let behind = a.tracks[0].0.next_seq().wrapping_sub(1100);
    let after = stray_then_40(&mut sim, &mut a, &mut b, behind);
    let n = all_received(&mut sim, &mut a, &mut b, &after);
    assert_eq!(n, 40, "of the 40 packets after a stray 1,100 behind, {n} arrived");
    let stats = sim.worker.stats();
    assert!(stats.rtp_guarded >= 1, "the stray was dropped by the guard: {stats:?}");
}

#[test]
fn a_real_jump_is_followed() {
    let mut sim = common::sim();
    let (mut a, mut b) = connected_pair(&mut sim, MediaKind::Video);
    send_until(&mut sim, &mut a, &mut b, 40);
    // The sender renumbers for good (an encoder restart): every packet from here on.
    let before = a.sent(MediaKind::Video).len();
    let jump = a.tracks[0].0.next_seq() + 5000;
    a.tracks[0].0.set_next_seq(jump);
    send_until(&mut sim, &mut a, &mut b, before + 40);
    let after = a.sent(MediaKind::Video)[before..before + 40].to_vec();
    let n = all_received(&mut sim, &mut a, &mut b, &after);
    assert_eq!(n, 40, "of 40 packets after a real jump of 5,000, {n} arrived");
}

/// Sends the packet numbered `n` only after the `late_by` packets that follow it; returns whether
/// its payload reached the subscriber.
fn late_packet_arrives(sim: &mut Sim, a: &mut Publisher, b: &mut Subscriber, late_by: u64) -> bool {
    let before = a.sent(MediaKind::Video).len();
    let n = a.tracks[0].0.next_seq();
    a.tracks[0].0.set_next_seq(n + 1);
    send_until(sim, a, b, before + late_by as usize);
    let resume = a.tracks[0].0.next_seq();
    a.tracks[0].0.set_next_seq(n);
    send_until(sim, a, b, before + late_by as usize + 1);
    let late = a.sent(MediaKind::Video)[before + late_by as usize].clone();
    a.tracks[0].0.set_next_seq(resume);
    send_until(sim, a, b, before + late_by as usize + 11);
    all_received(sim, a, b, &[late]) == 1
}

/// The reordering tolerated end to end: a packet arriving up to 100 places late is forwarded
/// (str0m's window), one arriving later is dropped before str0m, and the stream goes on.
#[test]
fn packets_up_to_100_places_late_are_forwarded() {
    let mut sim = common::sim();
    let (mut a, mut b) = connected_pair(&mut sim, MediaKind::Video);
    send_until(&mut sim, &mut a, &mut b, 20);
    for (late_by, expected) in [(1, true), (60, true), (99, true), (140, false)] {
        assert_eq!(late_packet_arrives(&mut sim, &mut a, &mut b, late_by), expected, "a packet {late_by} places late");
    }
    let stats = sim.worker.stats();
    assert!(stats.rtp_guarded >= 1, "{stats:?}");
    let before = a.sent(MediaKind::Video).len();
    send_until(&mut sim, &mut a, &mut b, before + 20);
    let tail = a.sent(MediaKind::Video)[before..before + 20].to_vec();
    assert_eq!(all_received(&mut sim, &mut a, &mut b, &tail), 20, "the stream goes on");
}
