//! The mediasoup reference (`shared/reference/mediasoup-ref`): the real mediasoup 3.12 worker
//! behind a small Node server that speaks this project's HTTP and WebSocket contract, so the
//! Atome driver ([`crate::atome::setup`]) runs it unchanged. Started the way its
//! `run-server.sh` does (`node $MSREF/server/server.mjs` with `MEDIASOUP_WORKER_BIN`), pinned
//! like Atome; its `mediasoup-worker` children inherit the pinning, and the server readings
//! cover node and the workers together ([`crate::server::ServerProcess`] reads the process tree).
//!
//! Quirks the tool allows for: every transport that sends to a client carries mediasoup's
//! bandwidth-probing stream (mid `probator`, SSRC 1234), which is not counted as media
//! ([`crate::media::is_probe`]); its transports list five fingerprint algorithms in an order that
//! changes per worker (the test client picks sha-256).
use std::path::{Path, PathBuf};

use crate::server::{free_port, scratch_dir, wait_http, ServerProcess};

/// Where the reference is built by default (`build.sh` without `MSREF`).
pub fn default_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from).join(".cache/mediasoup-ref")
}

/// The files a run needs under the reference's build dir: the signaling server and the worker.
pub fn files(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let script = dir.join("server/server.mjs");
    let worker = dir.join("bin/mediasoup-worker");
    for f in [&script, &worker] {
        if !f.is_file() {
            return Err(format!(
                "mediasoup reference: no {} (build it with shared/reference/mediasoup-ref/build.sh, or give its dir with --msref / MSREF)",
                f.display()
            ));
        }
    }
    Ok((script, worker))
}

/// Starts the reference server with `workers` mediasoup workers (one WebRtcServer, one UDP port
/// each, on free ports), signaling on a free loopback port.
pub async fn start(node: &Path, dir: &Path, workers: usize, cpus: Option<&str>) -> Result<(ServerProcess, String), String> {
    let (script, worker) = files(dir)?;
    let scratch = scratch_dir("mediasoup")?;
    let port = free_port()?;
    let args: Vec<String> = vec![
        script.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--workers".into(),
        workers.to_string(),
        "--rtc-port".into(),
        "0".into(),
    ];
    let envs = [("MEDIASOUP_WORKER_BIN", worker.display().to_string()), ("MSREF_LOG_LEVEL", "warn".to_string())];
    let mut server = ServerProcess::spawn("mediasoup", node, &args, &envs, cpus, scratch)?;
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&mut server, &format!("{base}/health")).await?;
    Ok((server, base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_build_is_a_clear_error() {
        let e = files(Path::new("/nonexistent/msref")).unwrap_err();
        assert!(e.contains("/nonexistent/msref/server/server.mjs") && e.contains("MSREF"), "{e}");
    }
}
