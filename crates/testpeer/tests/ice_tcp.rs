//! ICE over TCP (RFC 6544): a client whose only candidate is TCP active reaches the worker's
//! passive TCP candidate and media flows both ways, framed by the driver (its framing is tested
//! in crates/sfu/src/tcp.rs over real loopback TCP). In memory on a simulated clock.
mod common;

use std::time::Duration;

use common::{run, sim, Publisher, Subscriber};
use sfu::rtp_parameters::MediaKind;
use sfu::{Direction, Protocol};
use testpeer::Inbox;

#[test]
fn a_publisher_and_a_subscriber_over_tcp_only() {
    let mut sim = sim();
    let router = sim.worker.create_router();
    let transport = sim.tcp_client(&router, Direction::Send);
    let mut a = Publisher { router: router.clone(), transport, tracks: Vec::new(), keyframe_requests: 0, bwe_events: 0, connected: false };
    let p = a.produce(&mut sim, MediaKind::Video);
    let transport = sim.tcp_client(&router, Direction::Recv);
    let mut b = Subscriber { transport, inbox: Inbox::default(), consumers: Vec::new(), ice_states: Vec::new() };
    b.consume(&mut sim, &p).unwrap();
    let connected = run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(10), |p, s| p[0].connected && s[0].inbox.connected);
    assert!(connected, "both connect over TCP");
    run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(2), |_, _| false);
    let got = b.received(MediaKind::Video).len();
    assert!(got > 50, "video reached B over TCP ({got} packets)");
    assert_eq!(sim.undelivered, 0, "every packet of the worker found its client");
    let via_tcp = sim.sent_by_protocol(Protocol::Tcp);
    assert!(via_tcp > 100 && sim.sent_by_protocol(Protocol::Udp) == 0, "all of it over TCP ({via_tcp} frames)");
}
