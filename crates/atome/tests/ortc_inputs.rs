//! Client inputs that once stopped a worker or got answers other than mediasoup's (issue
//! "Engine correctness against the real mediasoup", its ten inputs), sent over the real
//! WebSocket as a new user's client would, each with the answer mediasoup gives (or the one
//! the contract defines where mediasoup has no counterpart).
mod common;

use std::time::{Duration, Instant};

use common::{TestServer, Ws};
use serde_json::{json, Value};
use sfu::rtp_parameters::MediaKind;
use testpeer::{produce_parameters, send_rtp_capabilities, ClientTransport, Inbox, Track};

const A: &str = "+33611111111";

/// A logged-in user alone in a public room of their own: (socket, room join reply).
async fn alone_in_a_room(s: &TestServer) -> (Ws, Value) {
    let token = s.dev_login(A, "Alice").await;
    let (_, room) = s.post("/rooms", Some(&token), json!({"visibility": "public"})).await;
    let room_id = room["room_id"].as_str().unwrap().to_string();
    let (_, joined) = s.post(&format!("/rooms/{room_id}/join"), Some(&token), json!({})).await;
    let mut ws = Ws::auth(s, &token).await;
    let r = ws
        .request("joinRoom", json!({"room_id": room_id, "join_token": joined["join_token"], "rtpCapabilities": joined["rtpCapabilities"]}))
        .await;
    assert_eq!(r["type"], "roomJoined", "{r}");
    (ws, r)
}

/// The router's capabilities seen as a Chrome-like client's send capabilities, plus `extra` codecs.
fn send_caps(joined: &Value, extra: &[Value]) -> Value {
    let caps = serde_json::from_value(joined["rtpCapabilities"].clone()).unwrap();
    let mut v = serde_json::to_value(send_rtp_capabilities(&caps)).unwrap();
    v["codecs"].as_array_mut().unwrap().extend(extra.iter().cloned());
    v
}

async fn send_transport(ws: &mut Ws, caps: Value) -> String {
    let r = ws.request("createTransport", json!({"direction": "send", "rtpCapabilities": caps})).await;
    assert_eq!(r["type"], "transportCreated", "{r}");
    r["transportOptions"]["id"].as_str().unwrap().to_string()
}

async fn produce(ws: &mut Ws, transport: &str, kind: &str, params: Value) -> Value {
    ws.request("produce", json!({"transport_id": transport, "kind": kind, "rtpParameters": params, "appData": {}})).await
}

fn assert_refused(r: &Value, code: &str) {
    assert_eq!((r["type"].as_str(), r["code"].as_str()), (Some("error"), Some(code)), "{r}");
}

