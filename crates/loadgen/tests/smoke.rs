//! The load tool against a real Atome server, small and short: every subscriber gets media and
//! the JSON report carries every figure. (What the figures are worth is for benchmarks.)
use std::process::Command;

#[test]
fn a_small_run_reports_every_figure() {
    let loadgen = env!("CARGO_BIN_EXE_loadgen");
    let atome = std::path::Path::new(loadgen).with_file_name("atome");
    if !atome.exists() {
        // `cargo test --workspace` builds it; a lone `cargo test -p loadgen` may not have.
        let status = Command::new(env!("CARGO")).args(["build", "-p", "atome"]).status().expect("cargo build");
        assert!(status.success());
    }
    let out = Command::new(loadgen)
        .args(["--rooms", "2", "--publishers", "1", "--subscribers", "2", "--seconds", "2", "--warmup", "1", "--no-pin", "--json"])
        .arg("--atome-bin")
        .arg(&atome)
        .output()
        .expect("loadgen runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadgen failed: {stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let run = &doc["runs"][0];
    assert_eq!(run["target"], "atome");
    assert_eq!(run["consumers"], 8, "{run}");
    assert_eq!(run["silent_streams"], 0, "{run}");
    assert_eq!(run["subscribers_without_media"], 0, "{run}");
    // 2 rooms x 2 subscribers x (video ~120 + audio 50 pkt/s).
    let forwarded = run["forwarded_pps"].as_f64().unwrap();
    assert!(forwarded > 400.0, "{run}");
    assert!(run["loss_percent"].as_f64().unwrap() < 5.0, "{run}");
    for key in [
        "server_cpu_seconds_per_million_packets",
        "latency_p50_ms",
        "latency_p99_ms",
        "join_to_first_packet_p50_ms",
        "server_rss_per_consumer_bytes",
        "client_cpu_percent",
    ] {
        assert!(run[key].as_f64().is_some_and(|v| v.is_finite() && v > 0.0), "{key}: {run}");
    }
}
