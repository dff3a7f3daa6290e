//! The data directory survives a restart: users, tokens, contacts, rooms, invites.
mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn state_survives_a_restart_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let (a, a_user) = s.login("+33611111111", "Alice").await;
    let (b, _) = s.login("+33622222222", "Bob").await;
    s.connect(&a, &b, "+33622222222").await;
    let (_, room) = s.post("/rooms", Some(&a), json!({"name": "Kept", "visibility": "connections"})).await;
    let room_id = room["room_id"].as_str().unwrap().to_string();
    s.post(&format!("/rooms/{room_id}/invite"), Some(&a), json!({"to_phone_e164": "+33622222222"})).await;
    s.stop().await;

    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let (status, me) = s.get("/auth/me", Some(&a)).await;
    assert_eq!(status, StatusCode::OK, "tokens survive");
    assert_eq!(me["user"]["user_id"], a_user["user_id"]);
    let (_, contacts) = s.get("/contacts", Some(&b)).await;
    assert_eq!(contacts["contacts"][0]["user_id"], a_user["user_id"]);
    let (status, shown) = s.get(&format!("/rooms/{room_id}"), Some(&b)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["name"], "Kept");
    assert_eq!(shown["visibility"], "connections");
    let (status, _) = s.post(&format!("/rooms/{room_id}/join"), Some(&b), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}
