//! Server-side recording: one FFmpeg process per recorded producer, fed plain RTP by a consumer
//! on a PlainTransport and an SDP on stdin, writing WebM (VP8) or Ogg (Opus). Files are named by
//! the SHA-256 of their content once finished, with one `recordings` row each.
//!
//! One file per producer (audio and video of a peer are separate files): no A/V sync problem
//! inside a file, and a producer that ends finishes only its own file.
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sfu::{ProducerId, RouterId};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::events::{Happened, RoomEvent};
use super::{Media, MediaInner};
use crate::db::{new_id, now_ms, Db};
use crate::http::{ok, ApiError, ApiJson, ApiPath, ApiResult};
use crate::plugins::identity::AuthUser;
use crate::plugins::rooms::visible_room;

/// How long FFmpeg may take to open its RTP port, and to finish its file after SIGINT.
const FFMPEG_START: Duration = Duration::from_secs(5);
const FFMPEG_STOP: Duration = Duration::from_secs(15);
/// FFmpeg ends its input after this many seconds without a packet (`-listen_timeout`). The
/// engine sends the recorder an RTCP receiver report twice a second even while the producer is
/// paused (camera off, mic muted keep the file going), so silence means the server is gone:
/// FFmpeg then closes its file properly. A file normally ends with an RTCP BYE.
const SILENCE_ENDS_FILE_SECS: &str = "4";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Mode {
    #[serde(rename = "singleProducer")]
    SingleProducer,
    #[serde(rename = "perProducer")]
    PerProducer,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::SingleProducer => "singleProducer",
            Mode::PerProducer => "perProducer",
        }
    }
}

struct FileRecorder {
    producer: ProducerId,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

struct Active {
    room_id: String,
    owner_user_id: String,
    mode: Mode,
    files: Vec<FileRecorder>,
}

/// Recordings in progress, keyed by recording_id.
#[derive(Default)]
pub struct Recordings {
    active: tokio::sync::Mutex<HashMap<String, Active>>,
}

/// Whether `ffmpeg -version` runs.
pub fn ffmpeg_available(ffmpeg: &Path) -> bool {
    std::process::Command::new(ffmpeg).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// At start: recordings a previous run left `recording` can never finish.
pub async fn mark_interrupted(db: &Db) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE recordings SET status = 'failed', stopped_at = ?, error = 'the server stopped during the recording' \
         WHERE status = 'recording'",
    )
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A free even port and the next one (RTP and RTCP) on loopback. FFmpeg binds them itself, so a
/// short race with another process remains; FFmpeg then fails to start and the file is `failed`.
fn free_port_pair() -> Option<u16> {
    for _ in 0..50 {
        let port = fastrand::u16(20_000..60_000) & !1;
        let a = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let b = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port + 1));
        if a.is_ok() && b.is_ok() {
            return Some(port);
        }
    }
    None
}

/// Whether someone (FFmpeg) has bound `port`.
fn port_taken(port: u16) -> bool {
    UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_err()
}

fn sdp(kind: &str, port: u16, options: &Value) -> Option<String> {
    let codec = &options["rtpParameters"]["codecs"][0];
    let pt = codec["payloadType"].as_u64()?;
    let mime = codec["mimeType"].as_str()?;
    let name = mime.split('/').nth(1)?;
    let clock = codec["clockRate"].as_u64()?;
    let mut rtpmap = format!("{name}/{clock}");
    if let Some(ch) = codec["channels"].as_u64() {
        rtpmap.push_str(&format!("/{ch}"));
    }
    Some(format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=atome recording\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m={kind} {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {rtpmap}\r\na=recvonly\r\n"
    ))
}

struct FileJob {
    media: Media,
    row_id: String,
    owner_user_id: String,
    producer: ProducerId,
    kind: String,
    router: RouterId,
}

