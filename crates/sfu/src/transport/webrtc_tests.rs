//! A WebRTC transport alone: what it announces, the DTLS role rule, buffering until the first
//! produce, and the extension ids it takes from that produce.
use std::time::Instant;

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

fn fingerprint(role: Option<DtlsRole>) -> DtlsParameters {
    DtlsParameters { role, fingerprints: vec![DtlsFingerprint { algorithm: "sha-256".into(), value: vec!["0A"; 32].join(":") }] }
}

#[test]
fn options_announce_ice_lite_one_host_candidate_and_role_auto() {
    let mut t = WebRtcTransport::new(Direction::Recv, &router_caps(), None, addr(), Instant::now()).unwrap();
    let id = TransportId::new(0, crate::ids::Key::default().next());
    let o = t.options(id.clone());
    assert_eq!(o.id, id);
    assert!(o.ice_parameters.ice_lite);
    assert_eq!(o.ice_parameters.username_fragment, t.ufrag());
    assert_eq!((o.ice_candidates.len(), o.ice_candidates[0].port, o.ice_candidates[0].protocol.as_str()), (1, 40000, "udp"));
    assert_eq!(o.dtls_parameters.role, Some(DtlsRole::Auto));
    assert_eq!(o.dtls_parameters.fingerprints[0].algorithm, "sha-256");
}

#[test]
fn a_send_transport_buffers_until_its_first_produce() {
    let now = Instant::now();
    let caps = router_caps();
    let mut t = WebRtcTransport::new(Direction::Send, &caps, Some(caps.clone()), addr(), now).unwrap();
    let peer: SocketAddr = "198.18.0.2:5000".parse().unwrap();
    for i in 0..(MAX_PENDING + 10) {
        assert_eq!(t.receive(now, peer, &[i as u8]), Arrival::Buffered);
    }
    assert!(!t.silent(now, Duration::from_secs(1)), "heard just now");
    let replay = t.thaw(now, &[]).unwrap();
    assert_eq!(replay.len(), MAX_PENDING, "at most {MAX_PENDING} kept");
    assert_eq!(replay[0], (peer, vec![0]));
    assert_eq!(t.receive(now, peer, &[1]), Arrival::Ready);
    assert!(t.thaw(now, &[]).unwrap().is_empty(), "thawed once");
}

#[test]
fn the_first_produce_decides_the_extension_ids() {
    let now = Instant::now();
    let caps = router_caps();
    let mut t = WebRtcTransport::new(Direction::Send, &caps, Some(caps.clone()), addr(), now).unwrap();
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
        let mut t = WebRtcTransport::new(Direction::Recv, &router_caps(), None, addr(), now).unwrap();
        t.connect(&fingerprint(role)).unwrap();
        assert_eq!(t.dtls_active, Some(we_are_client), "client says {role:?}");
        assert_eq!(t.connect(&fingerprint(role)).unwrap_err().code(), "already_connected");
    }
}

#[test]
fn a_send_transport_needs_capabilities_the_router_can_take() {
    let now = Instant::now();
    let caps = router_caps();
    let e = WebRtcTransport::new(Direction::Send, &caps, None, addr(), now).err().unwrap();
    assert_eq!(e.code(), "invalid_parameters");
    let mut foreign = caps.clone();
    foreign.codecs.retain(|c| c.mime_type.eq_ignore_ascii_case("video/H264"));
    foreign.codecs.iter_mut().for_each(|c| c.mime_type = "video/AV1".into());
    let e = WebRtcTransport::new(Direction::Send, &caps, Some(foreign), addr(), now).err().unwrap();
    assert_eq!(e.code(), "invalid_parameters", "{e}");
}
