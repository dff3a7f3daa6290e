//! The worker alone, in memory: objects, their ids and errors, what closing cascades to, and
//! what a plain transport sends. End-to-end media through a worker (str0m peers on a simulated
//! clock) is tested in crates/testpeer/tests.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::error::ErrorCode;
use crate::ortc::{default_media_codecs, router_rtp_capabilities};
use crate::rtp_parameters::{DtlsFingerprint, DtlsParameters, DtlsRole, MediaKind, RtpParameters};
use crate::Direction;

fn worker(now: Instant) -> Worker {
    let caps = Arc::new(router_rtp_capabilities(&default_media_codecs()).unwrap());
    let config = WorkerConfig {
        index: 3,
        addr: "198.18.0.1:40000".parse().unwrap(),
        caps,
        nack_history: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(2),
        tcp: true,
        downlink_bwe: true,
    };
    Worker::new(config, now)
}

fn opus_parameters(ssrc: u32) -> RtpParameters {
    serde_json::from_value(serde_json::json!({
        "mid": "0",
        "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}],
        "encodings": [{"ssrc": ssrc}],
        "rtcp": {"cname": "c"},
    }))
    .unwrap()
}

/// A send transport whose capabilities are the router's own (payload types included).
fn send_transport(w: &mut Worker, now: Instant, router: &RouterId) -> TransportId {
    let caps = (*w.config.caps).clone();
    w.create_webrtc_transport(now, router, Direction::Send, Some(caps)).unwrap().id
}

#[test]
fn a_worker_s_transports_share_one_dtls_certificate() {
    let now = Instant::now();
    let mut w = worker(now);
    let router = w.create_router();
    let fingerprint = |o: crate::WebRtcTransportOptions| o.dtls_parameters.fingerprints[0].value.clone();
    let a = fingerprint(w.create_webrtc_transport(now, &router, Direction::Recv, None).unwrap());
    let caps = (*w.config.caps).clone();
    let b = fingerprint(w.create_webrtc_transport(now, &router, Direction::Send, Some(caps)).unwrap());
    assert_eq!(a, b);
    let later = now + crate::transport::cert::RENEW_AFTER;
    let c = fingerprint(w.create_webrtc_transport(later, &router, Direction::Recv, None).unwrap());
    assert_ne!(a, c, "renewed");
    // Each transport still has its own ICE credentials.
    let ufrags: std::collections::HashSet<_> = w.by_ufrag.keys().collect();
    assert_eq!(ufrags.len(), 3);
}

/// `cargo test -p sfu --release -- --ignored --nocapture transport_creation_cost`
#[test]
#[ignore = "a measurement, not a check"]
fn transport_creation_cost() {
    let now = Instant::now();
    let mut w = worker(now);
    let router = w.create_router();
    let _ = w.create_webrtc_transport(now, &router, Direction::Recv, None).unwrap();
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        let _ = w.create_webrtc_transport(now, &router, Direction::Recv, None).unwrap();
    }
    println!("Worker::create_webrtc_transport (recv): {:?}", t.elapsed() / n);
    let provider = str0m::crypto::from_feature_flags();
    let t = Instant::now();
    for _ in 0..n {
        let _ = provider.dtls_provider.generate_certificate().unwrap();
    }
    println!("a DTLS certificate: {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let _ = str0m::Rtc::new(now);
    }
    println!("Rtc::new (makes a certificate): {:?}", t.elapsed() / n);
}

#[test]
fn ids_name_the_worker_and_forged_ids_find_nothing() {
    let now = Instant::now();
    let mut w = worker(now);
    let router = w.create_router();
    assert_eq!(router.worker(), Some(3));
    let t = send_transport(&mut w, now, &router);
    // Same counter, another random part: refused.
    let (head, last) = t.as_str().split_at(t.as_str().len() - 1);
    let forged = format!("{head}{}", if last == "0" { "1" } else { "0" });
    let forged: TransportId = serde_json::from_value(serde_json::json!(forged)).unwrap();
    assert_ne!(forged, t);
    assert_eq!(w.close_transport(&forged).unwrap_err().code(), "not_found");
    assert_eq!(w.close_router(&router).map_err(|e| e.code()), Ok(()));
    assert_eq!(w.close_router(&router).unwrap_err().code(), "not_found", "closed once");
}

