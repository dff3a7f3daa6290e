//! One live session per user and room (a reload, a second tab), `leaveRoom` of another room,
//! `restartIce`, and a session taken back on a new socket (`resumeSession`) after its socket was
//! lost, against the real server.
mod common;

use std::time::{Duration, Instant};

use common::{join, room_for_two, TestServer, Ws};
use serde_json::{json, Value};
use sfu::rtp_parameters::MediaKind;
use testpeer::{produce_parameters, Track};

/// A send transport and one audio producer; returns the producer id.
async fn publish(ws: &mut Ws, joined: &Value) -> String {
    publish_on(ws, joined).await.0
}

/// A send transport and one audio producer; returns the producer id and the transport id.
async fn publish_on(ws: &mut Ws, joined: &Value) -> (String, Value) {
    let caps: sfu::rtp_parameters::RtpCapabilities = serde_json::from_value(joined["rtpCapabilities"].clone()).unwrap();
    let r = ws.request("createTransport", json!({"direction": "send", "rtpCapabilities": testpeer::send_rtp_capabilities(&caps)})).await;
    let transport = r["transportOptions"]["id"].clone();
    let track = Track::new(MediaKind::Audio, "0");
    let params = produce_parameters(MediaKind::Audio, "0", track.ssrc);
    let r = ws.request("produce", json!({"transport_id": transport, "kind": "audio", "rtpParameters": params})).await;
    assert_eq!(r["type"], "produced", "{r}");
    (r["producer_id"].as_str().unwrap().to_string(), transport)
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

/// The kinds of the notifications `ws` heard so far.
fn heard(ws: &Ws) -> Vec<String> {
    ws.0.notifications.iter().map(|n| n["type"].as_str().unwrap_or("?").to_string()).collect()
}

/// `(peers, producers, transports)` the server holds.
async fn held(s: &TestServer) -> (u64, u64, u64) {
    let (_, h) = s.get("/health", None).await;
    (h["peers"].as_u64().unwrap(), h["media"]["producers"].as_u64().unwrap(), h["media"]["transports"].as_u64().unwrap())
}

fn refused(r: &Value) -> (Option<&str>, Option<&str>) {
    (r["type"].as_str(), r["code"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_socket_is_taken_back_on_a_new_one_with_its_media() {
    let s = TestServer::start().await;
    let (a, b, room_id) = room_for_two(&s).await;
    let mut first = Ws::auth(&s, &a).await;
    let joined = join(&s, &mut first, &a, &room_id).await;
    let token = joined["resume_token"].as_str().expect("roomJoined has a resume_token").to_string();
    assert!(token.starts_with("rt_") && token.len() == 51, "{token}");
    let (producer, transport) = publish_on(&mut first, &joined).await;
    let mut wb = Ws::auth(&s, &b).await;
    let bob_joined = join(&s, &mut wb, &b, &room_id).await;
    assert_ne!(bob_joined["resume_token"], joined["resume_token"]);
    assert_eq!(held(&s).await, (2, 1, 1));

    // A's socket is lost: the connection ends without a close frame (a network change).
    drop(first);
    assert!(wb.0.listen_for(Duration::from_millis(1500)).await);
    assert!(heard(&wb).is_empty(), "B hears nothing while A may come back: {:?}", heard(&wb));
    assert_eq!(held(&s).await, (2, 1, 1), "A's place and media are kept");

    // A new socket takes the session back, transports and producers included.
    let mut second = Ws::auth(&s, &a).await;
    let r = second.request("resumeSession", json!({"room_id": room_id, "resume_token": token})).await;
    assert_eq!(r["type"], "sessionResumed", "{r}");
    assert_eq!(r["room_id"], room_id.as_str());
    assert_eq!(r["existingProducers"], json!([]), "B publishes nothing; A's own producer is not listed: {r}");
    assert_eq!(r["peers"].as_array().map(|p| p.iter().map(|p| p["display_name"].clone()).collect::<Vec<_>>()), Some(vec![json!("Bob")]));
    let r = second.request("restartIce", json!({"transport_id": transport})).await;
    assert_eq!(r["type"], "iceRestarted", "the old transport is this socket's now: {r}");
    // Notifications reach the new socket.
    let bob_producer = publish(&mut wb, &bob_joined).await;
    assert_eq!(second.notification("newProducer").await["producer_id"], bob_producer.as_str());
    assert_eq!(held(&s).await, (2, 2, 2));
    let r = second.request("closeProducer", json!({"producer_id": producer})).await;
    assert_eq!(r["type"], "producerClosed", "A's producer is the new socket's: {r}");
    assert_eq!(wb.notification("producerClosed").await["producer_id"], producer.as_str());
    // A leaves for good.
    let r = second.request("leaveRoom", json!({"room_id": room_id})).await;
    assert_eq!(r["type"], "roomLeft", "{r}");
    assert_eq!(wb.notification("participantLeft").await["peer_user_id"].as_str().map(str::len), Some(36));
    assert!(!heard(&wb).contains(&"participantJoined".to_string()), "{:?}", heard(&wb));
    let mut third = Ws::auth(&s, &a).await;
    let r = third.request("resumeSession", json!({"room_id": room_id, "resume_token": token})).await;
    assert_eq!(refused(&r), (Some("error"), Some("session_expired")), "a session that left is over: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_while_the_server_still_holds_the_old_socket_closes_it_quietly() {
    let s = TestServer::start().await;
    let (a, b, room_id) = room_for_two(&s).await;
    let mut first = Ws::auth(&s, &a).await;
    let joined = join(&s, &mut first, &a, &room_id).await;
    let producer = publish(&mut first, &joined).await;
    let mut wb = Ws::auth(&s, &b).await;
    join(&s, &mut wb, &b, &room_id).await;
    let mut second = Ws::auth(&s, &a).await;
    let r = second.request("resumeSession", json!({"room_id": room_id, "resume_token": joined["resume_token"]})).await;
    assert_eq!(r["type"], "sessionResumed", "{r}");
    let note = first.notification("sessionReplaced").await;
    assert_eq!(note, json!({"type": "sessionReplaced", "room_id": room_id, "reason": "resumed"}));
    assert!(first.recv().await.is_none(), "the old socket is closed");
    // The old socket's end leaves nothing: A is in the call with its producer, B heard nothing.
    assert!(wb.0.listen_for(Duration::from_millis(500)).await);
    assert!(heard(&wb).is_empty(), "{:?}", heard(&wb));
    assert_eq!(held(&s).await, (2, 1, 1));
    let r = second.request("pauseProducer", json!({"producer_id": producer})).await;
    assert_eq!(r["type"], "producerPaused", "{r}");
    // A socket in a room cannot take another session.
    let r = second.request("resumeSession", json!({"room_id": room_id, "resume_token": joined["resume_token"]})).await;
    assert_eq!(refused(&r), (Some("error"), Some("already_in_room")), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_right_user_with_the_right_token_resumes() {
    let s = TestServer::start().await;
    let (a, b, room_id) = room_for_two(&s).await;
    let mut wa = Ws::auth(&s, &a).await;
    let joined = join(&s, &mut wa, &a, &room_id).await;
    let token = joined["resume_token"].clone();
    let mut wb = Ws::auth(&s, &b).await;
    let r = wb.request("resumeSession", json!({"room_id": room_id, "resume_token": token})).await;
    assert_eq!(refused(&r), (Some("error"), Some("session_expired")), "another user's session: {r}");
    let mut a2 = Ws::auth(&s, &a).await;
    let r = a2.request("resumeSession", json!({"room_id": room_id, "resume_token": "rt_0000"})).await;
    assert_eq!(refused(&r), (Some("error"), Some("session_expired")), "a wrong token: {r}");
    let r = a2.request("resumeSession", json!({"room_id": "no-such-room", "resume_token": token})).await;
    assert_eq!(refused(&r), (Some("error"), Some("session_expired")), "another room: {r}");
    let r = a2.request("resumeSession", json!({"room_id": room_id})).await;
    assert_eq!(refused(&r), (Some("error"), Some("invalid_message")), "{r}");
    // Nothing moved: A's first socket still holds the session.
    let r = wa.request("createTransport", json!({"direction": "recv"})).await;
    assert_eq!(r["type"], "transportCreated", "{r}");
    // Before auth, a resume is refused like anything else, and closes the socket.
    let mut anon = Ws::connect(&s).await;
    let r = anon.request("resumeSession", json!({"room_id": room_id, "resume_token": token})).await;
    assert_eq!(refused(&r), (Some("error"), Some("not_authenticated")), "{r}");
    assert!(anon.recv().await.is_none());
    // A socket closed with a close frame is a leave at once: nothing to resume.
    wa.close().await;
    join(&s, &mut wb, &b, &room_id).await;
    let r = a2.request("resumeSession", json!({"room_id": room_id, "resume_token": token})).await;
    assert_eq!(refused(&r), (Some("error"), Some("session_expired")), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_leaves_when_its_grace_runs_out() {
    let s = TestServer::start_with(|c| c.limits.session_grace_seconds = 2).await;
    let (a, b, room_id) = room_for_two(&s).await;
    let mut wa = Ws::auth(&s, &a).await;
    let joined = join(&s, &mut wa, &a, &room_id).await;
    let producer = publish(&mut wa, &joined).await;
    let mut wb = Ws::auth(&s, &b).await;
    join(&s, &mut wb, &b, &room_id).await;
    let lost = Instant::now();
    drop(wa);
    let left = wb.notification("participantLeft").await;
    let waited = lost.elapsed();
    assert!(waited >= Duration::from_millis(1900) && waited < Duration::from_secs(5), "left after {waited:?}");
    assert_eq!(left["type"], "participantLeft");
    assert_eq!(heard(&wb), vec!["producerClosed"], "its media went first");
    assert_eq!(wb.0.notifications[0]["producer_id"], producer.as_str());
    assert_eq!(held(&s).await, (1, 0, 0));
    let mut a2 = Ws::auth(&s, &a).await;
    let r = a2.request("resumeSession", json!({"room_id": room_id, "resume_token": joined["resume_token"]})).await;
    assert_eq!(refused(&r), (Some("error"), Some("session_expired")), "{r}");
    // The last peer's lost socket ends the call once its grace is over.
    drop(wb);
    let mut rooms = 1;
    for _ in 0..60 {
        let (_, h) = s.get("/health", None).await;
        rooms = h["rooms"].as_u64().unwrap();
        if rooms == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rooms, 0, "the call ends when its last lost peer's grace is over");
}
