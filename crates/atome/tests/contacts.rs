//! Connection requests: request, accept, reject, block, unregistered numbers, limits.
mod common;

use common::{assert_error, TestServer};
use reqwest::StatusCode;
use serde_json::json;

const A: &str = "+33611111111";
const B: &str = "+33622222222";
const C: &str = "+33633333333";

#[tokio::test]
async fn request_then_accept_makes_both_connected() {
    let s = TestServer::start().await;
    let (a, a_user) = s.login(A, "Alice").await;
    let (b, b_user) = s.login(B, "Bob").await;

    let (status, req) = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": B})).await;
    assert_eq!(status, StatusCode::OK, "{req}");
    assert_eq!(req["status"], "pending");
    let id = req["request_id"].as_str().unwrap().to_string();

    // Repeating a pending request returns the same one.
    let (_, again) = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": "06 22 22 22 22"})).await;
    assert_eq!(again["request_id"], id.as_str());

    let (_, lists) = s.get("/contacts/requests", Some(&b)).await;
    let incoming = lists["incoming"].as_array().unwrap();
    assert_eq!(incoming.len(), 1);
    assert_eq!(incoming[0]["request_id"], id.as_str());
    assert_eq!(incoming[0]["from"]["user_id"], a_user["user_id"]);
    let (_, a_lists) = s.get("/contacts/requests", Some(&a)).await;
    assert_eq!(a_lists["outgoing"][0]["request_id"], id.as_str());
    assert_eq!(a_lists["incoming"].as_array().unwrap().len(), 0);

    let (status, resp) = s.post("/contacts/respond", Some(&b), json!({"request_id": id, "decision": "accepted"})).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["status"], "accepted");

    let (_, a_contacts) = s.get("/contacts", Some(&a)).await;
    let (_, b_contacts) = s.get("/contacts", Some(&b)).await;
    assert_eq!(a_contacts["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(a_contacts["contacts"][0]["user_id"], b_user["user_id"]);
    assert_eq!(a_contacts["contacts"][0]["phone_e164"], B);
    assert!(a_contacts["contacts"][0]["since"].is_string());
    assert_eq!(b_contacts["contacts"][0]["user_id"], a_user["user_id"]);
    // Nothing pending any more.
    let (_, lists) = s.get("/contacts/requests", Some(&b)).await;
    assert_eq!(lists["incoming"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn mutual_requests_accept_each_other() {
    let s = TestServer::start().await;
    let a = s.dev_login(A, "Alice").await;
    let b = s.dev_login(B, "Bob").await;
    let (_, first) = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": B})).await;
    let (_, second) = s.post("/contacts/request", Some(&b), json!({"to_phone_e164": A})).await;
    assert_eq!(second["status"], "accepted");
    assert_eq!(second["request_id"], first["request_id"]);
    let (_, contacts) = s.get("/contacts", Some(&a)).await;
    assert_eq!(contacts["contacts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn only_the_recipient_may_respond() {
    let s = TestServer::start().await;
    let a = s.dev_login(A, "Alice").await;
    let b = s.dev_login(B, "Bob").await;
    let c = s.dev_login(C, "Carol").await;
    let (_, req) = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": B})).await;
    let id = req["request_id"].as_str().unwrap();
    for token in [&a, &c] {
        let r = s.post("/contacts/respond", Some(token), json!({"request_id": id, "decision": "accepted"})).await;
        assert_error(&r, StatusCode::FORBIDDEN, "not_recipient");
    }
    let r = s.post("/contacts/respond", Some(&b), json!({"request_id": "nope", "decision": "accepted"})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = s.post("/contacts/respond", Some(&b), json!({"request_id": id, "decision": "maybe"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body");
    let (_, contacts) = s.get("/contacts", Some(&a)).await;
    assert_eq!(contacts["contacts"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn rejected_requests_connect_nobody() {
    let s = TestServer::start().await;
    let a = s.dev_login(A, "Alice").await;
    let b = s.dev_login(B, "Bob").await;
    let (_, req) = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": B})).await;
    let id = req["request_id"].as_str().unwrap();
    let (status, resp) = s.post("/contacts/respond", Some(&b), json!({"request_id": id, "decision": "rejected"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["status"], "rejected");
    let (_, contacts) = s.get("/contacts", Some(&b)).await;
    assert!(contacts["contacts"].as_array().unwrap().is_empty());
    // Accepting after rejecting is a conflict; blocking is still possible.
    let r = s.post("/contacts/respond", Some(&b), json!({"request_id": id, "decision": "accepted"})).await;
    assert_error(&r, StatusCode::CONFLICT, "already_responded");
    let (status, _) = s.post("/contacts/respond", Some(&b), json!({"request_id": id, "decision": "blocked"})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_blocked_sender_only_ever_sees_pending() {
    let s = TestServer::start().await;
    let a = s.dev_login(A, "Alice").await;
    let b = s.dev_login(B, "Bob").await;
    let (_, req) = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": B})).await;
    let id = req["request_id"].as_str().unwrap().to_string();
    let (_, resp) = s.post("/contacts/respond", Some(&b), json!({"request_id": id, "decision": "blocked"})).await;
    assert_eq!(resp["status"], "blocked");

    let (_, again) = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": B})).await;
    assert_eq!(again["status"], "pending");
    assert_eq!(again["request_id"], id.as_str());
    let (_, a_lists) = s.get("/contacts/requests", Some(&a)).await;
    assert_eq!(a_lists["outgoing"][0]["status"], "pending");
    let (_, b_lists) = s.get("/contacts/requests", Some(&b)).await;
    assert!(b_lists["incoming"].as_array().unwrap().is_empty(), "a blocked request is never shown");
    let (_, contacts) = s.get("/contacts", Some(&a)).await;
    assert!(contacts["contacts"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_request_to_an_unregistered_number_waits_for_sign_up() {
    let s = TestServer::start().await;
    let (a, a_user) = s.login(A, "Alice").await;
    let (status, req) = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": C})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(req["status"], "pending", "same answer as for a registered number");
    let (c, _) = s.login(C, "Carol").await;
    let (_, lists) = s.get("/contacts/requests", Some(&c)).await;
    assert_eq!(lists["incoming"][0]["request_id"], req["request_id"]);
    assert_eq!(lists["incoming"][0]["from"]["user_id"], a_user["user_id"]);
    let (status, _) = s.post("/contacts/respond", Some(&c), json!({"request_id": req["request_id"], "decision": "accepted"})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, contacts) = s.get("/contacts", Some(&a)).await;
    assert_eq!(contacts["contacts"][0]["phone_e164"], C);
}

#[tokio::test]
async fn a_request_to_yourself_is_400() {
    let s = TestServer::start().await;
    let a = s.dev_login(A, "Alice").await;
    let r = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": "06 11 11 11 11"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "self_request");
    let r = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": "not a number"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_phone");
}

#[tokio::test]
async fn connection_requests_are_rate_limited_per_user() {
    let s = TestServer::start().await;
    let a = s.dev_login(A, "Alice").await;
    for i in 0..20 {
        let phone = format!("+336400000{i:02}");
        let (status, body) = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": phone})).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
    }
    let r = s.post("/contacts/request", Some(&a), json!({"to_phone_e164": "+33640000099"})).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(r.1["retry_after"].as_u64().unwrap() >= 1);
    // Another user still may.
    let b = s.dev_login(B, "Bob").await;
    let (status, _) = s.post("/contacts/request", Some(&b), json!({"to_phone_e164": A})).await;
    assert_eq!(status, StatusCode::OK);
}
