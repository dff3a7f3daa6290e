//! `GET /metrics` (Prometheus text) on a real server, `--metrics-listen`, and the log formats of
//! the built binary.
mod common;

use std::collections::HashMap;
use std::process::Command;

use common::{TestServer, Ws};
use serde_json::{json, Value};

/// One sample: metric name, labels, value.
type Sample = (String, HashMap<String, String>, f64);

/// Parses the text exposition format (comments skipped; label values unescaped).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line:?}")))),
            None => (series, HashMap::new()),
        };
        out.push((name.to_string(), labels, value));
    }
    out
}

fn parse_labels(text: &str) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("bad labels {text:?}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => value.push(chars.next().map(|(_, c)| if c == 'n' { '\n' } else { c }).unwrap_or('\\')),
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unclosed label value in {text:?}"),
            }
        };
        labels.insert(key.to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// The value of the sample `name` whose labels include all of `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, labels, _)| n == name && want.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| *v)
}

async fn scrape(base: &str) -> (reqwest::StatusCode, String) {
    let resp = reqwest::get(format!("{base}/metrics")).await.expect("scrape");
    let status = resp.status();
    (status, resp.text().await.expect("body"))
}

#[tokio::test]
async fn metrics_show_http_ws_engine_and_gauges_without_user_data() {
    let s = TestServer::start().await;
    let token = s.dev_login(common::A, "Alice").await;
    let (_, room) = s.post("/rooms", Some(&token), json!({"name": "metrics"})).await;
    let room_id = room["room_id"].as_str().expect("a room id").to_string();
    let (status, _) = s.get(&format!("/rooms/{room_id}"), Some(&token)).await;
    assert_eq!(status, 200);
    let (status, _) = s.get("/no/such/route", None).await;
    assert_eq!(status, 404);
    let ws = Ws::auth(&s, &token).await;

    let resp = reqwest::get(format!("{}/metrics", s.base)).await.expect("scrape");
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = resp.text().await.expect("body");
    let samples = parse(&text);

    let count = |route: &str, method: &str, status: &str| {
        value(&samples, "atome_http_request_duration_seconds_count", &[("route", route), ("method", method), ("status", status)])
    };
    assert!(count("/rooms/{room_id}", "GET", "200").is_some_and(|n| n >= 1.0), "route template counted:\n{text}");
    assert!(count("/auth/dev-login", "POST", "200").is_some_and(|n| n >= 1.0), "{text}");
    assert!(count("unmatched", "GET", "404").is_some_and(|n| n >= 1.0), "{text}");
    assert!(value(&samples, "atome_http_request_duration_seconds_bucket", &[("route", "/rooms/{room_id}"), ("le", "+Inf")]).is_some());
    assert!(value(&samples, "atome_ws_messages_total", &[("type", "auth")]).is_some_and(|n| n >= 1.0), "{text}");

    for gauge in ["atome_rooms", "atome_peers", "atome_transports", "atome_producers", "atome_consumers", "atome_routers"] {
        assert!(value(&samples, gauge, &[]).is_some(), "{gauge} missing:\n{text}");
    }
    for worker in ["0", "1"] {
        assert_eq!(value(&samples, "atome_worker_up", &[("worker", worker)]), Some(1.0), "{text}");
        for counter in [
            "atome_worker_packets_in_total",
            "atome_worker_packets_out_total",
            "atome_worker_bytes_in_total",
            "atome_worker_bytes_out_total",
            "atome_worker_rtp_forwarded_total",
            "atome_worker_keyframe_requests_total",
            "atome_worker_cpu_seconds_total",
        ] {
            assert!(value(&samples, counter, &[("worker", worker)]).is_some_and(|v| v >= 0.0), "{counter}{{worker={worker}}}:\n{text}");
        }
        for reason in ["datagram", "guarded"] {
            assert!(value(&samples, "atome_worker_drops_total", &[("worker", worker), ("reason", reason)]).is_some(), "{text}");
        }
    }
    for kind in atome::telemetry::RATE_LIMIT_KINDS {
        assert!(value(&samples, "atome_rate_limited_total", &[("kind", kind)]).is_some(), "{kind}:\n{text}");
    }
    // No phone number, token or room id anywhere on the page.
    for secret in [common::A, "33611111111", token.as_str(), room_id.as_str()] {
        assert!(!text.contains(secret), "{secret:?} leaked into /metrics");
    }
    ws.close().await;
    s.stop().await;
}

