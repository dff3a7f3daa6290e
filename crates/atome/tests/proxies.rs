//! Per-address limits behind a TLS-terminating proxy (issue "Security and abuse", item 6): the
//! address a trusted proxy reports is the client's; anyone else's forwarding headers are ignored.
mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

/// Joins a public room `n` times, each request with `forwarded_for` (if any); returns how many
/// were let through before the per-address join limit (3 per minute here).
async fn joins_let_through(s: &TestServer, token: &str, room: &str, forwarded_for: &[&str]) -> usize {
    let mut ok = 0;
    for xff in forwarded_for {
        let mut req = s.http.post(format!("{}/rooms/{room}/join", s.base)).bearer_auth(token).json(&json!({}));
        if !xff.is_empty() {
            req = req.header("x-forwarded-for", *xff);
        }
        let status = req.send().await.unwrap().status();
        assert!(status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS, "{status}");
        ok += usize::from(status == StatusCode::OK);
    }
    ok
}

async fn setup(trusted: &str) -> (TestServer, String, String) {
    let trusted = atome::http::client_ip::parse_net(trusted).unwrap();
    let s = TestServer::start_with(move |c| {
        c.limits.joins_per_ip_minute = 3;
        c.limits.trusted_proxies = vec![trusted];
    })
    .await;
    let token = s.dev_login("+33611111111", "Alice").await;
    let (_, room) = s.post("/rooms", Some(&token), json!({"visibility": "public"})).await;
    let room = room["room_id"].as_str().unwrap().to_string();
    (s, token, room)
}

/// Before: every user behind the proxy shared the proxy's address and its limits.
#[tokio::test]
async fn a_trusted_proxy_reports_each_client() {
    let (s, token, room) = setup("127.0.0.1").await;
    let clients = ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5", "198.51.100.6"];
    assert_eq!(joins_let_through(&s, &token, &room, &clients).await, 6, "six clients, each under its own limit");
    let same = ["203.0.113.9"; 5];
    assert_eq!(joins_let_through(&s, &token, &room, &same).await, 3, "one client is limited");
    // A client that prepends its own X-Forwarded-For gains nothing: the proxy appends the peer.
    let spoofed = ["1.1.1.1, 203.0.113.9", "2.2.2.2, 203.0.113.9"];
    assert_eq!(joins_let_through(&s, &token, &room, &spoofed).await, 0);
}

#[tokio::test]
async fn forwarding_headers_from_anyone_else_are_ignored() {
    let (s, token, room) = setup("10.0.0.0/8").await;
    let clients = ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5"];
    assert_eq!(joins_let_through(&s, &token, &room, &clients).await, 3, "all count as the TCP peer 127.0.0.1");
}