impl Media {
    /// Spawns the recorder of one producer and writes its `recording` row.
    async fn start_file(
        &self,
        recording_id: &str,
        active: &Active,
        producer: ProducerId,
        kind: String,
        peer_user_id: String,
        router: RouterId,
    ) -> Result<FileRecorder, ApiError> {
        let row_id = new_id();
        sqlx::query(
            "INSERT INTO recordings (id, recording_id, room_id, owner_user_id, producer_id, peer_user_id, kind, mode, started_at, status) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'recording')",
        )
        .bind(&row_id)
        .bind(recording_id)
        .bind(&active.room_id)
        .bind(&active.owner_user_id)
        .bind(producer.to_string())
        .bind(&peer_user_id)
        .bind(&kind)
        .bind(active.mode.as_str())
        .bind(now_ms())
        .execute(&self.0.core.db)
        .await?;
        let (stop, stopped) = oneshot::channel();
        let job =
            FileJob { media: self.clone(), row_id, owner_user_id: active.owner_user_id.clone(), producer: producer.clone(), kind, router };
        let task = tokio::spawn(job.run(stopped));
        Ok(FileRecorder { producer, stop: Some(stop), task })
    }

    /// A producer closed: its recorders finish their files.
    pub async fn recording_producer_closed(&self, producer: &ProducerId) {
        let mut active = self.0.recordings.active.lock().await;
        for rec in active.values_mut() {
            for f in rec.files.iter_mut().filter(|f| &f.producer == producer) {
                if let Some(stop) = f.stop.take() {
                    let _ = stop.send(());
                }
            }
        }
    }

    /// A producer appeared: `perProducer` recordings of its room record it too.
    pub async fn recording_producer_added(&self, room_id: &str, router: &RouterId, producer: &ProducerId, kind: &str, peer_user_id: &str) {
        let mut active = self.0.recordings.active.lock().await;
        for (recording_id, rec) in active.iter_mut() {
            if rec.room_id != room_id || rec.mode != Mode::PerProducer || rec.files.iter().any(|f| &f.producer == producer) {
                continue;
            }
            match self.start_file(recording_id, rec, producer.clone(), kind.to_string(), peer_user_id.to_string(), router.clone()).await {
                Ok(f) => rec.files.push(f),
                Err(e) => tracing::warn!(%recording_id, "cannot record new producer: {e}"),
            }
        }
    }
}

/// Starts and stops recorders as producers come and go in the calls.
pub async fn follow_rooms(media: Weak<MediaInner>, mut events: mpsc::UnboundedReceiver<RoomEvent>) {
    let mut routers: HashMap<Arc<str>, RouterId> = HashMap::new();
    while let Some(RoomEvent { room_id, what }) = events.recv().await {
        let Some(media) = media.upgrade().map(Media) else { return };
        match what {
            Happened::Opened { router } => drop(routers.insert(room_id, router)),
            Happened::ProducerAdded { producer, kind, peer_user_id } => {
                if let Some(router) = routers.get(&room_id) {
                    media.recording_producer_added(&room_id, router, &producer, kind.as_str(), &peer_user_id).await;
                }
            }
            Happened::ProducerClosed { producer } => media.recording_producer_closed(&producer).await,
            Happened::Closed => drop(routers.remove(&room_id)),
        }
    }
}

