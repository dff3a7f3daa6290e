//! One live session per user and room (a reload, a second tab), `leaveRoom` of another room,
//! and `restartIce`, against the real server.
mod common;

use common::{join, room_for_two, TestServer, Ws};
use serde_json::{json, Value};
use sfu::rtp_parameters::MediaKind;
use testpeer::{produce_parameters, Track};

/// A send transport and one audio producer; returns the producer id.
async fn publish(ws: &mut Ws, joined: &Value) -> String {
    let caps: sfu::rtp_parameters::RtpCapabilities = serde_json::from_value(joined["rtpCapabilities"].clone()).unwrap();
    let r = ws.request("createTransport", json!({"direction": "send", "rtpCapabilities": testpeer::send_rtp_capabilities(&caps)})).await;
    let transport = r["transportOptions"]["id"].clone();
    let track = Track::new(MediaKind::Audio, "0");
    let params = produce_parameters(MediaKind::Audio, "0", track.ssrc);
    let r = ws.request("produce", json!({"transport_id": transport, "kind": "audio", "rtpParameters": params})).await;
    assert_eq!(r["type"], "produced", "{r}");
    r["producer_id"].as_str().unwrap().to_string()
}

fn participants(room: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        room["participants"].as_array().unwrap().iter().map(|p| p["display_name"].as_str().unwrap().into()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_replaces_the_older_session_without_a_ghost() {
    let s = TestServer::start().await;
    let (a, b, room_id) = room_for_two(&s).await;
    let mut first = Ws::auth(&s, &a).await;
    let joined = join(&s, &mut first, &a, &room_id).await;
    let old_producer = publish(&mut first, &joined).await;
    let mut wb = Ws::auth(&s, &b).await;
    join(&s, &mut wb, &b, &room_id).await;

    // A reloads: a second socket joins the same room while the first is still open.
    let mut second = Ws::auth(&s, &a).await;
    let rejoined = join(&s, &mut second, &a, &room_id).await;
    assert!(rejoined["existingProducers"].as_array().unwrap().iter().all(|p| p["producer_id"] != old_producer.as_str()));
    let note = first.notification("sessionReplaced").await;
    assert_eq!(note, json!({"type": "sessionReplaced", "room_id": room_id, "reason": "new_session"}));
    assert!(first.recv().await.is_none(), "the replaced socket is closed");
    // B hears the old media go, and no participantLeft for a user who is still there.
    let closed = wb.notification("producerClosed").await;
    assert_eq!(closed["producer_id"], old_producer.as_str());
    let pong = wb.request("ping", json!({})).await;
    assert_eq!(pong["type"], "pong");
    assert!(
        !wb.0.notifications.iter().any(|n| n["type"] == "participantLeft" || n["type"] == "participantJoined"),
        "{:?}",
        wb.0.notifications
    );

    let (_, room) = s.get(&format!("/rooms/{room_id}"), Some(&b)).await;
    assert_eq!(participants(&room), vec!["Alice", "Bob"], "{room}");
    let (_, health) = s.get("/health", None).await;
    assert_eq!(health["peers"], 2, "{health}");
    // The new session works: it publishes, B hears it.
    let new_producer = publish(&mut second, &rejoined).await;
    assert_eq!(wb.notification("newProducer").await["producer_id"], new_producer.as_str());
    // And when it leaves, B hears A leave, once.
    let left = second.request("leaveRoom", json!({"room_id": room_id})).await;
    assert_eq!(left["type"], "roomLeft", "{left}");
    assert_eq!(wb.notification("participantLeft").await["peer_user_id"], user_id_of("Alice", &room).as_str());
}

/// A participant's user id as the room lists it.
fn user_id_of(name: &str, room: &Value) -> String {
    room["participants"].as_array().unwrap().iter().find(|p| p["display_name"] == name).unwrap()["user_id"].as_str().unwrap().into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_another_room_is_refused_and_leaves_nothing() {
    let s = TestServer::start().await;
    let (a, _b, room_id) = room_for_two(&s).await;
    let mut wa = Ws::auth(&s, &a).await;
    join(&s, &mut wa, &a, &room_id).await;
    let r = wa.request("leaveRoom", json!({"room_id": "some-other-room"})).await;
    assert_eq!((r["type"].as_str(), r["code"].as_str()), (Some("error"), Some("not_in_room")), "{r}");
    let (_, room) = s.get(&format!("/rooms/{room_id}"), Some(&a)).await;
    assert_eq!(participants(&room), vec!["Alice"], "still in the call: {room}");
    let r = wa.request("createTransport", json!({"direction": "recv"})).await;
    assert_eq!(r["type"], "transportCreated", "{r}");
    let r = wa.request("leaveRoom", json!({"room_id": room_id})).await;
    assert_eq!(r, json!({"type": "roomLeft", "requestId": r["requestId"], "room_id": room_id}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_ice_gives_new_parameters_for_ones_own_transport_only() {
    let s = TestServer::start().await;
    let (a, b, room_id) = room_for_two(&s).await;
    let mut wa = Ws::auth(&s, &a).await;
    let mut wb = Ws::auth(&s, &b).await;
    join(&s, &mut wa, &a, &room_id).await;
    join(&s, &mut wb, &b, &room_id).await;
    let created = wa.request("createTransport", json!({"direction": "recv"})).await;
    let options = &created["transportOptions"];
    let r = wa.request("restartIce", json!({"transport_id": options["id"]})).await;
    assert_eq!(r["type"], "iceRestarted", "{r}");
    assert_eq!(r["transport_id"], options["id"]);
    let (old, new) = (&options["iceParameters"], &r["iceParameters"]);
    assert_ne!(new["usernameFragment"], old["usernameFragment"]);
    assert_ne!(new["password"], old["password"]);
    assert_eq!(new["iceLite"], true);
    let r = wb.request("restartIce", json!({"transport_id": options["id"]})).await;
    assert_eq!((r["type"].as_str(), r["code"].as_str()), (Some("error"), Some("not_found")), "another's transport: {r}");
    let r = wa.request("restartIce", json!({})).await;
    assert_eq!(r["code"], "invalid_message", "{r}");
}