#[tokio::test]
async fn rate_limit_refusals_are_counted_by_kind() {
    let s = TestServer::start_with(|c| c.limits.joins_per_minute = 1).await;
    let kind = [("kind", "room_join_per_user")];
    let before = value(&parse(&scrape(&s.base).await.1), "atome_rate_limited_total", &kind).expect("listed from 0");
    let token = s.dev_login(common::A, "Alice").await;
    let (_, room) = s.post("/rooms", Some(&token), json!({})).await;
    let join = format!("/rooms/{}/join", room["room_id"].as_str().expect("a room id"));
    assert_eq!(s.post(&join, Some(&token), json!({})).await.0, 200);
    assert_eq!(s.post(&join, Some(&token), json!({})).await.0, 429);
    let after = value(&parse(&scrape(&s.base).await.1), "atome_rate_limited_total", &kind).expect("listed");
    assert!(after > before, "{before} -> {after}");
    s.stop().await;
}

#[tokio::test]
async fn metrics_listen_moves_metrics_off_the_main_listener() {
    let s = TestServer::start_with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().expect("literal address"))).await;
    let metrics_base = s.metrics_base.clone().expect("a metrics address");
    let (status, _) = scrape(&s.base).await;
    assert_eq!(status, 404, "not on the main listener");
    let (status, text) = scrape(&metrics_base).await;
    assert_eq!(status, 200);
    assert_eq!(value(&parse(&text), "atome_worker_up", &[("worker", "0")]), Some(1.0), "{text}");
    let (status, _) = reqwest::get(format!("{metrics_base}/health")).await.map(|r| (r.status(), ())).expect("request");
    assert_eq!(status, 404, "only /metrics there");
    // Still documented.
    let (_, doc) = s.get("/openapi.json", None).await;
    assert!(doc["paths"]["/metrics"]["get"].is_object(), "{doc}");
    s.stop().await;
}

/// Runs the binary with a configuration it refuses (it logs one error and exits) and returns
/// its stdout, where logs go.
fn run_refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atome"));
    cmd.args(["--data-dir", data_dir.to_str().expect("utf-8 path"), "--rtc-listen-ip", "0.0.0.0"]).args(args);
    cmd.env("RUST_LOG", "info").env_remove("ATOME_LOG_FORMAT").env_remove("ATOME_RTC_ANNOUNCED_IP");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the server binary runs");
    assert!(!out.status.success(), "the configuration is refused");
    String::from_utf8(out.stdout).expect("utf-8 logs")
}

#[test]
fn json_logs_are_one_object_per_line() {
    for stdout in [run_refused(&["--log-format", "json"], &[]), run_refused(&[], &[("ATOME_LOG_FORMAT", "json")])] {
        let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "no log line");
        for line in &lines {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
            assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
        }
        let error = lines.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| v["level"] == "ERROR").expect("the error");
        assert!(error["fields"]["message"].as_str().is_some_and(|m| m.contains("--rtc-announced-ip")), "{error}");
    }
}

#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let stdout = run_refused(&[], &[]);
    assert!(stdout.contains("ERROR") && stdout.contains("--rtc-announced-ip"), "{stdout:?}");
    assert!(!stdout.contains("\x1b["), "ANSI codes in {stdout:?}");
    assert!(serde_json::from_str::<Value>(stdout.lines().next().unwrap_or_default()).is_err(), "text, not JSON");
}

#[tokio::test]
async fn a_failed_worker_shows_down_and_loses_its_counters() {
    let s = TestServer::start().await;
    let _ = s.engine.inject_fault(1, None).await; // unanswered by design: the worker stops
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let samples = loop {
        let samples = parse(&scrape(&s.base).await.1);
        if value(&samples, "atome_worker_up", &[("worker", "1")]) == Some(0.0) {
            break samples;
        }
        assert!(tokio::time::Instant::now() < deadline, "worker 1 still up");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(value(&samples, "atome_worker_up", &[("worker", "0")]), Some(1.0));
    assert!(value(&samples, "atome_worker_packets_in_total", &[("worker", "1")]).is_none());
    assert!(value(&samples, "atome_worker_cpu_seconds_total", &[("worker", "1")]).is_some());
    s.stop().await;
}