#[test]
fn operations_say_what_is_wrong_with_their_own_errors() {
    let now = Instant::now();
    let mut w = worker(now);
    let router = w.create_router();
    let e = w.create_webrtc_transport(now, &router, Direction::Send, None).unwrap_err();
    assert_eq!(e.code(), "invalid_parameters", "{e}");
    let recv = w.create_webrtc_transport(now, &router, Direction::Recv, None).unwrap().id;
    let e = w.produce(now, &recv, MediaKind::Audio, opus_parameters(1111)).unwrap_err();
    assert_eq!(e.code(), "wrong_direction", "{e}");
    let send = send_transport(&mut w, now, &router);
    let p = w.produce(now, &send, MediaKind::Audio, opus_parameters(1111)).unwrap();
    let e = w.produce(now, &send, MediaKind::Audio, opus_parameters(1111)).unwrap_err();
    assert_eq!(e.code(), "duplicate_ssrc", "{e}");
    let e = w.consume(&send, &p, &w.config.caps.clone()).unwrap_err();
    assert_eq!(e.code(), "wrong_direction", "{e}");
    let no_fp = DtlsParameters { role: Some(DtlsRole::Client), fingerprints: vec![] };
    assert_eq!(w.connect_transport(&recv, &no_fp).unwrap_err().code(), "invalid_parameters");
    let fp = DtlsParameters {
        role: Some(DtlsRole::Client),
        fingerprints: vec![DtlsFingerprint { algorithm: "sha-256".into(), value: vec!["AB"; 32].join(":") }],
    };
    w.connect_transport(&recv, &fp).unwrap();
    assert_eq!(w.connect_transport(&recv, &fp).unwrap_err().code(), "already_connected");
}

#[test]
fn closing_a_producers_transport_closes_its_consumers() {
    let now = Instant::now();
    let mut w = worker(now);
    let router = w.create_router();
    let send = send_transport(&mut w, now, &router);
    let recv = w.create_webrtc_transport(now, &router, Direction::Recv, None).unwrap().id;
    let p = w.produce(now, &send, MediaKind::Audio, opus_parameters(2222)).unwrap();
    let c = w.consume(&recv, &p, &w.config.caps.clone()).unwrap();
    assert_eq!(c.rtp_parameters.mid.as_deref(), Some("0"));
    let s = w.stats();
    assert_eq!((s.routers, s.transports, s.producers, s.consumers), (1, 2, 1, 1));
    w.close_transport(&send).unwrap();
    let s = w.stats();
    assert_eq!((s.transports, s.producers, s.consumers), (1, 0, 0));
    assert_eq!(w.set_consumer_paused(now, &c.id, false).unwrap_err().code(), "not_found");
    w.close_router(&router).unwrap();
    assert_eq!(w.stats().transports, 0);
}

#[test]
fn a_plain_transport_says_bye_to_its_recorder_when_closed() {
    let now = Instant::now();
    let mut w = worker(now);
    let router = w.create_router();
    let send = send_transport(&mut w, now, &router);
    let p = w.produce(now, &send, MediaKind::Audio, opus_parameters(3333)).unwrap();
    let recorder = "127.0.0.1:5004".parse().unwrap();
    let plain = w.create_plain_transport(&router, recorder).unwrap();
    let c = w.consume(&plain, &p, &w.config.caps.clone()).unwrap();
    assert!(c.rtp_parameters.header_extensions.is_empty() && c.rtp_parameters.codecs.iter().all(|c| !c.is_rtx()));
    let ssrc = c.rtp_parameters.encodings[0].ssrc.unwrap();
    // Every liveness tick, an empty receiver report keeps the recorder hearing from us.
    w.handle_timeout(now + Duration::from_millis(600));
    let rtcp: Vec<Transmit> = std::iter::from_fn(|| w.poll_transmit()).filter(|t| t.destination.port() == 5005).collect();
    assert_eq!(rtcp.len(), 1);
    assert_eq!(rtcp[0].contents[..4], [0x80, 201, 0, 1]);
    w.close_transport(&plain).unwrap();
    let bye = w.poll_transmit().expect("RTCP BYE on close");
    assert_eq!(bye.destination.port(), 5005);
    assert_eq!(bye.contents[8..], [[0x81, 203, 0, 1].as_slice(), &ssrc.to_be_bytes()].concat()[..]);
}

