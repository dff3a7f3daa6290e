//! Bad input gets a 4xx in our error shape, never a 500.
mod common;

use common::{assert_error, TestServer};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn malformed_json_wrong_types_and_unknown_fields() {
    let s = TestServer::start().await;
    let r = s.post_raw("/auth/otp/request", None, b"{\"phone_e164\": ".to_vec()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_json");
    let r = s.post_raw("/auth/otp/request", None, b"\xff\xfe garbage".to_vec()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_json");
    let r = s.post("/auth/otp/request", None, json!({"phone_e164": 33612345678u64})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body");
    let r = s.post("/auth/otp/request", None, json!({})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body");
    let r = s.post("/auth/otp/request", None, json!({"phone_e164": "+33612345678", "admin": true})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body");
    let r = s.post("/auth/otp/request", None, json!([1, 2, 3])).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body");
    let resp = s.http.post(format!("{}/auth/otp/request", s.base)).body("{\"phone_e164\":\"+33612345678\"}").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unsupported_media_type");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let s = TestServer::start().await;
    let big = json!({"phone_e164": "+33612345678", "pad": "x".repeat(100 * 1024)}).to_string();
    let r = s.post_raw("/auth/otp/request", None, big.into_bytes()).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let token = s.dev_login("+33612345678", "A").await;
    let big = json!({"name": "x".repeat(70 * 1024)}).to_string();
    let r = s.post_raw("/rooms", Some(&token), big.into_bytes()).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn unknown_ids_and_routes_are_404() {
    let s = TestServer::start().await;
    let token = s.dev_login("+33612345678", "A").await;
    for path in ["/rooms/nope", "/rooms/00000000-0000-0000-0000-000000000000", "/rooms/%00"] {
        let r = s.get(path, Some(&token)).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    let r = s.get("/rooms/%ff%fe", Some(&token)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_path");
    let r = s.post("/rooms/nope/invite", Some(&token), json!({"to_phone_e164": "+33622222222"})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = s.get("/no/such/route", None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = s.post("/contacts/respond", Some(&token), json!({"request_id": "x", "decision": "accepted"})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn with_the_web_client_served_unknown_routes_are_still_404_for_every_method() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "<!doctype html><title>t</title>").unwrap();
    let dir = web.path().to_path_buf();
    let s = TestServer::start_with(move |c| {
        c.web_dir = Some(dir);
        c.dev_auth = false;
    })
    .await;
    let page = s.http.get(format!("{}/index.html", s.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<title>t</title>"));
    // Dev login switched off: its route does not exist, whatever the method.
    let r = s.post("/auth/dev-login", None, json!({"phone_e164": "+33611111111"})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = s.get("/no/such/file.js", None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn wrong_method_is_an_error_in_our_shape() {
    let s = TestServer::start().await;
    let r = s.get("/auth/otp/request", None).await;
    assert_eq!(r.1["success"], false);
    assert_eq!(r.1["code"], "method_not_allowed");
}

#[tokio::test]
async fn health_reports_status_and_counts() {
    let s = TestServer::start().await;
    let (status, body) = s.get("/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["workers"], 2);
    assert_eq!(body["rooms"], 0);
    assert_eq!(body["peers"], 0);
}

/// Before: `GET /ws` without an upgrade answered a text/plain 400.
#[tokio::test]
async fn ws_without_an_upgrade_is_an_error_in_our_shape() {
    let s = TestServer::start().await;
    let resp = s.get("/ws", None).await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "websocket_upgrade_required");
    let raw = s.http.get(format!("{}/ws", s.base)).send().await.unwrap();
    assert_eq!(raw.headers()["content-type"], "application/json");
}

/// A path the file service cannot even look up (9,000 characters, past the file name limit) was
/// an empty 500 from the static file service: every error from the router has our shape.
#[tokio::test]
async fn errors_from_the_file_service_have_our_shape() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "<!doctype html>").unwrap();
    let dir = web.path().to_path_buf();
    let s = TestServer::start_with(move |c| c.web_dir = Some(dir)).await;
    let long = "a".repeat(9000);
    let raw = s.http.get(format!("{}/{long}", s.base)).send().await.unwrap();
    let status = raw.status();
    assert!(status.is_client_error() || status.is_server_error(), "{status}");
    assert_eq!(raw.headers()["content-type"], "application/json", "{status}");
    let body: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert!(body["code"].is_string() && body["error"].is_string(), "{body}");
}
