//! Recording with real FFmpeg: plain RTP from the engine, files named by their SHA-256.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_error, connected_send_transport, TestServer, Ws};
use serde_json::{json, Value};
use sfu::rtp_parameters::MediaKind;
use sha2::{Digest, Sha256};
use testpeer::{produce_parameters, publish_in_background, ClientTransport, Track};

const A: &str = "+33611111111";
const B: &str = "+33622222222";

struct Call {
    ws: Ws,
    a: String,
    b: String,
    room_id: String,
    producers: Vec<(MediaKind, String)>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(ClientTransport, Vec<Track>)>>,
}

/// A owns a room (B invited), joins and publishes video + audio from a background thread.
async fn call(s: &TestServer) -> Call {
    let a = s.dev_login(A, "Alice").await;
    let b = s.dev_login(B, "Bob").await;
    s.connect(&a, &b, B).await;
    let (_, room) = s.post("/rooms", Some(&a), json!({})).await;
    let room_id = room["room_id"].as_str().unwrap().to_string();
    s.post(&format!("/rooms/{room_id}/invite"), Some(&a), json!({"to_phone_e164": B})).await;
    let mut ws = Ws::auth(s, &a).await;
    let (_, joined) = s.post(&format!("/rooms/{room_id}/join"), Some(&a), json!({})).await;
    let r = ws
        .request("joinRoom", json!({"room_id": room_id, "join_token": joined["join_token"], "rtpCapabilities": joined["rtpCapabilities"]}))
        .await;
    assert_eq!(r["type"], "roomJoined");
    let mut send = connected_send_transport(&mut ws, &joined).await;
    let mut tracks = Vec::new();
    let mut producers = Vec::new();
    let frames = testpeer::real_vp8_frames().expect("FFmpeg encodes test frames");
    for (i, kind) in [MediaKind::Video, MediaKind::Audio].into_iter().enumerate() {
        let mut track = Track::new(kind, &i.to_string());
        if kind == MediaKind::Video {
            track.vp8_frames = Some(frames.clone());
        }
        let params = produce_parameters(kind, &track.mid, track.ssrc);
        let r = ws.request("produce", json!({"transport_id": send.id, "kind": kind.as_str(), "rtpParameters": params})).await;
        assert_eq!(r["type"], "produced", "{r}");
        track.declare(&mut send);
        tracks.push(track);
        producers.push((kind, r["producer_id"].as_str().unwrap().to_string()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let thread = Some(publish_in_background(send, tracks, stop.clone()));
    // Let the connection come up and media flow.
    tokio::time::sleep(Duration::from_millis(700)).await;
    Call { ws, a, b, room_id, producers, stop, thread }
}

impl Call {
    fn end(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ffprobe(path: &str) -> Value {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,codec_type:format=duration", "-of", "json", path])
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {path}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Checks one finished file: content hash = name = row, codec, duration near `real`.
fn check_file(f: &Value, real: Duration) -> String {
    let path = f["path"].as_str().unwrap();
    let data = std::fs::read(path).unwrap();
    let sha = hex::encode(Sha256::digest(&data));
    assert_eq!(f["sha256"], sha.as_str());
    assert_eq!(f["bytes"], data.len());
    let name = std::path::Path::new(path).file_stem().unwrap().to_str().unwrap();
    assert_eq!(name, sha, "the file is named by its SHA-256");
    let probe = ffprobe(path);
    let codec = probe["streams"][0]["codec_name"].as_str().unwrap().to_string();
    let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    let real = real.as_secs_f64();
    println!("{path}: {codec}, {duration:.2} s for {real:.2} s recorded");
    assert!((duration - real).abs() <= real * 0.2, "{codec}: duration {duration:.2} s vs {real:.2} s");
    if codec == "vp8" {
        // Playable: FFmpeg decodes every frame without an error.
        let out = std::process::Command::new("ffmpeg").args(["-v", "error", "-i", path, "-f", "null", "-"]).output().expect("ffmpeg runs");
        assert!(out.status.success() && out.stderr.is_empty(), "decode errors: {}", String::from_utf8_lossy(&out.stderr));
    }
    codec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_producer_records_vp8_and_opus() {
    let s = TestServer::start().await;
    let mut c = call(&s).await;
    let path = format!("/rooms/{}/record/start", c.room_id);
    let (status, started) = s.post(&path, Some(&c.a), json!({"mode": "perProducer"})).await;
    assert_eq!(status, 200, "{started}");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, stopped) =
        s.post(&format!("/rooms/{}/record/stop", c.room_id), Some(&c.a), json!({"recording_id": started["recording_id"]})).await;
    let real = t0.elapsed();
    assert_eq!(status, 200, "{stopped}");
    let files = stopped["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{stopped}");
    let mut codecs: Vec<String> = files.iter().map(|f| check_file(f, real)).collect();
    codecs.sort();
    assert_eq!(codecs, vec!["opus", "vp8"]);
    for f in files {
        assert_eq!(f["status"], "done", "{f}");
        let dir = if f["kind"] == "video" { "media/video/recordings" } else { "media/audio/recordings" };
        assert!(f["path"].as_str().unwrap().contains(dir));
        assert!(f["path"].as_str().unwrap().ends_with(if f["kind"] == "video" { ".webm" } else { ".ogg" }));
    }
    let (_, list) = s.get(&format!("/rooms/{}/recordings", c.room_id), Some(&c.a)).await;
    assert_eq!(list["recordings"].as_array().unwrap().len(), 2);
    c.end();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_longer_than_ten_seconds_keeps_the_file_going() {
    let s = TestServer::start().await;
    let mut c = call(&s).await;
    let audio = c.producers.iter().find(|p| p.0 == MediaKind::Audio).unwrap().1.clone();
    let (status, started) =
        s.post(&format!("/rooms/{}/record/start", c.room_id), Some(&c.a), json!({"mode": "singleProducer", "producer_id": audio})).await;
    assert_eq!(status, 200, "{started}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Mic muted for 12 s: no packet reaches FFmpeg meanwhile.
    assert_eq!(c.ws.request("pauseProducer", json!({"producer_id": audio})).await["type"], "producerPaused");
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(c.ws.request("resumeProducer", json!({"producer_id": audio})).await["type"], "producerResumed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (list_status, list) = s.get(&format!("/rooms/{}/recordings", c.room_id), Some(&c.a)).await;
    assert_eq!(list_status, 200);
    assert!(list["recordings"].as_array().unwrap().iter().all(|f| f["status"] == "recording"), "still recording after the pause: {list}");
    let (_, stopped) =
        s.post(&format!("/rooms/{}/record/stop", c.room_id), Some(&c.a), json!({"recording_id": started["recording_id"]})).await;
    let files = stopped["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{stopped}");
    // The file holds what came after the pause too: more than the 2 s before it.
    let duration = files[0]["duration_ms"].as_i64().unwrap();
    assert!(duration > 3_500, "{duration} ms recorded: {stopped}");
    c.end();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_producer_records_only_that_one_and_rules_apply() {
    let s = TestServer::start().await;
    let mut c = call(&s).await;
    let start = format!("/rooms/{}/record/start", c.room_id);
    let video = c.producers.iter().find(|p| p.0 == MediaKind::Video).unwrap().1.clone();
    // The invitee may join but not record.
    let r = s.post(&start, Some(&c.b), json!({"mode": "perProducer"})).await;
    assert_error(&r, reqwest::StatusCode::FORBIDDEN, "not_owner");
    let r = s.post(&start, Some(&c.a), json!({"mode": "singleProducer"})).await;
    assert_error(&r, reqwest::StatusCode::BAD_REQUEST, "invalid_body");
    let r = s.post(&start, Some(&c.a), json!({"mode": "singleProducer", "producer_id": "w0-p9-00000000"})).await;
    assert_error(&r, reqwest::StatusCode::NOT_FOUND, "not_found");
    let r = s.post(&format!("/rooms/{}/record/stop", c.room_id), Some(&c.a), json!({"recording_id": "nope"})).await;
    assert_error(&r, reqwest::StatusCode::NOT_FOUND, "not_found");

    let (status, started) = s.post(&start, Some(&c.a), json!({"mode": "singleProducer", "producer_id": video})).await;
    assert_eq!(status, 200, "{started}");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, stopped) =
        s.post(&format!("/rooms/{}/record/stop", c.room_id), Some(&c.a), json!({"recording_id": started["recording_id"]})).await;
    let files = stopped["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{stopped}");
    assert_eq!(files[0]["producer_id"], video.as_str());
    assert_eq!(check_file(&files[0], t0.elapsed()), "vp8");
    c.end();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_that_leaves_mid_recording_still_gives_a_playable_file() {
    let s = TestServer::start().await;
    let mut c = call(&s).await;
    let (_, started) = s.post(&format!("/rooms/{}/record/start", c.room_id), Some(&c.a), json!({"mode": "perProducer"})).await;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let video = c.producers.iter().find(|p| p.0 == MediaKind::Video).unwrap().1.clone();
    let r = c.ws.request("closeProducer", json!({"producer_id": video})).await;
    assert_eq!(r["type"], "producerClosed");
    let video_time = t0.elapsed();
    // The video file finishes by itself, at once (an RTCP BYE ends FFmpeg's input); its row says done.
    let mut done = false;
    for _ in 0..50 {
        let (_, list) = s.get(&format!("/rooms/{}/recordings", c.room_id), Some(&c.a)).await;
        if list["recordings"].as_array().unwrap().iter().any(|f| f["producer_id"] == video.as_str() && f["status"] == "done") {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, list) = s.get(&format!("/rooms/{}/recordings", c.room_id), Some(&c.a)).await;
    assert!(done, "the closed producer's file was finalised without record/stop: {list}");
    let (_, stopped) =
        s.post(&format!("/rooms/{}/record/stop", c.room_id), Some(&c.a), json!({"recording_id": started["recording_id"]})).await;
    let files = stopped["files"].as_array().unwrap();
    let vf = files.iter().find(|f| f["producer_id"] == video.as_str()).unwrap();
    assert_eq!(check_file(vf, video_time), "vp8");
    c.end();
}

#[tokio::test]
async fn without_ffmpeg_recording_is_503_and_the_rest_works() {
    let s = TestServer::start_with(|c| c.ffmpeg = "/nonexistent/ffmpeg".into()).await;
    let a = s.dev_login(A, "Alice").await;
    let (_, room) = s.post("/rooms", Some(&a), json!({})).await;
    let r = s.post(&format!("/rooms/{}/record/start", room["room_id"].as_str().unwrap()), Some(&a), json!({"mode": "perProducer"})).await;
    assert_error(&r, reqwest::StatusCode::SERVICE_UNAVAILABLE, "recording_unavailable");
    assert_eq!(s.get("/health", None).await.1["status"], "ok");
}

#[tokio::test]
async fn recordings_left_running_are_failed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let a = s.dev_login(A, "Alice").await;
    let (_, room) = s.post("/rooms", Some(&a), json!({})).await;
    let room_id = room["room_id"].as_str().unwrap().to_string();
    s.stop().await;
    // A row left `recording` by a server that died.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("atome.db").display())).await.unwrap();
    sqlx::query(
        "INSERT INTO recordings (id, recording_id, room_id, owner_user_id, producer_id, peer_user_id, kind, mode, path, started_at, status) \
         SELECT 'r1', 'rec1', room_id, owner_user_id, 'p', owner_user_id, 'video', 'perProducer', '/x/.partial.webm', 1, 'recording' FROM rooms",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let (_, list) = s.get(&format!("/rooms/{room_id}/recordings"), Some(&a)).await;
    let row = &list["recordings"][0];
    assert_eq!(row["status"], "failed", "{list}");
    assert_eq!(row["path"], "/x/.partial.webm", "the partial file is kept");
    assert!(row["error"].as_str().unwrap().contains("stopped"));
    s.stop().await;
}