#[test]
fn datagrams_from_strangers_are_counted_and_dropped() {
    let now = Instant::now();
    let mut w = worker(now);
    let router = w.create_router();
    send_transport(&mut w, now, &router);
    let stranger = "198.18.0.9:5000".parse().unwrap();
    for data in [&[][..], &[0u8; 1], &[0x80; 12], &[0x00, 0x01, 0x00, 0x00], &[0xff; 1500]] {
        w.handle_datagram(now, stranger, data);
    }
    let s = w.stats();
    assert_eq!((s.packets_in, s.datagrams_dropped), (5, 5));
    assert!(w.poll_transmit().is_none());
}

#[test]
fn a_transport_heard_once_then_silent_is_closed_and_said_so() {
    let now = Instant::now();
    let mut w = worker(now);
    let router = w.create_router();
    let recv = w.create_webrtc_transport(now, &router, Direction::Recv, None).unwrap();
    let never = w.create_webrtc_transport(now, &router, Direction::Recv, None).unwrap();
    // A STUN binding request naming our ufrag, signed: the transport has heard from its peer.
    let peer = "198.18.0.2:6000".parse().unwrap();
    let stun = stun_binding_request(&format!("{}:peer", recv.ice_parameters.username_fragment), &recv.ice_parameters.password);
    w.handle_datagram(now, peer, &stun);
    let mut t = now;
    let mut closed = None;
    while closed.is_none() && t < now + Duration::from_secs(5) {
        t += Duration::from_millis(100);
        w.handle_timeout(t);
        while w.poll_transmit().is_some() {}
        closed = w.poll_event().map(|e| (e, t));
    }
    let (event, at) = closed.expect("closed for silence");
    assert_eq!(
        event,
        EngineEvent::TransportClosed { router, transport: recv.id, producers: vec![], consumers: vec![], reason: CloseReason::Silent }
    );
    let waited = at - now;
    assert!(waited > Duration::from_secs(2) && waited <= Duration::from_millis(2600), "after {waited:?}");
    assert_eq!(w.stats().transports, 1, "{} never contacted is kept", never.id);
}

/// A STUN binding request (RFC 5389) with USERNAME, PRIORITY and a MESSAGE-INTEGRITY made with
/// `password` (no FINGERPRINT).
fn stun_binding_request(username: &str, password: &str) -> Vec<u8> {
    let name = username.as_bytes();
    let mut m = vec![0x00, 0x01, 0, 0];
    m.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&0x0006u16.to_be_bytes());
    m.extend_from_slice(&(name.len() as u16).to_be_bytes());
    m.extend_from_slice(name);
    m.resize(20 + 4 + name.len().div_ceil(4) * 4, 0);
    m.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x1e, 0xff]); // PRIORITY
                                                                            // The length covers MESSAGE-INTEGRITY while it is computed (RFC 5389 15.4).
    let len = (m.len() - 20 + 24) as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    let hmac = str0m::crypto::from_feature_flags().sha1_hmac_provider.sha1_hmac(password.as_bytes(), &[&m]);
    m.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
    m.extend_from_slice(&hmac);
    m
}