fn h264_codec(pt: u8, profile_level_id: Value) -> Value {
    json!({"kind": "video", "mimeType": "video/H264", "preferredPayloadType": pt, "clockRate": 90000,
           "parameters": {"packetization-mode": 1, "level-asymmetry-allowed": 1, "profile-level-id": profile_level_id},
           "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]})
}

fn h264_params(mid: &str, ssrc: u32, profile_level_id: Value) -> Value {
    json!({"mid": mid, "codecs": [{"mimeType": "video/H264", "payloadType": 102, "clockRate": 90000,
           "parameters": {"packetization-mode": 1, "level-asymmetry-allowed": 1, "profile-level-id": profile_level_id}}],
           "encodings": [{"ssrc": ssrc}], "rtcp": {"cname": "c"}})
}

/// Consumes `producer` on a new receive transport of the same peer; returns consumerOptions.
async fn consume_own(ws: &mut Ws, producer: &Value) -> Value {
    let r = ws.request("createTransport", json!({"direction": "recv"})).await;
    let recv = r["transportOptions"]["id"].clone();
    let r = ws.request("consume", json!({"transport_id": recv, "producer_id": producer})).await;
    assert_eq!(r["type"], "consumerCreated", "{r}");
    r["consumerOptions"].clone()
}

async fn health(s: &TestServer) -> Value {
    s.get("/health", None).await.1
}

#[tokio::test]
async fn h264_profile_level_ids_are_read_as_mediasoup_reads_them() {
    let s = TestServer::start_with(|c| c.workers = Some(1)).await;
    let (mut ws, joined) = alone_in_a_room(&s).await;
    // 1: a non-hex profile-level-id, in the capabilities and in produce: refused, worker alive.
    let t = send_transport(&mut ws, send_caps(&joined, &[h264_codec(102, json!("aé"))])).await;
    let r = produce(&mut ws, &t, "video", h264_params("0", 5000, json!("aé"))).await;
    assert_refused(&r, "unsupported_codec");
    // 2: a number (as sdp-transform gives all-digit values) and Baseline: refused as mediasoup.
    let t = send_transport(&mut ws, send_caps(&joined, &[h264_codec(102, json!(640032))])).await;
    assert_refused(&produce(&mut ws, &t, "video", h264_params("0", 5002, json!(640032))).await, "unsupported_codec");
    let t = send_transport(&mut ws, send_caps(&joined, &[h264_codec(102, json!("42001f"))])).await;
    assert_refused(&produce(&mut ws, &t, "video", h264_params("0", 5004, json!("42001f"))).await, "unsupported_codec");
    // Constrained Baseline 5.2 with level asymmetry: accepted; consumers get the router's answer.
    let t = send_transport(&mut ws, send_caps(&joined, &[h264_codec(102, json!("42e034"))])).await;
    let r = produce(&mut ws, &t, "video", h264_params("0", 5006, json!("42e034"))).await;
    assert_eq!(r["type"], "produced", "{r}");
    let consumer = consume_own(&mut ws, &r["producer_id"]).await;
    assert_eq!(consumer["rtpParameters"]["codecs"][0]["parameters"]["profile-level-id"], "42e034", "{consumer}");
    // The worker is alive: a VP8 producer works and /health shows it running.
    let t = send_transport(&mut ws, send_caps(&joined, &[])).await;
    let r = produce(&mut ws, &t, "video", serde_json::to_value(produce_parameters(MediaKind::Video, "0", 7000)).unwrap()).await;
    assert_eq!(r["type"], "produced", "{r}");
    let h = health(&s).await;
    assert_eq!(h["media_workers"][0]["state"], "running", "{h}");
    assert_eq!(h["media"]["producers"], 2, "{h}");
}

#[tokio::test]
async fn opus_consumers_get_the_producers_parameters() {
    let s = TestServer::start().await;
    let (mut ws, joined) = alone_in_a_room(&s).await;
    let t = send_transport(&mut ws, send_caps(&joined, &[])).await;
    let mut params = serde_json::to_value(produce_parameters(MediaKind::Audio, "0", 3000)).unwrap();
    let codec_params = json!({"minptime": 10, "useinbandfec": 1, "stereo": 1, "sprop-stereo": 1, "usedtx": 1});
    params["codecs"][0]["parameters"] = codec_params.clone();
    let r = produce(&mut ws, &t, "audio", params).await;
    assert_eq!(r["type"], "produced", "{r}");
    let consumer = consume_own(&mut ws, &r["producer_id"]).await;
    assert_eq!(consumer["rtpParameters"]["codecs"][0]["parameters"], codec_params, "{consumer}");
}

#[tokio::test]
async fn what_cannot_be_carried_is_refused() {
    let s = TestServer::start().await;
    let (mut ws, joined) = alone_in_a_room(&s).await;
    let t = send_transport(&mut ws, send_caps(&joined, &[])).await;
    // 4: simulcast is carried (tests/simulcast.rs), but not with five streams, nor for audio.
    let mut params = serde_json::to_value(produce_parameters(MediaKind::Video, "0", 7001)).unwrap();
    params["encodings"] = json!([{"ssrc": 7001}, {"ssrc": 7003}, {"ssrc": 7005}, {"ssrc": 7007}, {"ssrc": 7009}]);
    assert_refused(&produce(&mut ws, &t, "video", params).await, "unsupported_simulcast");
    let mut params = serde_json::to_value(produce_parameters(MediaKind::Audio, "0", 7101)).unwrap();
    params["encodings"] = json!([{"ssrc": 7101}, {"ssrc": 7103}]);
    assert_refused(&produce(&mut ws, &t, "audio", params).await, "unsupported_simulcast");
    // 5: video 1000 with RTX 1001, then audio 1001: the SSRC is taken; a mid twice is refused.
    let video = serde_json::to_value(produce_parameters(MediaKind::Video, "0", 1000)).unwrap();
    assert_eq!(video["encodings"][0]["rtx"]["ssrc"], 1001);
    assert_eq!(produce(&mut ws, &t, "video", video).await["type"], "produced");
    let audio = serde_json::to_value(produce_parameters(MediaKind::Audio, "1", 1001)).unwrap();
    assert_refused(&produce(&mut ws, &t, "audio", audio).await, "duplicate_ssrc");
    let same_mid = serde_json::to_value(produce_parameters(MediaKind::Audio, "0", 2000)).unwrap();
    assert_refused(&produce(&mut ws, &t, "audio", same_mid).await, "duplicate_mid");
    let fine = serde_json::to_value(produce_parameters(MediaKind::Audio, "1", 2000)).unwrap();
    assert_eq!(produce(&mut ws, &t, "audio", fine).await["type"], "produced");
    // 10: a send transport whose capabilities name no codec.
    let r = ws.request("createTransport", json!({"direction": "send", "rtpCapabilities": {}})).await;
    assert_refused(&r, "invalid_parameters");
}

#[tokio::test]
async fn only_verifiable_fingerprints_are_taken() {
    let s = TestServer::start().await;
    let (mut ws, joined) = alone_in_a_room(&s).await;
    for alg in ["sha-512", "sha-384"] {
        let t = send_transport(&mut ws, send_caps(&joined, &[])).await;
        let dtls = json!({"role": "client", "fingerprints": [{"algorithm": alg, "value": "AB:".repeat(47) + "CD"}]});
        let r = ws.request("connectTransport", json!({"transport_id": t, "dtlsParameters": dtls})).await;
        assert_refused(&r, "unsupported_fingerprint");
        assert!(r["error"].as_str().unwrap().contains("sha-256"), "the error names what is supported: {r}");
    }
    let t = send_transport(&mut ws, send_caps(&joined, &[])).await;
    let dtls = json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": "AB:CD"}]});
    let r = ws.request("connectTransport", json!({"transport_id": t, "dtlsParameters": dtls})).await;
    assert_refused(&r, "invalid_parameters");
}

/// 6: with `auto` or no role the server is the DTLS client (mediasoup's rule): a client that
/// waits as DTLS server connects and media flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtls_role_auto_or_absent_makes_the_server_the_client() {
    let s = TestServer::start().await;
    let (mut ws, joined) = alone_in_a_room(&s).await;
    for role in [Some("auto"), None] {
        let r = ws.request("createTransport", json!({"direction": "send", "rtpCapabilities": send_caps(&joined, &[])})).await;
        let (mut send, mut dtls) = ClientTransport::dtls_server(&r["transportOptions"], true).unwrap();
        match role {
            Some(role) => dtls["role"] = json!(role),
            None => drop(dtls.as_object_mut().unwrap().remove("role")),
        }
        let r = ws.request("connectTransport", json!({"transport_id": send.id, "dtlsParameters": dtls})).await;
        assert_eq!(r["type"], "transportConnected", "{r}");
        let mut track = Track::new(MediaKind::Audio, "0");
        let params = produce_parameters(MediaKind::Audio, "0", track.ssrc);
        let r = produce(&mut ws, &send.id.clone(), "audio", serde_json::to_value(params).unwrap()).await;
        assert_eq!(r["type"], "produced", "{r}");
        track.declare(&mut send);
        let end = Instant::now() + Duration::from_secs(10);
        let mut inbox = Inbox::default();
        while Instant::now() < end && !send.rtc.is_connected() {
            track.tick(&mut send);
            inbox.take_events(send.pump());
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(send.rtc.is_connected(), "DTLS connects with role {role:?}");
    }
}

/// 9: `requestId` comes back exactly as sent, whatever JSON value it is.
#[tokio::test]
async fn request_ids_are_echoed_byte_for_byte() {
    let s = TestServer::start().await;
    let token = s.dev_login(A, "Alice").await;
    let mut ws = Ws::auth(&s, &token).await;
    for id in ["18446744073709551616", "-0", "1.0", "1e2", r#""x""#, r#"{"a":[1]}"#] {
        ws.send_text(format!(r#"{{"type":"ping","requestId":{id}}}"#)).await;
        let raw = ws.0.recv_text().await.expect("a reply");
        assert!(raw.contains(&format!(r#""requestId":{id}"#)), "sent {id}, got {raw}");
        assert!(raw.contains(r#""type":"pong""#), "{raw}");
    }
}

/// A worker that fails for good ends the calls on it: their peers hear `roomClosed`, /health
/// shows the worker failed, and a new join lands on a worker that runs.
#[tokio::test]
async fn a_failed_worker_closes_its_calls_and_rooms_move() {
    let s = TestServer::start_with(|c| c.workers = Some(2)).await;
    let (mut ws, joined) = alone_in_a_room(&s).await;
    let room_id = joined["room_id"].as_str().unwrap().to_string();
    let t = send_transport(&mut ws, send_caps(&joined, &[])).await;
    let worker: usize = t.strip_prefix('w').and_then(|r| r.split('-').next()).and_then(|w| w.parse().ok()).unwrap();
    let _ = s.engine.inject_fault(worker, None).await;
    let closed = ws.notification("roomClosed").await;
    assert_eq!((closed["room_id"].as_str(), closed["reason"].as_str()), (Some(room_id.as_str()), Some("media_worker_failed")));
    let h = health(&s).await;
    assert_eq!(h["media_workers"][worker]["state"], "failed", "{h}");
    assert_eq!(h["rooms"], 0, "{h}");
    let token = s.dev_login(A, "Alice").await;
    let (_, again) = s.post(&format!("/rooms/{room_id}/join"), Some(&token), json!({})).await;
    let r = ws
        .request("joinRoom", json!({"room_id": room_id, "join_token": again["join_token"], "rtpCapabilities": again["rtpCapabilities"]}))
        .await;
    assert_eq!(r["type"], "roomJoined", "{r}");
    let t = send_transport(&mut ws, send_caps(&joined, &[])).await;
    assert!(!t.starts_with(&format!("w{worker}-")), "the new router is on the running worker: {t}");
}
