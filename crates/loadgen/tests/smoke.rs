//! The load tool against a real Atome server, small and short: every subscriber gets media and
//! the JSON report carries every figure. (What the figures are worth is for benchmarks.)
use std::process::Command;

mod common;
use common::report;

#[test]
fn a_small_run_reports_every_figure() {
    let doc = report(["--rooms", "2", "--publishers", "1", "--subscribers", "2", "--seconds", "2", "--warmup", "1", "--no-pin"]);
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

/// A join storm: every storm subscriber joins, gets media, and the figures are there.
#[test]
fn a_small_join_storm_reports_join_to_first_packet() {
    let doc = report([
        "--rooms",
        "2",
        "--publishers",
        "1",
        "--subscribers",
        "0",
        "--warmup",
        "1",
        "--join-storm",
        "6",
        "--join-storm-ms",
        "300",
        "--no-pin",
    ]);
    let storm = &doc["join_storms"][0];
    assert_eq!(storm["target"], "atome");
    assert_eq!(
        (storm["peers"].as_u64(), storm["joined"].as_u64(), storm["without_media"].as_u64()),
        (Some(6), Some(6), Some(0)),
        "{storm}"
    );
    for key in ["join_to_first_packet_p50_ms", "join_to_first_packet_p99_ms", "signaling_p99_ms", "server_cpu_seconds"] {
        assert!(storm[key].as_f64().is_some_and(|v| v.is_finite() && v > 0.0), "{key}: {storm}");
    }
}

/// The mediasoup target, where the reference is built (`MSREF`, else ~/.cache/mediasoup-ref):
/// its peers connect (the test client copes with its five fingerprints), its probing stream is
/// not counted as a consumer's, and the ratios over Atome come out. Skipped elsewhere.
#[test]
fn the_mediasoup_target_runs_side_by_side_with_atome() {
    let dir = std::env::var_os("MSREF")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/mediasoup-ref"));
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !dir.join("bin/mediasoup-worker").exists() || !node_ok {
        eprintln!("skipped: no mediasoup reference in {} (or no node)", dir.display());
        return;
    }
    let mut args: Vec<std::ffi::OsString> = [
        "--rooms",
        "2",
        "--publishers",
        "1",
        "--subscribers",
        "2",
        "--seconds",
        "2",
        "--warmup",
        "1",
        "--no-pin",
        "--targets",
        "atome,mediasoup",
        "--msref",
    ]
    .map(Into::into)
    .into();
    args.push(dir.into_os_string());
    let doc = report(args);
    let run = &doc["runs"][1];
    assert_eq!(run["target"], "mediasoup");
    assert_eq!(run["silent_streams"], 0, "{run}");
    assert_eq!(run["subscribers_without_media"], 0, "{run}");
    assert!(run["forwarded_pps"].as_f64().unwrap() > 400.0, "{run}");
    // node and its one mediasoup-worker.
    assert!(run["server_processes"].as_u64().unwrap() >= 2, "{run}");
    let ratio = &doc["mediasoup_over_atome"];
    assert!(ratio["cpu_per_packet"].as_f64().is_some_and(|v| v.is_finite() && v > 0.0), "{ratio}");
}

/// A target that cannot be started fails the run with the reason, not with empty figures.
#[test]
fn a_missing_mediasoup_reference_fails_loudly() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--targets", "mediasoup", "--msref", "/nonexistent/msref", "--no-pin"])
        .output()
        .expect("loadgen runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/msref/server/server.mjs"), "{stderr}");
}
