//! A server killed (SIGKILL) in the middle of a recording (issue "Security and abuse", item 10).
//! Before: the Opus file was empty, the WebM one lost its first ~12 s, the rows had no path and
//! the two FFmpeg children kept running, holding their UDP ports. Now: FFmpeg gets SIGINT when
//! the server dies and closes its files, both files hold what was recorded up to the kill, and
//! after a restart the rows are `failed` with the partial file linked. The real server binary,
//! real FFmpeg, a str0m publisher.
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};
use sfu::rtp_parameters::MediaKind;
use testpeer::signaling::Ws;
use testpeer::{produce_parameters, publish_in_background, ClientTransport, Track};

const RECORD_FOR: Duration = Duration::from_secs(5);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The server process, killed when dropped (a failing assertion must not leave it running).
struct Server(Child);

impl Server {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start_server(data_dir: &std::path::Path, port: u16) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_atome"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--rtc-port", "0", "--workers", "1", "--dev-auth", "--sms-sender", "file"])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server binary starts"),
    )
}

async fn wait_up(http: &Client, base: &str) {
    for _ in 0..100 {
        if http.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not come up at {base}");
}

/// FFmpeg processes writing under `dir`.
fn ffmpeg_under(dir: &std::path::Path) -> Vec<i32> {
    let dir = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&raw);
            text.contains("ffmpeg") && text.contains(&dir)
        })
        .collect()
}

/// Seconds of media in a file, from its packets' timestamps: a file whose writer died before its
/// trailer has no duration in its header, but what was flushed is still readable.
fn media_seconds(path: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0", path])
        .output()
        .expect("ffprobe runs");
    let times: Vec<f64> =
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().trim_end_matches(',').parse().ok()).collect();
    let first = times.iter().copied().fold(f64::INFINITY, f64::min);
    let last = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if times.is_empty() {
        0.0
    } else {
        last - first
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_playable_linked_files_and_no_ffmpeg() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = Client::new();
    let mut server = start_server(data.path(), port);
    wait_up(&http, &base).await;

    // A publishes real VP8 and Opus-like audio into a room of their own.
    let token = testpeer::signaling::dev_login(&base, "+33611111111", "Alice").await.unwrap();
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).bearer_auth(&token).json(&body).send();
    let room: Value = post("/rooms", json!({})).await.unwrap().json().await.unwrap();
    let room_id = room["room_id"].as_str().unwrap().to_string();
    let joined: Value = post(&format!("/rooms/{room_id}/join"), json!({})).await.unwrap().json().await.unwrap();
    let mut ws = Ws::authenticated(&base, &token).await.unwrap();
    ws.request("joinRoom", json!({"room_id": room_id, "join_token": joined["join_token"], "rtpCapabilities": joined["rtpCapabilities"]}))
        .await
        .unwrap();
    let caps = serde_json::from_value(joined["rtpCapabilities"].clone()).unwrap();
    let r = ws
        .request("createTransport", json!({"direction": "send", "rtpCapabilities": testpeer::send_rtp_capabilities(&caps)}))
        .await
        .unwrap();
    let (mut send, dtls) = ClientTransport::new(&r["transportOptions"], true).unwrap();
    ws.request("connectTransport", json!({"transport_id": send.id, "dtlsParameters": dtls})).await.unwrap();
    let mut tracks = Vec::new();
    for (i, kind) in [MediaKind::Video, MediaKind::Audio].into_iter().enumerate() {
        let mut track = Track::new(kind, &i.to_string());
        if kind == MediaKind::Video {
            track.vp8_frames = Some(testpeer::real_vp8_frames().expect("FFmpeg encodes test frames"));
        }
        let params = produce_parameters(kind, &track.mid, track.ssrc);
        let r = ws.request("produce", json!({"transport_id": send.id, "kind": kind.as_str(), "rtpParameters": params})).await.unwrap();
        assert_eq!(r["type"], "produced", "{r}");
        track.declare(&mut send);
        tracks.push(track);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = publish_in_background(send, tracks, stop.clone());
    tokio::time::sleep(Duration::from_millis(700)).await;

    let started: Value =
        post(&format!("/rooms/{room_id}/record/start"), json!({"mode": "perProducer"})).await.unwrap().json().await.unwrap();
    assert!(started["recording_id"].is_string(), "{started}");
    tokio::time::sleep(RECORD_FOR).await;
    assert_eq!(ffmpeg_under(data.path()).len(), 2, "two FFmpeg recorders run");

    server.kill(); // SIGKILL: no cleanup of ours runs
    stop.store(true, Ordering::Relaxed);
    let _ = publisher.join();
    let gone = Instant::now() + Duration::from_secs(10);
    while !ffmpeg_under(data.path()).is_empty() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ffmpeg_under(data.path()).is_empty(), "FFmpeg ended with the server");

    // After a restart, the rows are failed and link the partial files, which play.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(data.path(), port);
    wait_up(&http, &base).await;
    let list: Value =
        http.get(format!("{base}/rooms/{room_id}/recordings")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let rows = list["recordings"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "{list}");
    for row in &rows {
        assert_eq!(row["status"], "failed", "{row}");
        let path = row["path"].as_str().unwrap_or_else(|| panic!("the partial file is linked: {row}"));
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let seconds = media_seconds(path);
        println!("{}: {bytes} bytes, {seconds:.2} s of {:.2} s recorded", row["kind"], RECORD_FOR.as_secs_f64());
        assert!(seconds >= RECORD_FOR.as_secs_f64() - 2.5, "{}: {seconds:.2} s kept of {RECORD_FOR:?}", row["kind"]);
    }
    server.kill();
}

/// FFmpeg left writing under the data directory by an earlier run (one that died before
/// parent-death signals were set) is stopped when the server starts on that directory.
#[tokio::test]
async fn leftover_recorders_are_stopped_at_start() {
    let data = tempfile::tempdir().unwrap();
    let partial = data.path().join("users/u1/media/video/recordings/.partial-r1.webm");
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    // A stand-in whose command line is an FFmpeg recorder's: argv[0] "ffmpeg", the partial file.
    let mut leftover = Command::new("bash").arg0("ffmpeg").args(["-c", "sleep 60; :", "x", "-y"]).arg(&partial).spawn().unwrap();
    let seen = Instant::now() + Duration::from_secs(5);
    while ffmpeg_under(data.path()).is_empty() && Instant::now() < seen {
        std::thread::sleep(Duration::from_millis(20));
    }
    // (Bash forks before running `sleep`: for an instant the fork carries the same command line.)
    assert!(!ffmpeg_under(data.path()).is_empty(), "the stand-in runs");
    let port = free_port();
    let http = Client::new();
    let mut server = start_server(data.path(), port);
    wait_up(&http, &format!("http://127.0.0.1:{port}")).await;
    let status = leftover.wait().unwrap();
    assert!(!status.success(), "the leftover was stopped: {status:?}");
    assert!(ffmpeg_under(data.path()).is_empty());
    server.kill();
}
