//! One recorded file: a consumer of the producer on a plain transport, one FFmpeg process fed
//! plain RTP and an SDP on stdin, writing WebM (VP8) or Ogg (Opus); the finished file is named by
//! the SHA-256 of its content. Also what keeps FFmpeg processes from outliving the server.
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sfu::rtp_parameters::MediaKind;
use sfu::{ConsumerOptions, ProducerId, RouterId, TransportId};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::store::{self, Finished};
use crate::core::Core;

/// How long FFmpeg may take to open its RTP port, and to finish its file after SIGINT.
const FFMPEG_START: Duration = Duration::from_secs(5);
const FFMPEG_STOP: Duration = Duration::from_secs(15);
/// FFmpeg ends its input after this many seconds without a packet (`-listen_timeout`). The
/// engine sends the recorder an RTCP receiver report twice a second even while the producer is
/// paused (camera off, mic muted keep the file going), so silence means the server is gone:
/// FFmpeg then closes its file properly. A file normally ends with an RTCP BYE.
const SILENCE_ENDS_FILE_SECS: &str = "4";

/// Why a file failed, and the partial file kept, if any.
type Failure = (String, Option<PathBuf>);

/// Records one producer to one file, with its row.
pub struct FileJob {
    pub core: Core,
    pub engine: sfu::Engine,
    pub row_id: String,
    pub owner_user_id: String,
    pub producer: ProducerId,
    pub kind: MediaKind,
    pub router: RouterId,
}

impl FileJob {
    /// Records until `stopped` fires (or the producer or FFmpeg ends), then finishes the row.
    pub async fn run(self, stopped: oneshot::Receiver<()>) {
        let db = &self.core.db;
        let written = match self.record(stopped).await {
            Ok(finished) => store::mark_done(db, &self.row_id, &finished).await,
            Err((error, partial)) => {
                tracing::warn!(row = %self.row_id, "recording failed: {error}");
                store::mark_failed(db, &self.row_id, &error, partial.as_deref()).await
            }
        };
        if let Err(e) = written {
            tracing::error!(row = %self.row_id, "cannot update recording row: {e}");
        }
    }

    async fn record(&self, stopped: oneshot::Receiver<()>) -> Result<Finished, Failure> {
        let (subdir, ext, mime) = match self.kind {
            MediaKind::Video => ("video", "webm", "video/webm"),
            MediaKind::Audio => ("audio", "ogg", "audio/ogg"),
        };
        let config = &self.core.config;
        let dir = config.data_dir.join("users").join(&self.owner_user_id).join("media").join(subdir).join("recordings");
        tokio::fs::create_dir_all(&dir).await.map_err(|e| (format!("cannot create {}: {e}", dir.display()), None))?;
        let partial = dir.join(format!(".partial-{}.{ext}", self.row_id));
        store::link_partial(&self.core.db, &self.row_id, &partial)
            .await
            .map_err(|e| (format!("cannot record the file's path: {e}"), None))?;

        let port = free_port_pair().ok_or(("no free UDP port pair for FFmpeg".to_string(), None))?;
        let remote = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let transport = self.engine.create_plain_transport(self.router.clone(), remote).await.map_err(|e| (e.to_string(), None))?;
        let ran = self.feed_ffmpeg(&transport, port, &partial, stopped).await;
        close_transport(&self.engine, &transport).await;
        let line = ran?;

        let data = match tokio::fs::read(&partial).await {
            Ok(d) if !d.is_empty() => d,
            _ => return Err((format!("FFmpeg wrote no file: {line}"), None)),
        };
        let sha256 = hex::encode(Sha256::digest(&data));
        let path = dir.join(format!("{sha256}.{ext}"));
        tokio::fs::rename(&partial, &path).await.map_err(|e| (format!("cannot name the file: {e}"), Some(partial.clone())))?;
        let Some(duration_ms) = probe_duration_ms(&config.ffmpeg, &path).await else {
            return Err((format!("the file is not readable: {line}"), Some(path)));
        };
        Ok(Finished { path: path.display().to_string(), sha256, bytes: data.len() as u64, mime, duration_ms })
    }

    /// Consumes the producer on `transport` into a new FFmpeg until stopped, or until FFmpeg
    /// ends on its own (its input went silent: the producer is gone). Returns FFmpeg's last
    /// line; an error if it failed.
    async fn feed_ffmpeg(
        &self,
        transport: &TransportId,
        port: u16,
        partial: &Path,
        mut stopped: oneshot::Receiver<()>,
    ) -> Result<String, Failure> {
        let engine = &self.engine;
        let consumer = engine
            .consume(transport.clone(), self.producer.clone(), engine.rtp_capabilities().clone())
            .await
            .map_err(|e| (format!("cannot consume the producer: {e}"), None))?;
        let sdp = sdp(self.kind, port, &consumer).ok_or(("cannot describe the stream for FFmpeg".to_string(), None))?;
        let mut child = ffmpeg_command(&self.core.config.ffmpeg, self.kind, partial)
            .spawn()
            .map_err(|e| (format!("cannot start FFmpeg: {e}"), None))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(sdp.as_bytes()).await;
            // Closing stdin ends the SDP; FFmpeg then opens its RTP port.
        }
        let stderr = last_line_of_stderr(&mut child);

