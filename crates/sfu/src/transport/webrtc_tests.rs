//! A WebRTC transport alone: what it announces, the DTLS role rule, buffering until the first
//! produce, and the extension ids it takes from that produce.
use std::time::Instant;
use str0m::ice::StunMessage;

use super::*;
use crate::error::ErrorCode;
use crate::ortc::{default_media_codecs, router_rtp_capabilities};
use crate::rtp_parameters::{DtlsFingerprint, RtpHeaderExtensionParameters};

fn router_caps() -> RtpCapabilities {
    router_rtp_capabilities(&default_media_codecs()).unwrap()
}

fn addr() -> SocketAddr {
    "198.18.0.1:40000".parse().unwrap()
}

fn local() -> Local {
    Local { addr: addr(), tcp: true, downlink_bwe: true }
}

fn cert() -> str0m::config::DtlsCert {
    super::super::cert::LocalCert::default().get(Instant::now()).unwrap()
}

fn fingerprint(role: Option<DtlsRole>) -> DtlsParameters {
    DtlsParameters { role, fingerprints: vec![DtlsFingerprint { algorithm: "sha-256".into(), value: vec!["0A"; 32].join(":") }] }
}

#[test]
fn options_announce_ice_lite_udp_then_tcp_host_candidates_and_role_auto() {
    let mut t = WebRtcTransport::new(Direction::Recv, &router_caps(), None, local(), cert(), Instant::now()).unwrap();
    let id = TransportId::new(0, crate::ids::Key::default().next());
    let o = t.options(id.clone());
    assert_eq!(o.id, id);
    assert!(o.ice_parameters.ice_lite);
    assert_eq!(o.ice_parameters.username_fragment, t.ufrag());
    assert_eq!((o.ice_candidates.len(), o.ice_candidates[0].port, o.ice_candidates[0].protocol.as_str()), (2, 40000, "udp"));
    let tcp = &o.ice_candidates[1];
    assert_eq!((tcp.protocol.as_str(), tcp.port, tcp.tcp_type.as_deref()), ("tcp", 40000, Some("passive")));
    assert!(tcp.priority < o.ice_candidates[0].priority, "UDP first");
    assert_eq!(o.dtls_parameters.role, Some(DtlsRole::Auto));
    assert_eq!(o.dtls_parameters.fingerprints[0].algorithm, "sha-256");
}

#[test]
fn a_send_transport_buffers_until_its_first_produce() {
    let now = Instant::now();
    let caps = router_caps();
    let mut t = WebRtcTransport::new(Direction::Send, &caps, Some(caps.clone()), local(), cert(), now).unwrap();
    let peer: SocketAddr = "198.18.0.2:5000".parse().unwrap();
    for i in 0..(MAX_PENDING + 10) {
        assert_eq!(t.receive(now, Protocol::Udp, peer, &[i as u8]), Arrival::Buffered);
    }
    assert!(!t.silent(now, Duration::from_secs(1)), "heard just now");
    let replay = t.thaw(now, &[]).unwrap();
    assert_eq!(replay.len(), MAX_PENDING, "at most {MAX_PENDING} kept");
    assert_eq!(replay[0], (Protocol::Udp, peer, vec![0]));
    assert_eq!(t.receive(now, Protocol::Udp, peer, &[1]), Arrival::Ready);
    assert!(t.thaw(now, &[]).unwrap().is_empty(), "thawed once");
}

#[test]
fn the_first_produce_decides_the_extension_ids() {
    let now = Instant::now();
    let caps = router_caps();
    let mut t = WebRtcTransport::new(Direction::Send, &caps, Some(caps.clone()), local(), cert(), now).unwrap();
    // Chrome numbers the mid extension 9 and audio level 10, whatever the capabilities said.
    let ext = |uri: &str, id: u8| RtpHeaderExtensionParameters { uri: uri.into(), id, encrypt: false, parameters: Default::default() };
    t.thaw(now, &[ext(ortc::URI_MID, 9), ext(ortc::URI_AUDIO_LEVEL, 10)]).unwrap();
    let id_of = |uri: &str| t.ext_ids.iter().find(|(_, u)| u == uri).map(|(i, _)| *i);
    assert_eq!(id_of(ortc::URI_MID), Some(9));
    assert_eq!(id_of(ortc::URI_AUDIO_LEVEL), Some(10));
    let ids: Vec<u8> = t.ext_ids.iter().map(|(i, _)| *i).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "no id is used twice (sorted): {:?}", t.ext_ids);
    assert!(ids.len() >= 3, "the capabilities' other extensions stay: {:?}", t.ext_ids);
}