#[test]
fn only_signed_binding_requests_teach_the_demux_an_address_and_few_of_them() {
    // fuzz/regressions/datagram/stun-spoofed-addresses: binding requests naming a transport's
    // ufrag (which travels in clear) with any MESSAGE-INTEGRITY grew `by_addr` without bound,
    // and every address so learned counted as the peer being heard.
    let now = Instant::now();
    let mut w = worker(now);
    let router = w.create_router();
    let t = w.create_webrtc_transport(now, &router, Direction::Recv, None).unwrap();
    let username = format!("{}:peer", t.ice_parameters.username_fragment);
    let forged = stun_binding_request(&username, "not the password");
    for port in 1000..1100 {
        w.handle_datagram(now, SocketAddr::from(([198, 51, 100, 1], port)), &forged);
    }
    assert_eq!(w.by_addr.len(), 0, "unsigned requests teach nothing");
    assert_eq!(w.stats().datagrams_dropped, 100);
    let signed = stun_binding_request(&username, &t.ice_parameters.password);
    let addr = |port| (SocketAddr::from(([198, 51, 100, 2], port)), Protocol::Udp);
    for port in 1000..1100 {
        w.handle_datagram(now, addr(port).0, &signed);
    }
    assert_eq!(w.by_addr.len(), crate::transport::path::MAX_PEER_ADDRS, "even the peer gets a few");
    assert!(w.by_addr.contains_key(&addr(1099)) && !w.by_addr.contains_key(&addr(1000)), "the oldest is forgotten");
    w.handle_datagram(now, addr(1092).0, &signed); // confirmed again: now the most recent
    w.handle_datagram(now, addr(2000).0, &signed);
    assert!(w.by_addr.contains_key(&addr(1092)) && !w.by_addr.contains_key(&addr(1093)));
    w.close_transport(&t.id).unwrap();
    assert!(w.by_addr.is_empty());
}

#[test]
fn a_transport_cc_number_str0m_would_extend_below_zero_never_reaches_it() {
    // fuzz/regressions/datagram/twcc-below-zero: str0m extended such a number to nearly 2^64 and
    // its next transport-cc feedback report grew until memory ran out. The guard reads the clear
    // header, before str0m authenticates anything, so plain RTP shows it.
    let now = Instant::now();
    let mut w = worker(now);
    let router = w.create_router();
    let options = w.create_webrtc_transport(now, &router, Direction::Send, Some((*w.config.caps).clone())).unwrap();
    let mut params = opus_parameters(4444);
    params.header_extensions = serde_json::from_value(serde_json::json!([{"uri": crate::ortc::URI_TWCC, "id": 4}])).unwrap();
    w.produce(now, &options.id, MediaKind::Audio, params).unwrap();
    let peer = SocketAddr::from(([198, 18, 0, 2], 6000));
    let stun = stun_binding_request(&format!("{}:peer", options.ice_parameters.username_fragment), &options.ice_parameters.password);
    w.handle_datagram(now, peer, &stun);
    let rtp = |twcc: u16| {
        let mut p = vec![0x90, 100, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&4444u32.to_be_bytes());
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x41]);
        p.extend_from_slice(&twcc.to_be_bytes());
        p.extend_from_slice(&[0, 0xfc, 1, 2, 3]);
        p
    };
    w.handle_datagram(now, peer, &rtp(40_000));
    assert_eq!(w.stats().rtp_guarded, 1, "kept from str0m");
    w.handle_datagram(now, peer, &rtp(7));
    assert_eq!(w.stats().rtp_guarded, 1, "an ordinary number goes to str0m (which refuses it unencrypted)");
}

#[test]
fn an_empty_cname_is_a_missing_one() {
    // Chrome's rid simulcast has no a=ssrc lines: mediasoup-client sends `"cname": ""`, and a
    // consumer with an empty cname makes mediasoup-client write `a=msid: <track>`, which Chrome
    // refuses. mediasoup gives such producers the transport's cname (or a random one).
    let now = Instant::now();
    let mut w = worker(now);
    let router = w.create_router();
    let t = send_transport(&mut w, now, &router);
    let mut params = opus_parameters(1000);
    params.rtcp.cname = Some(String::new());
    let p = w.produce(now, &t, MediaKind::Audio, params).unwrap();
    let recv = w.create_webrtc_transport(now, &router, Direction::Recv, None).unwrap().id;
    let caps = (*w.config.caps).clone();
    let c = w.consume(&recv, &p, &caps).unwrap();
    let cname = c.rtp_parameters.rtcp.cname.unwrap_or_default();
    assert_eq!(cname.len(), 8, "a generated cname, not {cname:?}");
}
