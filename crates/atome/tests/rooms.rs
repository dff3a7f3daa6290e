//! Rooms: creation, invites gated by connections, join rules per visibility.
mod common;

use common::{assert_error, TestServer};
use reqwest::StatusCode;
use serde_json::json;

const A: &str = "+33611111111";
const B: &str = "+33622222222";
const C: &str = "+33633333333";

#[tokio::test]
async fn whole_flow_otp_contacts_room_invite_join() {
    let s = TestServer::start().await;
    let (a, a_user) = s.login(A, "Alice").await;
    let (b, b_user) = s.login(B, "Bob").await;
    s.connect(&a, &b, B).await;

    let (status, room) = s.post("/rooms", Some(&a), json!({"name": "Standup"})).await;
    assert_eq!(status, StatusCode::OK, "{room}");
    let room_id = room["room_id"].as_str().unwrap().to_string();
    let (_, shown) = s.get(&format!("/rooms/{room_id}"), Some(&a)).await;
    assert_eq!(shown["visibility"], "private");
    assert_eq!(shown["name"], "Standup");
    assert_eq!(shown["owner_user_id"], a_user["user_id"]);
    assert!(shown["participants"].as_array().unwrap().is_empty());

    // Before the invite Bob cannot see or join it.
    let r = s.get(&format!("/rooms/{room_id}"), Some(&b)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = s.post(&format!("/rooms/{room_id}/join"), Some(&b), json!({})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "not_allowed");

    let (status, inv) = s.post(&format!("/rooms/{room_id}/invite"), Some(&a), json!({"to_phone_e164": B})).await;
    assert_eq!(status, StatusCode::OK, "{inv}");
    let (_, b_rooms) = s.get("/rooms", Some(&b)).await;
    assert_eq!(b_rooms["rooms"][0]["room_id"], room_id.as_str());
    assert_eq!(b_rooms["rooms"][0]["role"], "invited");

    let (status, joined) = s.post(&format!("/rooms/{room_id}/join"), Some(&b), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["room_id"], room_id.as_str());
    assert!(joined["join_token"].as_str().unwrap().len() > 20);
    let caps = &joined["rtpCapabilities"];
    let mimes: Vec<&str> = caps["codecs"].as_array().unwrap().iter().map(|c| c["mimeType"].as_str().unwrap()).collect();
    assert!(mimes.contains(&"audio/opus") && mimes.contains(&"video/VP8") && mimes.contains(&"video/rtx"), "{mimes:?}");
    assert!(!caps["headerExtensions"].as_array().unwrap().is_empty());
    let _ = b_user;
}

#[tokio::test]
async fn invites_need_an_accepted_connection_unless_public() {
    let s = TestServer::start().await;
    let a = s.dev_login(A, "Alice").await;
    let b = s.dev_login(B, "Bob").await;
    let c = s.dev_login(C, "Carol").await;
    s.connect(&a, &b, B).await;
    let (_, room) = s.post("/rooms", Some(&a), json!({})).await;
    let room_id = room["room_id"].as_str().unwrap();
    assert!(!room["name"].as_str().unwrap().is_empty(), "a name is generated");

    let r = s.post(&format!("/rooms/{room_id}/invite"), Some(&a), json!({"to_phone_e164": C})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "not_connected");
    // An unregistered number is refused the same way.
    let r = s.post(&format!("/rooms/{room_id}/invite"), Some(&a), json!({"to_phone_e164": "+33644444444"})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "not_connected");
    // A pending request is not a connection.
    s.post("/contacts/request", Some(&a), json!({"to_phone_e164": C})).await;
    let r = s.post(&format!("/rooms/{room_id}/invite"), Some(&a), json!({"to_phone_e164": C})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "not_connected");
    // Carol cannot invite herself into a room she cannot see.
    let r = s.post(&format!("/rooms/{room_id}/invite"), Some(&c), json!({"to_phone_e164": C})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    // In a public room anyone may be invited, even before sign-up.
    let (_, public) = s.post("/rooms", Some(&a), json!({"visibility": "public"})).await;
    let public_id = public["room_id"].as_str().unwrap();
    let (status, _) = s.post(&format!("/rooms/{public_id}/invite"), Some(&a), json!({"to_phone_e164": C})).await;
    assert_eq!(status, StatusCode::OK);
    let d = s.dev_login("+33655555555", "Dave").await;
    let (status, _) = s.post(&format!("/rooms/{public_id}/invite"), Some(&a), json!({"to_phone_e164": "+33655555555"})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, d_rooms) = s.get("/rooms", Some(&d)).await;
    assert_eq!(d_rooms["rooms"][0]["room_id"], public_id);

    // Bob, invited, becomes a participant and may invite his own connections.
    s.post(&format!("/rooms/{room_id}/invite"), Some(&a), json!({"to_phone_e164": B})).await;
    s.connect(&b, &c, C).await;
    let (status, body) = s.post(&format!("/rooms/{room_id}/invite"), Some(&b), json!({"to_phone_e164": C})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = s.post(&format!("/rooms/{room_id}/join"), Some(&c), json!({})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn join_rules_follow_visibility() {
    let s = TestServer::start().await;
    let a = s.dev_login(A, "Alice").await;
    let b = s.dev_login(B, "Bob").await;
    let c = s.dev_login(C, "Carol").await;
    s.connect(&a, &b, B).await;
    let mut ids = std::collections::HashMap::new();
    for vis in ["private", "connections", "public"] {
        let (status, room) = s.post("/rooms", Some(&a), json!({"visibility": vis, "name": vis})).await;
        assert_eq!(status, StatusCode::OK);
        ids.insert(vis, room["room_id"].as_str().unwrap().to_string());
    }
    let join = |token: String, vis: &'static str| {
        let path = format!("/rooms/{}/join", ids[vis]);
        let s = &s;
        async move { s.post(&path, Some(&token), json!({})).await }
    };
    // Owner: all three.
    for vis in ["private", "connections", "public"] {
        assert_eq!(join(a.clone(), vis).await.0, StatusCode::OK, "{vis}");
    }
    // A connection of the owner: connections and public.
    assert_error(&join(b.clone(), "private").await, StatusCode::FORBIDDEN, "not_allowed");
    assert_eq!(join(b.clone(), "connections").await.0, StatusCode::OK);
    assert_eq!(join(b.clone(), "public").await.0, StatusCode::OK);
    // A stranger: public only; the others stay hidden from GET.
    assert_error(&join(c.clone(), "private").await, StatusCode::FORBIDDEN, "not_allowed");
    assert_error(&join(c.clone(), "connections").await, StatusCode::FORBIDDEN, "not_allowed");
    assert_eq!(join(c.clone(), "public").await.0, StatusCode::OK);
    assert_error(&s.get(&format!("/rooms/{}", ids["connections"]), Some(&c)).await, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(s.get(&format!("/rooms/{}", ids["public"]), Some(&c)).await.0, StatusCode::OK);
    // Unknown room.
    let r = s.post("/rooms/00000000-0000-0000-0000-000000000000/join", Some(&a), json!({})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    let (_, list) = s.get("/rooms", Some(&a)).await;
    assert_eq!(list["rooms"].as_array().unwrap().len(), 3);
    let (_, list) = s.get("/rooms", Some(&c)).await;
    assert!(list["rooms"].as_array().unwrap().is_empty(), "rooms I own or am invited to only");
}

#[tokio::test]
async fn joins_are_rate_limited() {
    let s = TestServer::start_with(|c| c.limits.joins_per_minute = 3).await;
    let a = s.dev_login(A, "Alice").await;
    let (_, room) = s.post("/rooms", Some(&a), json!({})).await;
    let path = format!("/rooms/{}/join", room["room_id"].as_str().unwrap());
    for _ in 0..3 {
        assert_eq!(s.post(&path, Some(&a), json!({})).await.0, StatusCode::OK);
    }
    let r = s.post(&path, Some(&a), json!({})).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry = r.1["retry_after"].as_u64().unwrap();
    assert!((1..=20).contains(&retry), "retry_after {retry}");
}

#[tokio::test]
async fn room_names_and_visibility_are_validated() {
    let s = TestServer::start().await;
    let a = s.dev_login(A, "Alice").await;
    let r = s.post("/rooms", Some(&a), json!({"name": "x".repeat(81)})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_name");
    let r = s.post("/rooms", Some(&a), json!({"visibility": "secret"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body");
    let r = s.post("/rooms", None, json!({})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}