#[test]
fn connect_follows_mediasoups_dtls_role_rule_once() {
    let now = Instant::now();
    for (role, we_are_client) in
        [(Some(DtlsRole::Client), false), (Some(DtlsRole::Server), true), (Some(DtlsRole::Auto), true), (None, true)]
    {
        let mut t = WebRtcTransport::new(Direction::Recv, &router_caps(), None, local(), cert(), now).unwrap();
        t.connect(&fingerprint(role)).unwrap();
        assert_eq!(t.dtls_active, Some(we_are_client), "client says {role:?}");
        assert_eq!(t.connect(&fingerprint(role)).unwrap_err().code(), "already_connected");
    }
}

#[test]
fn a_send_transport_needs_capabilities_the_router_can_take() {
    let now = Instant::now();
    let caps = router_caps();
    let e = WebRtcTransport::new(Direction::Send, &caps, None, local(), cert(), now).err().unwrap();
    assert_eq!(e.code(), "invalid_parameters");
    let mut foreign = caps.clone();
    foreign.codecs.retain(|c| c.mime_type.eq_ignore_ascii_case("video/H264"));
    foreign.codecs.iter_mut().for_each(|c| c.mime_type = "video/AV1".into());
    let e = WebRtcTransport::new(Direction::Send, &caps, Some(foreign), local(), cert(), now).err().unwrap();
    assert_eq!(e.code(), "invalid_parameters", "{e}");
}

#[test]
fn a_receive_transport_estimates_its_downlink_only_for_a_client_that_sends_transport_cc() {
    let now = Instant::now();
    let caps = router_caps();
    let recv = |client: Option<RtpCapabilities>, bwe: bool| {
        let local = Local { downlink_bwe: bwe, ..local() };
        WebRtcTransport::new(Direction::Recv, &caps, client, local, cert(), now).unwrap().estimates_downlink()
    };
    let mut no_twcc = caps.clone();
    no_twcc.header_extensions.retain(|e| e.uri != ortc::URI_TWCC);
    assert!(recv(Some(caps.clone()), true), "a browser's capabilities (transport-cc offered)");
    assert!(recv(None, true), "capabilities unknown: estimated");
    assert!(!recv(Some(no_twcc), true), "no transport-cc feedback would come: the estimate would stay at its start");
    assert!(!recv(Some(caps.clone()), false), "off for the engine");
    let send = WebRtcTransport::new(Direction::Send, &caps, Some(caps.clone()), local(), cert(), now).unwrap();
    assert!(!send.estimates_downlink(), "a send transport sends no media");
}

/// A binding request "local:remote" with PRIORITY and a MESSAGE-INTEGRITY keyed by `pass`
/// (RFC 5389 15.4); `pass: None` leaves the integrity zeroed (a forgery).
fn binding_request(username: &str, pass: Option<&str>) -> Vec<u8> {
    let name = username.as_bytes();
    let mut attrs = vec![0x00, 0x06];
    attrs.extend_from_slice(&(name.len() as u16).to_be_bytes());
    attrs.extend_from_slice(name);
    attrs.resize(4 + name.len().div_ceil(4) * 4, 0);
    attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x1e, 0xff]);
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&((attrs.len() + 24) as u16).to_be_bytes());
    m.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&attrs);
    let mac = match pass {
        Some(p) => str0m::crypto::from_feature_flags().sha1_hmac_provider.sha1_hmac(p.as_bytes(), &[&m]),
        None => [0; 20],
    };
    m.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
    m.extend_from_slice(&mac);
    m
}

#[test]
fn a_new_client_ufrag_is_taken_only_with_our_password() {
    let mut t = WebRtcTransport::new(Direction::Recv, &router_caps(), None, local(), cert(), Instant::now()).unwrap();
    let ours = t.ufrag().to_string();
    let learn = |t: &mut WebRtcTransport, remote: &str, pass: Option<&str>| {
        let bytes = binding_request(&format!("{ours}:{remote}"), pass);
        let msg = StunMessage::parse(&bytes).unwrap();
        t.learn_remote_ufrag(&msg, remote);
    };
    learn(&mut t, "first", None);
    assert_eq!(t.remote_ufrag.as_deref(), Some("first"), "the first ufrag is taken (str0m checks the request itself)");
    learn(&mut t, "forged", None);
    assert_eq!(t.remote_ufrag.as_deref(), Some("first"), "a request without our password moves nothing");
    learn(&mut t, "wrongpass", Some("not-our-password"));
    assert_eq!(t.remote_ufrag.as_deref(), Some("first"));
    let pass = t.creds.pass.clone();
    learn(&mut t, "restarted", Some(&pass));
    assert_eq!(t.remote_ufrag.as_deref(), Some("restarted"), "the client restarted ICE");
    // restartIce on our side: new credentials; the client's next ufrag needs the new password.
    let new = t.restart_ice();
    assert_ne!(new.username_fragment, ours);
    assert_eq!(t.ufrag(), new.username_fragment);
    assert_ne!(new.password, pass);
}
