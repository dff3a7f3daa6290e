//! WebSocket signaling against the real server: two peers call each other through the engine
//! over real UDP; leaving (or dropping the socket) releases every engine resource.
mod common;

use std::time::{Duration, Instant};

use common::{connected_recv_transport, connected_send_transport, join, room_for_two, TestServer, Ws, A, B};
use serde_json::{json, Value};
use sfu::rtp_parameters::MediaKind;
use testpeer::{expect_consumer, produce_parameters, Inbox, Track};

async fn health_media(s: &TestServer) -> Value {
    s.get("/health", None).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_call_and_leave_cleanly() {
    let s = TestServer::start().await;
    let (a, b, room_id) = room_for_two(&s).await;
    let mut wa = Ws::auth(&s, &a).await;
    let mut wb = Ws::auth(&s, &b).await;
    let joined_a = join(&s, &mut wa, &a, &room_id).await;
    assert!(joined_a["existingProducers"].as_array().unwrap().is_empty());

    // A: send transport with its own payload types, connect, produce video then audio.
    let mut send = connected_send_transport(&mut wa, &joined_a).await;
    let mut tracks = Vec::new();
    for (i, kind) in [MediaKind::Video, MediaKind::Audio].into_iter().enumerate() {
        let track = Track::new(kind, &i.to_string());
        let params = produce_parameters(kind, &track.mid, track.ssrc);
        let r =
            wa.request("produce", json!({"transport_id": send.id, "kind": kind.as_str(), "rtpParameters": params, "appData": {}})).await;
        assert_eq!(r["type"], "produced", "{r}");
        track.declare(&mut send);
        tracks.push(track);
    }

    // B joins late: A's producers are listed; B consumes both.
    let joined_b = join(&s, &mut wb, &b, &room_id).await;
    let existing = joined_b["existingProducers"].as_array().unwrap().clone();
    assert_eq!(existing.len(), 2, "{joined_b}");
    assert!(existing.iter().all(|p| p["peer_user_id"].is_string()));
    let joined_note = wa.notification("participantJoined").await;
    assert_eq!(joined_note["display_name"], "Bob");
    let mut recv = connected_recv_transport(&mut wb).await;
    let mut consumer_ssrcs = Vec::new();
    for p in &existing {
        let r = wb.request("consume", json!({"transport_id": recv.id, "producer_id": p["producer_id"]})).await;
        assert_eq!(r["type"], "consumerCreated", "{r}");
        let options = &r["consumerOptions"];
        assert_eq!(options["producerId"], p["producer_id"]);
        let (ssrc, _) = expect_consumer(&mut recv, options).unwrap();
        consumer_ssrcs.push(ssrc);
        let r = wb.request("resumeConsumer", json!({"consumer_id": options["id"]})).await;
        assert_eq!(r["type"], "consumerResumed", "{r}");
    }

    // Media flows A -> server -> B for 2 s.
    let mut inbox = Inbox::default();
    let end = Instant::now() + Duration::from_secs(8);
    while Instant::now() < end {
        for t in &mut tracks {
            t.tick(&mut send);
        }
        send.pump();
        let events = recv.pump();
        inbox.take_events(events);
        let per = inbox.by_ssrc();
        if consumer_ssrcs.iter().all(|s| per.get(s).is_some_and(|v| v.len() > 40)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let per = inbox.by_ssrc();
    for ssrc in &consumer_ssrcs {
        let n = per.get(ssrc).map_or(0, Vec::len);
        assert!(n > 40, "B received {n} packets on consumer ssrc {ssrc}");
    }
    let h = health_media(&s).await;
    assert_eq!((h["rooms"].as_u64(), h["peers"].as_u64()), (Some(1), Some(2)), "{h}");
    assert_eq!(h["media"]["producers"], 2);
    assert_eq!(h["media"]["consumers"], 2);
    assert!(h["media"]["rtp_forwarded"].as_u64().unwrap() > 80);

    // B leaves: A is told. A's socket drops: everything is released.
    let r = wb.request("leaveRoom", json!({"room_id": room_id})).await;
    assert_eq!(r["type"], "roomLeft", "{r}");
    let left = wa.notification("participantLeft").await;
    assert!(left["peer_user_id"].is_string());
    let h = health_media(&s).await;
    assert_eq!(h["media"]["consumers"], 0, "{h}");
    assert_eq!(h["media"]["transports"], 1, "{h}");
    wa.close().await;
    let mut h = health_media(&s).await;
    for _ in 0..50 {
        if h["media"]["routers"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        h = health_media(&s).await;
    }
    assert_eq!(h["rooms"], 0, "{h}");
    assert_eq!(h["peers"], 0, "{h}");
    for k in ["routers", "transports", "producers", "consumers"] {
        assert_eq!(h["media"][k], 0, "{k}: {h}");
    }
    wb.close().await;
}

#[tokio::test]
async fn auth_comes_first_and_bad_tokens_close_the_socket() {
    let s = TestServer::start().await;
    let mut ws = Ws::connect(&s).await;
    let r = ws.request("joinRoom", json!({"room_id": "x", "join_token": "y", "rtpCapabilities": {}})).await;
    assert_eq!(r["code"], "not_authenticated", "{r}");
    assert!(ws.recv().await.is_none(), "closed after a message before auth");

    let mut ws = Ws::connect(&s).await;
    let r = ws.request("auth", json!({"token": "atk_forged"})).await;
    assert_eq!(r["type"], "authError", "{r}");
    assert!(ws.recv().await.is_none());

    let token = s.dev_login(A, "Alice").await;
    let mut ws = Ws::connect(&s).await;
    let r = ws.request("auth", json!({"token": token, "phone_e164": B})).await;
    assert_eq!(r["type"], "authError", "the phone number must match the token: {r}");
    let mut ws = Ws::connect(&s).await;
    let r = ws.request("auth", json!({"token": token, "phone_e164": "06 11 11 11 11"})).await;
    assert_eq!(r["type"], "authOk", "{r}");
    assert_eq!(r["user"]["phone_e164"], A);
}

#[tokio::test]
async fn peers_touch_only_their_own_objects_and_rooms() {
    let s = TestServer::start().await;
    let (a, b, room_id) = room_for_two(&s).await;
    let c = s.dev_login("+33633333333", "Carol").await;
    let (_, other) = s.post("/rooms", Some(&c), json!({})).await;
    let other_room = other["room_id"].as_str().unwrap().to_string();

    let mut wa = Ws::auth(&s, &a).await;
    let mut wb = Ws::auth(&s, &b).await;
    let mut wc = Ws::auth(&s, &c).await;
    // A join token is bound to its user and room.
    let (_, joined_b) = s.post(&format!("/rooms/{room_id}/join"), Some(&b), json!({})).await;
    let r = wa
        .request(
            "joinRoom",
            json!({"room_id": room_id, "join_token": joined_b["join_token"], "rtpCapabilities": joined_b["rtpCapabilities"]}),
        )
        .await;
    assert_eq!(r["code"], "invalid_join_token", "{r}");
    let r = wc
        .request(
            "joinRoom",
            json!({"room_id": room_id, "join_token": joined_b["join_token"], "rtpCapabilities": joined_b["rtpCapabilities"]}),
        )
        .await;
    assert_eq!(r["code"], "invalid_join_token", "{r}");
    // Nothing before joining.
    let r = wa.request("createTransport", json!({"direction": "recv"})).await;
    assert_eq!(r["code"], "not_in_room", "{r}");

    let joined = join(&s, &mut wa, &a, &room_id).await;
    join(&s, &mut wb, &b, &room_id).await;
    join(&s, &mut wc, &c, &other_room).await;
    let caps: sfu::rtp_parameters::RtpCapabilities = serde_json::from_value(joined["rtpCapabilities"].clone()).unwrap();
    let send_caps = testpeer::send_rtp_capabilities(&caps);
    // A produces in room 1, C in room 2.
    let mut producer_of = std::collections::HashMap::new();
    for (name, ws) in [("a", &mut wa), ("c", &mut wc)] {
        let r = ws.request("createTransport", json!({"direction": "send", "rtpCapabilities": send_caps})).await;
        let tid = r["transportOptions"]["id"].clone();
        let params = produce_parameters(MediaKind::Video, "0", 1234);
        let r = ws.request("produce", json!({"transport_id": tid, "kind": "video", "rtpParameters": params})).await;
        assert_eq!(r["type"], "produced", "{r}");
        producer_of.insert(name, (tid, r["producer_id"].clone()));
    }
    let (a_send, a_producer) = producer_of["a"].clone();
    let (_, c_producer) = producer_of["c"].clone();
    let note = wb.notification("newProducer").await;
    assert_eq!(note["producer_id"], a_producer);

    let r = wb.request("createTransport", json!({"direction": "recv"})).await;
    let b_recv = r["transportOptions"]["id"].clone();
    // B cannot consume a producer of another room, nor use A's transport, nor close A's producer.
    let r = wb.request("consume", json!({"transport_id": b_recv, "producer_id": c_producer})).await;
    assert_eq!(r["code"], "not_found", "{r}");
    let r = wb.request("consume", json!({"transport_id": a_send, "producer_id": a_producer})).await;
    assert_eq!(r["code"], "not_found", "{r}");
    let r = wb.request("closeProducer", json!({"producer_id": a_producer})).await;
    assert_eq!(r["code"], "not_found", "{r}");
    let r = wb.request("connectTransport", json!({"transport_id": a_send, "dtlsParameters": {"fingerprints": []}})).await;
    assert_eq!(r["code"], "not_found", "{r}");
    // A send transport cannot consume.
    let r = wa.request("consume", json!({"transport_id": a_send, "producer_id": a_producer})).await;
    assert_eq!(r["code"], "wrong_direction", "{r}");
    // B may consume A's producer; A closing it tells B.
    let r = wb.request("consume", json!({"transport_id": b_recv, "producer_id": a_producer})).await;
    assert_eq!(r["type"], "consumerCreated", "{r}");
    let r = wa.request("closeProducer", json!({"producer_id": a_producer})).await;
    assert_eq!(r["type"], "producerClosed", "{r}");
    let note = wb.notification("producerClosed").await;
    assert_eq!(note["producer_id"], a_producer);
    let h = s.get("/health", None).await.1;
    assert_eq!(h["media"]["consumers"], 0, "closing a producer closes its consumers: {h}");
    assert_eq!(h["media"]["routers"], 2);
}

#[tokio::test]
async fn garbage_messages_get_errors_and_the_socket_stays_usable() {
    let s = TestServer::start().await;
    let (a, _, room_id) = room_for_two(&s).await;
    let mut ws = Ws::auth(&s, &a).await;
    let mut rng = fastrand::Rng::with_seed(7);
    let samples = [
        "",
        "{",
        "null",
        "[]",
        "42",
        "\"str\"",
        "{}",
        r#"{"type":"nope"}"#,
        r#"{"type":"consume"}"#,
        r#"{"type":"consume","transport_id":5,"producer_id":[]}"#,
        r#"{"type":"produce","transport_id":"w0-t1-x","kind":"video","rtpParameters":{}}"#,
        r#"{"type":"createTransport","direction":"sideways"}"#,
        r#"{"type":"resumeConsumer","consumer_id":"w99-c1-0"}"#,
        r#"{"type":"joinRoom","room_id":1}"#,
        r#"{"type":"auth","token":"x"}"#,
    ];
    for (i, text) in samples.iter().enumerate() {
        ws.send_text(text.to_string()).await;
        let r = ws.recv().await.unwrap_or_else(|| panic!("socket closed after sample {i}: {text:?}"));
        assert_eq!(r["type"], "error", "{text:?} -> {r}");
        assert!(r["code"].is_string() && r["error"].is_string());
    }
    for _ in 0..20 {
        let len = rng.usize(1..300);
        let text: String = (0..len).map(|_| rng.char('\u{20}'..'\u{7e}')).collect();
        ws.send_text(text).await;
        let r = ws.recv().await.expect("socket stays open");
        assert_eq!(r["type"], "error");
        tokio::time::sleep(Duration::from_millis(15)).await; // stay under the message rate limit
    }
    // Still works.
    join(&s, &mut ws, &a, &room_id).await;
    let r = ws.request("ping", json!({})).await;
    assert_eq!(r["type"], "pong");

    // An oversized frame closes the socket; the server keeps serving.
    ws.send_text(format!("{{\"type\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(100 * 1024))).await;
    assert!(ws.recv().await.is_none(), "oversized message closes the socket");
    let mut h = s.get("/health", None).await.1;
    for _ in 0..50 {
        if h["peers"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        h = s.get("/health", None).await.1;
    }
    assert_eq!(h["peers"], 0, "the dropped socket left the room: {h}");
    let mut ws = Ws::auth(&s, &a).await;
    join(&s, &mut ws, &a, &room_id).await;
}

#[tokio::test]
async fn flooding_messages_closes_the_socket() {
    let s = TestServer::start_with(|c| c.limits.ws_messages_per_second = 5).await;
    let a = s.dev_login(A, "Alice").await;
    let mut ws = Ws::auth(&s, &a).await;
    for _ in 0..40 {
        ws.send_text(json!({"type": "ping"}).to_string()).await;
    }
    let mut closed = false;
    let mut limited = false;
    for _ in 0..41 {
        match ws.recv().await {
            Some(m) if m["code"] == "rate_limited" => limited = true,
            Some(_) => {}
            None => {
                closed = true;
                break;
            }
        }
    }
    assert!(limited && closed, "limited={limited} closed={closed}");
}

#[tokio::test]
async fn transport_creation_is_rate_limited_per_connection() {
    let s = TestServer::start_with(|c| c.limits.transports_per_minute = 3).await;
    let (a, _, room_id) = room_for_two(&s).await;
    let mut ws = Ws::auth(&s, &a).await;
    join(&s, &mut ws, &a, &room_id).await;
    for _ in 0..3 {
        let r = ws.request("createTransport", json!({"direction": "recv"})).await;
        assert_eq!(r["type"], "transportCreated", "{r}");
    }
    let r = ws.request("createTransport", json!({"direction": "recv"})).await;
    assert_eq!(r["code"], "rate_limited", "{r}");
    let r = ws.request("ping", json!({})).await;
    assert_eq!(r["type"], "pong", "the socket stays open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_gone_silent_is_announced_as_producer_closed() {
    let s = TestServer::start_with(|c| c.rtc_idle_seconds = 2).await;
    let (a, b, room_id) = room_for_two(&s).await;
    let mut wa = Ws::auth(&s, &a).await;
    let mut wb = Ws::auth(&s, &b).await;
    let joined = join(&s, &mut wa, &a, &room_id).await;
    let caps: sfu::rtp_parameters::RtpCapabilities = serde_json::from_value(joined["rtpCapabilities"].clone()).unwrap();
    let mut send = connected_send_transport(&mut wa, &joined).await;
    let mut track = Track::new(MediaKind::Audio, "0");
    let params = produce_parameters(MediaKind::Audio, &track.mid, track.ssrc);
    let r = wa.request("produce", json!({"transport_id": send.id, "kind": "audio", "rtpParameters": params})).await;
    assert_eq!(r["type"], "produced", "{r}");
    let producer_id = r["producer_id"].clone();
    track.declare(&mut send);
    // A's media reaches the server for a moment...
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end && health_media(&s).await["media"]["rtp_forwarded"] == 0 && track.sent.len() < 50 {
        track.tick(&mut send);
        send.pump();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(track.sent.len() >= 10, "A sent {} packets", track.sent.len());
    let joined_b = join(&s, &mut wb, &b, &room_id).await;
    assert_eq!(joined_b["existingProducers"][0]["producer_id"], producer_id);

    // ...then A's network goes away (its socket stays open): after the idle timeout the room hears
    // that A's producer is gone, A included; A keeps its place in the room.
    let silent_since = Instant::now();
    let closed = wb.notification("producerClosed").await;
    assert_eq!(closed["producer_id"], producer_id);
    let after = silent_since.elapsed();
    assert!(after >= Duration::from_secs(2), "announced after {after:?} of silence");
    assert_eq!(wa.notification("producerClosed").await["producer_id"], producer_id);
    let h = health_media(&s).await;
    assert_eq!((h["rooms"].as_u64(), h["peers"].as_u64()), (Some(1), Some(2)), "{h}");
    assert_eq!((h["media"]["transports"].as_u64(), h["media"]["producers"].as_u64()), (Some(0), Some(0)), "{h}");
    // A may publish again on a new transport.
    let r = wa.request("createTransport", json!({"direction": "send", "rtpCapabilities": testpeer::send_rtp_capabilities(&caps)})).await;
    assert_eq!(r["type"], "transportCreated", "{r}");
    drop(send);
    wa.close().await;
    wb.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_signaling_socket_is_a_leave() {
    // No session grace: the silent socket's peer leaves as soon as the socket is closed (the grace
    // that follows otherwise is sessions.rs's).
    let s = TestServer::start_with(|c| {
        c.limits.ws_idle_seconds = 3;
        c.limits.session_grace_seconds = 0;
    })
    .await;
    let (a, b, room_id) = room_for_two(&s).await;
    let mut wa = Ws::auth(&s, &a).await;
    let mut wb = Ws::auth(&s, &b).await;
    join(&s, &mut wa, &a, &room_id).await;
    join(&s, &mut wb, &b, &room_id).await;
    // B reads (and so answers the server's pings); A's client hangs and reads nothing.
    let started = Instant::now();
    assert!(wb.0.listen_for(Duration::from_secs(5)).await, "B's socket stays open");
    let left: Vec<&Value> = wb.0.notifications.iter().filter(|n| n["type"] == "participantLeft").collect();
    assert_eq!(left.len(), 1, "B hears that A left: {:?}", wb.0.notifications);
    let h = health_media(&s).await;
    assert_eq!((h["rooms"].as_u64(), h["peers"].as_u64()), (Some(1), Some(1)), "{h}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    wb.close().await;
    drop(wa);
}