impl FileJob {
    async fn run(self, stopped: oneshot::Receiver<()>) {
        let started = Instant::now();
        let outcome = self.record(stopped).await;
        let db = &self.media.0.core.db;
        let result = match outcome {
            Ok((path, sha, bytes, mime, duration_ms)) => {
                sqlx::query(
                    "UPDATE recordings SET status = 'done', path = ?, sha256 = ?, bytes = ?, mime = ?, duration_ms = ?, stopped_at = ? WHERE id = ?",
                )
                .bind(path.display().to_string())
                .bind(sha)
                .bind(bytes as i64)
                .bind(mime)
                .bind(duration_ms.unwrap_or(started.elapsed().as_millis() as i64))
                .bind(now_ms())
                .bind(&self.row_id)
                .execute(db)
                .await
            }
            Err((error, partial)) => {
                tracing::warn!(row = %self.row_id, "recording failed: {error}");
                sqlx::query("UPDATE recordings SET status = 'failed', error = ?, path = ?, stopped_at = ? WHERE id = ?")
                    .bind(error)
                    .bind(partial.map(|p| p.display().to_string()))
                    .bind(now_ms())
                    .bind(&self.row_id)
                    .execute(db)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::error!(row = %self.row_id, "cannot update recording row: {e}");
        }
    }

    /// Records until stopped (or the producer/FFmpeg ends); the finished file's
    /// (path, sha256, bytes, mime, duration_ms), or the error and the partial file kept.
    async fn record(
        &self,
        mut stopped: oneshot::Receiver<()>,
    ) -> Result<(PathBuf, String, u64, &'static str, Option<i64>), (String, Option<PathBuf>)> {
        let engine = self.media.engine();
        let config = &self.media.0.core.config;
        let (subdir, ext, mime) = if self.kind == "video" { ("video", "webm", "video/webm") } else { ("audio", "ogg", "audio/ogg") };
        let dir = config.data_dir.join("users").join(&self.owner_user_id).join("media").join(subdir).join("recordings");
        tokio::fs::create_dir_all(&dir).await.map_err(|e| (format!("cannot create {}: {e}", dir.display()), None))?;
        let partial = dir.join(format!(".partial-{}.{ext}", self.row_id));
        // The row names the partial file from the start: if the server dies, what FFmpeg wrote
        // is still linked (and kept) once the row is marked failed at the next start.
        let linked = sqlx::query("UPDATE recordings SET path = ? WHERE id = ?")
            .bind(partial.display().to_string())
            .bind(&self.row_id)
            .execute(&self.media.0.core.db)
            .await;
        if let Err(e) = linked {
            return Err((format!("cannot record the file's path: {e}"), None));
        }

        let port = free_port_pair().ok_or(("no free UDP port pair for FFmpeg".to_string(), None))?;
        let remote = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let transport = engine.create_plain_transport(self.router.clone(), remote).await.map_err(|e| (e.to_string(), None))?;
        let cleanup = |t: sfu::TransportId| async move {
            let _ = engine.close_transport(t).await;
        };
        let consumer = match engine.consume(transport.clone(), self.producer.clone(), engine.rtp_capabilities().clone()).await {
            Ok(c) => c,
            Err(e) => {
                cleanup(transport).await;
                return Err((format!("cannot consume the producer: {e}"), None));
            }
        };
        let options = serde_json::to_value(&consumer).unwrap_or(Value::Null);
        let Some(sdp) = sdp(&self.kind, port, &options) else {
            cleanup(transport).await;
            return Err(("cannot describe the stream for FFmpeg".into(), None));
        };
        let mut command = tokio::process::Command::new(&config.ffmpeg);
        command
            .args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-protocol_whitelist", "pipe,udp,rtp"])
            // Probe at most 1 s of input (5 s by default): the file starts that much sooner.
            .args(["-analyzeduration", "1000000", "-probesize", "262144"])
            .args(["-listen_timeout", SILENCE_ENDS_FILE_SECS, "-f", "sdp", "-i", "pipe:0"])
            .args(["-map", "0", "-c", "copy"])
            // On disk every half second (clusters, pages, packets flushed): a crash loses little.
            .args(["-flush_packets", "1"])
            .args(if self.kind == "video" { ["-cluster_time_limit", "500"] } else { ["-page_duration", "500000"] })
            .arg("-y")
            .arg(&partial)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        end_with_this_thread(&mut command);
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                cleanup(transport).await;
                return Err((format!("cannot start FFmpeg: {e}"), None));
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(sdp.as_bytes()).await;
            // Closing stdin ends the SDP; FFmpeg then opens its RTP port.
        }
        let last_line = child.stderr.take().map(|stderr| {
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                let mut last = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if !line.trim().is_empty() {
                        last = line;
                    }
                }
                last
            })
        });
        let last_stderr = |h: Option<tokio::task::JoinHandle<String>>| async move {
            match h {
                Some(h) => h.await.unwrap_or_default(),
                None => String::new(),
            }
        };

        // Send only once FFmpeg listens, then ask for a keyframe (resume does).
        let deadline = Instant::now() + FFMPEG_START;
        while !port_taken(port) {
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill().await;
                cleanup(transport).await;
                let line = last_stderr(last_line).await;
                return Err((format!("FFmpeg did not start listening: {line}"), None));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(e) = engine.resume_consumer(consumer.id.clone()).await {
            tracing::debug!("resume recording consumer: {e}");
        }
        tracing::info!(row = %self.row_id, producer = %self.producer, port, "recording");

        let ended_by_itself = tokio::select! {
            _ = &mut stopped => false,
            _ = child.wait() => true,
        };
        if !ended_by_itself {
            // Stop cleanly, so FFmpeg writes the file's trailer (SIGKILL would not): an RTCP BYE
            // on its RTCP port ends its input even while no media flows; SIGINT as well.
            let ssrc = options["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap_or(0) as u32;
            if let Err(e) = send_bye(port, ssrc).await {
                tracing::warn!(row = %self.row_id, "cannot send RTCP BYE to FFmpeg: {e}");
            }
            interrupt(&child);
            if tokio::time::timeout(FFMPEG_STOP, child.wait()).await.is_err() {
                let _ = child.kill().await;
                cleanup(transport).await;
                let line = last_stderr(last_line).await;
                return Err((format!("FFmpeg did not finish in time: {line}"), partial.exists().then_some(partial)));
            }
        }
        cleanup(transport).await;
        let line = last_stderr(last_line).await;
        // On its own FFmpeg only ends well when its input went silent (producer gone).
        if ended_by_itself && !line.contains("timed out") {
            return Err((format!("FFmpeg died: {line}"), partial.exists().then_some(partial)));
        }
        let data = match tokio::fs::read(&partial).await {
            Ok(d) if !d.is_empty() => d,
            _ => return Err((format!("FFmpeg wrote no file: {line}"), None)),
        };
        let sha = hex::encode(Sha256::digest(&data));
        let final_path = dir.join(format!("{sha}.{ext}"));
        tokio::fs::rename(&partial, &final_path).await.map_err(|e| (format!("cannot name the file: {e}"), Some(partial.clone())))?;
        let duration_ms = probe_duration_ms(&config.ffmpeg, &final_path).await;
        if duration_ms.is_none() {
            return Err((format!("the file is not readable: {line}"), Some(final_path)));
        }
        Ok((final_path, sha, data.len() as u64, mime, duration_ms))
    }
}

