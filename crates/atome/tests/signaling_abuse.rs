//! Abuse of the signaling socket by one logged-in user (issue "Security and abuse", items 5 and
//! 9): each cap holds, also when the user's sockets race, and each is configurable.
mod common;

use common::{join, TestServer, Ws};
use serde_json::{json, Value};

const A: &str = "+33611111111";

async fn public_room(s: &TestServer, token: &str) -> String {
    let (_, room) = s.post("/rooms", Some(token), json!({"visibility": "public"})).await;
    room["room_id"].as_str().unwrap().to_string()
}

/// Before: 3,000 ping frames on one socket were all accepted.
#[tokio::test]
async fn a_ping_flood_closes_the_socket() {
    let s = TestServer::start().await;
    let token = s.dev_login(A, "Alice").await;
    let mut ws = Ws::auth(&s, &token).await;
    let mut sent = 0;
    for _ in 0..3000 {
        if !ws.0.send_ping().await {
            break;
        }
        sent += 1;
    }
    let mut closed_with = None;
    while let Some(msg) = ws.recv().await {
        if msg["type"] == "error" {
            closed_with = msg["code"].as_str().map(String::from);
        }
    }
    // The server closes while pings still arrive: the client may see the reset before the
    // error message, so either the error or a send failing before the 3,000th counts.
    assert!(closed_with.as_deref() == Some("rate_limited") || sent < 3000, "sent {sent} pings, error {closed_with:?}");
    let still_open = ws.0.send_text(r#"{"type":"ping","requestId":1}"#.into()).await && ws.recv().await.is_some();
    assert!(!still_open, "the socket is closed after {sent} pings");
}

/// Before: one user opened 2,000 authenticated sockets. Twenty racing for a cap of 3 get 3.
#[tokio::test]
async fn sockets_per_user_are_capped_atomically() {
    let s = TestServer::start_with(|c| c.limits.max_sockets_per_user = 3).await;
    let token = s.dev_login(A, "Alice").await;
    let attempts = (0..20).map(|_| async {
        let mut ws = Ws::connect(&s).await;
        let r = ws.request("auth", json!({"token": token})).await;
        (r, ws)
    });
    let results: Vec<(Value, Ws)> = futures_util::future::join_all(attempts).await;
    let ok = results.iter().filter(|(r, _)| r["type"] == "authOk").count();
    assert_eq!(ok, 3, "{:?}", results.iter().map(|(r, _)| r["code"].clone()).collect::<Vec<_>>());
    assert!(results.iter().filter(|(r, _)| r["type"] != "authOk").all(|(r, _)| r["code"] == "too_many_sockets"));
    // Closing one frees its slot.
    let mut kept: Vec<Ws> = results.into_iter().filter(|(r, _)| r["type"] == "authOk").map(|(_, ws)| ws).collect();
    kept.pop().unwrap().close().await;
    let mut again = Ws::connect(&s).await;
    let mut r = Value::Null;
    for _ in 0..50 {
        r = again.request("auth", json!({"token": token})).await;
        if r["type"] == "authOk" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        again = Ws::connect(&s).await;
    }
    assert_eq!(r["type"], "authOk", "{r}");
}

/// Before: one user held 480 transports through 60 sockets. The cap counts every socket.
#[tokio::test]
async fn transports_per_user_are_capped_over_all_sockets() {
    let s = TestServer::start_with(|c| c.limits.max_transports_per_user = 4).await;
    let token = s.dev_login(A, "Alice").await;
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut ws = Ws::auth(&s, &token).await;
        let room = public_room(&s, &token).await;
        join(&s, &mut ws, &token, &room).await;
        sockets.push(ws);
    }
    let mut created = 0;
    let mut refused = Vec::new();
    for i in 0..6 {
        let r = sockets[i % 2].request("createTransport", json!({"direction": "recv"})).await;
        match r["type"].as_str() {
            Some("transportCreated") => created += 1,
            _ => refused.push(r["code"].clone()),
        }
    }
    assert_eq!(created, 4);
    assert_eq!(refused, vec![json!("too_many_transports"); 2]);
    // Leaving gives the slots back.
    let r = sockets[0].request("leaveRoom", json!({})).await;
    assert_eq!(r["type"], "roomLeft", "{r}");
    let r = sockets[1].request("createTransport", json!({"direction": "recv"})).await;
    assert_eq!(r["type"], "transportCreated", "{r}");
}

/// Before: one subscriber created 250 consumers of one producer (egress x250).
#[tokio::test]
async fn one_consumer_per_producer_and_transport() {
    let s = TestServer::start().await;
    let token = s.dev_login(A, "Alice").await;
    let mut ws = Ws::auth(&s, &token).await;
    let room = public_room(&s, &token).await;
    let (_, joined) = s.post(&format!("/rooms/{room}/join"), Some(&token), json!({})).await;
    ws.request("joinRoom", json!({"room_id": room, "join_token": joined["join_token"], "rtpCapabilities": joined["rtpCapabilities"]}))
        .await;
    let caps: sfu::rtp_parameters::RtpCapabilities = serde_json::from_value(joined["rtpCapabilities"].clone()).unwrap();
    let r = ws.request("createTransport", json!({"direction": "send", "rtpCapabilities": testpeer::send_rtp_capabilities(&caps)})).await;
    let send = r["transportOptions"]["id"].clone();
    let params = testpeer::produce_parameters(sfu::rtp_parameters::MediaKind::Video, "0", 4000);
    let r = ws.request("produce", json!({"transport_id": send, "kind": "video", "rtpParameters": params})).await;
    let producer = r["producer_id"].clone();
    let mut recv = Vec::new();
    for _ in 0..2 {
        recv.push(ws.request("createTransport", json!({"direction": "recv"})).await["transportOptions"]["id"].clone());
    }
    let first = ws.request("consume", json!({"transport_id": recv[0], "producer_id": producer})).await;
    assert_eq!(first["type"], "consumerCreated", "{first}");
    let twice = ws.request("consume", json!({"transport_id": recv[0], "producer_id": producer})).await;
    assert_eq!((twice["type"].as_str(), twice["code"].as_str()), (Some("error"), Some("already_consuming")), "{twice}");
    let other = ws.request("consume", json!({"transport_id": recv[1], "producer_id": producer})).await;
    assert_eq!(other["type"], "consumerCreated", "another transport may: {other}");
}