        // Send only once FFmpeg listens, then ask for a keyframe (resume does).
        let deadline = Instant::now() + FFMPEG_START;
        while !port_taken(port) {
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill().await;
                return Err((format!("FFmpeg did not start listening: {}", last_line(stderr).await), None));
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
            // Stop cleanly, so FFmpeg writes the file's trailer (SIGKILL would not): no more
            // media and an RTCP BYE on its RTCP port (the engine sends it as it closes the plain
            // transport; it ends FFmpeg's input even while no media flows), and SIGINT as well.
            close_transport(engine, transport).await;
            interrupt(&child);
            if tokio::time::timeout(FFMPEG_STOP, child.wait()).await.is_err() {
                let _ = child.kill().await;
                let line = last_line(stderr).await;
                return Err((format!("FFmpeg did not finish in time: {line}"), partial.exists().then(|| partial.to_path_buf())));
            }
        }
        let line = last_line(stderr).await;
        // On its own FFmpeg only ends well when its input went silent (producer gone).
        if ended_by_itself && !line.contains("timed out") {
            return Err((format!("FFmpeg died: {line}"), partial.exists().then(|| partial.to_path_buf())));
        }
        Ok(line)
    }
}

/// Closes the recorder's plain transport (and so its consumer); closing it twice is harmless.
async fn close_transport(engine: &sfu::Engine, transport: &TransportId) {
    if let Err(e) = engine.close_transport(transport.clone()).await {
        tracing::debug!(%transport, "close recording transport: {e}");
    }
}

/// The FFmpeg that copies the RTP described on its stdin into `partial`.
fn ffmpeg_command(ffmpeg: &Path, kind: MediaKind, partial: &Path) -> Command {
    let mut command = Command::new(ffmpeg);
    command
        .args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-protocol_whitelist", "pipe,udp,rtp"])
        // Probe at most 1 s of input (5 s by default): the file starts that much sooner.
        .args(["-analyzeduration", "1000000", "-probesize", "262144"])
        .args(["-listen_timeout", SILENCE_ENDS_FILE_SECS, "-f", "sdp", "-i", "pipe:0"])
        .args(["-map", "0", "-c", "copy"])
        // On disk every half second (clusters, pages, packets flushed): a crash loses little.
        .args(["-flush_packets", "1"])
        .args(match kind {
            MediaKind::Video => ["-cluster_time_limit", "500"],
            MediaKind::Audio => ["-page_duration", "500000"],
        })
        .arg("-y")
        .arg(partial)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    end_with_this_thread(&mut command);
    command
}

/// The SDP FFmpeg reads: the consumer's first codec on `port`.
fn sdp(kind: MediaKind, port: u16, consumer: &ConsumerOptions) -> Option<String> {
    let codec = consumer.rtp_parameters.codecs.first()?;
    let pt = codec.payload_type;
    let name = codec.mime_type.split('/').nth(1)?;
    let mut rtpmap = format!("{name}/{}", codec.clock_rate);
    if let Some(ch) = codec.channels {
        rtpmap.push_str(&format!("/{ch}"));
    }
    let kind = kind.as_str();
    Some(format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=atome recording\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m={kind} {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {rtpmap}\r\na=recvonly\r\n"
    ))
}

/// Keeps the last non-empty line FFmpeg writes on stderr.
fn last_line_of_stderr(child: &mut Child) -> Option<JoinHandle<String>> {
    child.stderr.take().map(|stderr| {
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
    })
}

async fn last_line(stderr: Option<JoinHandle<String>>) -> String {
    match stderr {
        Some(h) => h.await.unwrap_or_default(),
        None => String::new(),
    }
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

/// Whether `ffmpeg -version` runs.
pub fn available(ffmpeg: &Path) -> bool {
    std::process::Command::new(ffmpeg).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// FFmpeg gets SIGINT (and writes what it can) when the thread that spawned it ends: Linux's
/// parent-death signal fires on the spawning *thread*'s exit. Recorders spawn FFmpeg from
/// tokio's worker threads, which live as long as the runtime, that is the server (never from
/// the blocking pool, whose threads come and go).
fn end_with_this_thread(command: &mut Command) {
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
pub fn reap_leftovers(data_dir: &Path) -> usize {
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

fn interrupt(child: &Child) {
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
    let out = Command::new(ffprobe)
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1"])
        .arg(file)
        .output()
        .await
        .ok()?;
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((secs * 1000.0).round() as i64)
}