/// A compound RTCP packet (RFC 3550 6.1: an empty receiver report, then BYE for `ssrc`) to
/// FFmpeg's RTCP port (its RTP port + 1). FFmpeg ignores RTCP shorter than 12 bytes, so a lone
/// 8-byte BYE would not do.
async fn send_bye(rtp_port: u16, ssrc: u32) -> std::io::Result<()> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let mut bye = vec![0x80, 201, 0, 1];
    bye.extend_from_slice(&ssrc.to_be_bytes());
    bye.extend_from_slice(&[0x81, 203, 0, 1]);
    bye.extend_from_slice(&ssrc.to_be_bytes());
    socket.send_to(&bye, ("127.0.0.1", rtp_port.wrapping_add(1))).await?;
    Ok(())
}

/// FFmpeg gets SIGINT (and writes what it can) when the thread that spawned it ends: Linux's
/// parent-death signal fires on the spawning *thread*'s exit. Recorders spawn FFmpeg from
/// tokio's worker threads, which live as long as the runtime, that is the server (never from
/// the blocking pool, whose threads come and go).
fn end_with_this_thread(command: &mut tokio::process::Command) {
    // SAFETY: getpid(2) before the fork; in the child only async-signal-safe calls (prctl(2),
    // getppid(2), signal(2)) before exec.
    let parent = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The server died between fork and prctl: the signal would never come.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the server ended before FFmpeg started"));
            }
            // Its stderr is a pipe to us: once we are gone, a warning it writes there must not
            // kill it (SIGPIPE) before it has closed its file.
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// At start: FFmpeg processes of an earlier run still writing under `data_dir` (a server killed
/// before parent-death signals were set, or a kernel that did not deliver them) are asked to
/// finish (SIGINT, then SIGKILL after 5 s), so their files close and their ports come back.
/// Returns how many were found.
pub fn reap_leftover_ffmpeg(data_dir: &Path) -> usize {
    let mut roots = vec![data_dir.join("users").display().to_string()];
    if let Ok(abs) = data_dir.canonicalize() {
        roots.push(abs.join("users").display().to_string());
    }
    let ours = |args: &[String]| {
        args.first().is_some_and(|a| a.ends_with("ffmpeg"))
            && args.iter().any(|a| a.contains("/.partial-") && roots.iter().any(|r| a.starts_with(r.as_str())))
    };
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let pids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let args: Vec<String> = raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            ours(&args)
        })
        .collect();
    for pid in &pids {
        tracing::warn!(pid, "FFmpeg left by an earlier run is still recording: asking it to finish");
        // SAFETY: kill(2) with a pid read from /proc; no memory is involved.
        unsafe { libc::kill(*pid, libc::SIGINT) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && pids.iter().any(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in pids.iter().filter(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
        // SAFETY: as above.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    pids.len()
}

fn interrupt(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on a child we spawned and have not reaped; no memory is involved.
        unsafe {
            libc::kill(pid as i32, libc::SIGINT);
        }
    }
}

/// The container's duration according to ffprobe (next to ffmpeg), if it can tell.
async fn probe_duration_ms(ffmpeg: &Path, file: &Path) -> Option<i64> {
    let ffprobe = match ffmpeg.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.join("ffprobe"),
        None => PathBuf::from("ffprobe"),
    };
    let out = tokio::process::Command::new(ffprobe)
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1"])
        .arg(file)
        .output()
        .await
        .ok()?;
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((secs * 1000.0).round() as i64)
}

/// The room if `user` owns it: 404 if they cannot see it, 403 if they only may join it.
async fn owned_room(media: &Media, room_id: &str, auth: &AuthUser) -> Result<crate::plugins::rooms::Room, ApiError> {
    let room = visible_room(&media.0.core.db, room_id, &auth.user).await?;
    if room.owner_user_id != auth.user.user_id {
        return Err(ApiError::forbidden("not_owner", "only the room's owner may record it"));
    }
    Ok(room)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    mode: Mode,
    producer_id: Option<String>,
}

pub async fn start(
    State(media): State<Media>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<String>,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<Json<Value>> {
    let room = owned_room(&media, &room_id, &auth).await?;
    if !media.0.ffmpeg_ok {
        return Err(ApiError::Unavailable {
            code: "recording_unavailable",
            message: format!("recording needs FFmpeg, and {} cannot run on this server", media.0.core.config.ffmpeg.display()),
        });
    }
    // What to record, from the call in progress.
    let call = media
        .0
        .calls
        .get(&room.room_id)
        .ok_or_else(|| ApiError::conflict("no_call", "nobody is in this room's call: nothing to record"))?;
    let router = call.router().clone();
    let producers: Vec<(ProducerId, String, String)> =
        call.producers().await.into_iter().map(|p| (p.producer_id, p.kind.as_str().to_string(), p.peer_user_id)).collect();
    let producers = match (body.mode, body.producer_id) {
        (Mode::SingleProducer, None) => {
            return Err(ApiError::bad_request("invalid_body", "singleProducer needs a producer_id"));
        }
        (Mode::SingleProducer, Some(wanted)) => {
            let one: Vec<_> = producers.into_iter().filter(|(id, _, _)| id.as_str() == wanted).collect();
            if one.is_empty() {
                return Err(ApiError::not_found("no such producer in this room"));
            }
            one
        }
        (Mode::PerProducer, _) => producers,
    };
    let recording_id = new_id();
    let mut active =
        Active { room_id: room.room_id.clone(), owner_user_id: room.owner_user_id.clone(), mode: body.mode, files: Vec::new() };
    for (producer, kind, peer) in producers {
        let file = media.start_file(&recording_id, &active, producer, kind, peer, router.clone()).await?;
        active.files.push(file);
    }
    let files = active.files.len();
    media.0.recordings.active.lock().await.insert(recording_id.clone(), active);
    tracing::info!(%recording_id, room_id = %room.room_id, files, "recording started");
    Ok(ok(json!({"recording_id": recording_id, "mode": body.mode.as_str(), "producers": files})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    recording_id: String,
}

pub async fn stop(
    State(media): State<Media>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<String>,
    ApiJson(body): ApiJson<StopBody>,
) -> ApiResult<Json<Value>> {
    let room = owned_room(&media, &room_id, &auth).await?;
    let active = {
        let mut all = media.0.recordings.active.lock().await;
        match all.get(&body.recording_id) {
            Some(a) if a.room_id == room.room_id => all.remove(&body.recording_id),
            _ => None,
        }
    };
    let Some(active) = active else {
        return Err(ApiError::not_found("no recording in progress with that id in this room"));
    };
    let mut tasks = Vec::new();
    for mut f in active.files {
        if let Some(stop) = f.stop.take() {
            let _ = stop.send(());
        }
        tasks.push(f.task);
    }
    for task in tasks {
        let _ = task.await;
    }
    let files = files_of(&media.0.core.db, "recording_id", &body.recording_id).await?;
    Ok(ok(json!({"recording_id": body.recording_id, "files": files})))
}

pub async fn list(State(media): State<Media>, auth: AuthUser, ApiPath(room_id): ApiPath<String>) -> ApiResult<Json<Value>> {
    let room = owned_room(&media, &room_id, &auth).await?;
    let recordings = files_of(&media.0.core.db, "room_id", &room.room_id).await?;
    Ok(ok(json!({"recordings": recordings})))
}

/// One `recordings` row as the API shows it (times as ISO 8601).
#[derive(sqlx::FromRow, Serialize)]
struct FileRow {
    id: String,
    recording_id: String,
    producer_id: String,
    peer_user_id: String,
    kind: String,
    mode: String,
    path: Option<String>,
    sha256: Option<String>,
    bytes: Option<i64>,
    mime: Option<String>,
    duration_ms: Option<i64>,
    #[serde(serialize_with = "iso")]
    started_at: i64,
    #[serde(serialize_with = "iso_opt")]
    stopped_at: Option<i64>,
    status: String,
    error: Option<String>,
}

fn iso<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::db::iso(*ms))
}

fn iso_opt<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => iso(ms, s),
        None => s.serialize_none(),
    }
}

async fn files_of(db: &Db, column: &'static str, value: &str) -> Result<Vec<Value>, ApiError> {
    let sql = format!(
        "SELECT id, recording_id, producer_id, peer_user_id, kind, mode, path, sha256, bytes, mime, duration_ms, started_at, stopped_at, status, error \
         FROM recordings WHERE {column} = ? ORDER BY started_at"
    );
    let rows: Vec<FileRow> = sqlx::query_as(&sql).bind(value).fetch_all(db).await?;
    Ok(rows.iter().map(|r| serde_json::to_value(r).unwrap_or(Value::Null)).collect())
    // plain fields: cannot fail
}
