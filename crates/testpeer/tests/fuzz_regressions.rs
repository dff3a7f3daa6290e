//! Crash inputs of the fuzz target `datagram` (fuzz/regressions/datagram/), replayed at the level
//! of a call in the simulation. The fuzz target's STUN builder (fuzz/src/stun.rs) is compiled in.
mod common;

#[path = "../../../fuzz/src/stun.rs"]
mod stun;

use std::net::SocketAddr;
use std::time::Duration;

use common::{run, sim, Publisher, Subscriber};
use sfu::rtp_parameters::MediaKind;
use sfu::{CloseReason, Direction, EngineEvent};
use testpeer::{ClientTransport, Inbox};

/// The binding requests of a datagram-target input made of STUN operations only (see
/// fuzz/src/datagram.rs: tag 3, target, source, flags, priority): (target, source, flags,
/// priority).
fn binding_requests(data: &[u8]) -> Vec<(u8, SocketAddr, u8, u32)> {
    let mut ops = Vec::new();
    let mut at = 0;
    while at < data.len() {
        assert_eq!(data[at] % 8, 3, "only STUN operations in this input");
        let (to, source) = (data[at + 1], data[at + 2] % 5);
        assert_eq!(source, 4, "from spoofed addresses");
        let n = u16::from_be_bytes([data[at + 3], data[at + 4]]);
        let from = SocketAddr::from(([198, 51, 100, (n >> 8) as u8], 10000 + (n & 0xff)));
        let flags = data[at + 5];
        let priority = u32::from_be_bytes([data[at + 6], data[at + 7], data[at + 8], data[at + 9]]);
        ops.push((to, from, flags, priority));
        at += 10;
    }
    ops
}

/// fuzz/regressions/datagram/stun-spoofed-addresses: binding requests that name a transport's
/// ufrag (it travels in clear) but are signed with a wrong password taught the worker's demux
/// their source addresses, without bound, and whatever came from those addresses later counted
/// as the peer being heard: a stranger could keep a transport whose peer had left open forever.
#[test]
fn binding_requests_with_a_wrong_password_neither_teach_addresses_nor_keep_a_transport_alive() {
    let mut sim = sim();
    let router = sim.worker.create_router();
    let mut a = Publisher::new(&mut sim, &router);
    let producer = a.produce(&mut sim, MediaKind::Video);
    // The subscriber's transport made by hand (as Sim::client does) to know its ufrag.
    let options = sim.worker.create_webrtc_transport(sim.now, &router, Direction::Recv, None).unwrap();
    let ufrag = options.ice_parameters.username_fragment.clone();
    let id = options.id.clone();
    let json = serde_json::to_value(&options).unwrap();
    let local = "198.18.7.1:50000".parse().unwrap();
    let (client, dtls) = ClientTransport::in_memory(&json, false, false, local, sim.now).unwrap();
    sim.worker.connect_transport(&id, &serde_json::from_value(dtls).unwrap()).unwrap();
    let mut b = Subscriber { transport: client, inbox: Inbox::default(), consumers: Vec::new(), ice_states: Vec::new() };
    b.consume(&mut sim, &producer).unwrap();
    let flowing = run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(10), |_, s| s[0].received(MediaKind::Video).len() > 30);
    assert!(flowing, "the call is up");

    let input = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/regressions/datagram/stun-spoofed-addresses")).unwrap();
    let requests = binding_requests(&input);
    assert_eq!(requests.len(), 40);
    let username = format!("{ufrag}:fuzz");
    for (to, from, flags, priority) in &requests {
        assert_eq!((to % 4, flags & 3), (1, 2), "to the subscriber, with a wrong password");
        let binding = stun::Binding {
            username: &username,
            password: Some("a wrong password"),
            transaction: [7; 12],
            priority: *priority,
            ..Default::default()
        };
        sim.worker.handle_datagram(sim.now, *from, &binding.to_bytes());
    }

    // The subscriber leaves without a word; the stranger keeps sending from those addresses.
    let sources: Vec<SocketAddr> = requests.iter().map(|r| r.1).collect();
    let dropped = sim.worker.stats().datagrams_dropped;
    let mut sent = 0;
    let end = sim.now + sfu::EngineConfig::DEFAULT_IDLE_TIMEOUT + Duration::from_secs(2);
    let mut step = 0;
    while sim.now < end && !sim.events.iter().any(|e| matches!(e, EngineEvent::TransportClosed { transport, .. } if *transport == id)) {
        a.pump(sim.now);
        sim.step(&mut [&mut a.transport]);
        if step % 500 == 0 {
            sim.worker.handle_datagram(sim.now, sources[sent % sources.len()], &[0x80; 40]);
            sent += 1;
        }
        step += 1;
    }
    assert_eq!(sim.worker.stats().datagrams_dropped - dropped, sent as u64, "the stranger's datagrams reach no transport");
    let closed = sim.events.iter().find_map(|e| match e {
        EngineEvent::TransportClosed { transport, reason, .. } if *transport == id => Some(*reason),
        _ => None,
    });
    assert_eq!(closed, Some(CloseReason::Silent), "the subscriber's transport closes for silence all the same");
}
