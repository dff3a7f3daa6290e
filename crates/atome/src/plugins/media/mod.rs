//! The video-call plugin: the media engine's worker pool, one router per room in a call, and the
//! WebSocket signaling that mediasoup-client speaks (`GET /ws`).
pub mod messages;
pub mod recording;
pub mod registry;
pub mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::core::Core;
use crate::plugins::Plugin;
use registry::CallRoom;

/// Largest WebSocket message accepted; a larger one closes the socket.
pub const WS_MESSAGE_LIMIT: usize = 64 * 1024;
/// Read buffer of a signaling socket; longer messages are read in several turns.
const WS_READ_BUFFER: usize = 8 * 1024;

#[derive(Clone)]
pub struct Media(Arc<MediaInner>);

pub struct MediaInner {
    core: Core,
    engine: sfu::Engine,
    /// room_id -> the call in progress. Touched by signaling only, never by the media path.
    rooms: tokio::sync::Mutex<HashMap<String, CallRoom>>,
    next_peer: AtomicU64,
    recordings: recording::Recordings,
    ffmpeg_ok: bool,
}

impl axum::extract::FromRef<Media> for Core {
    fn from_ref(media: &Media) -> Core {
        media.0.core.clone()
    }
}

impl Media {
    pub fn new(core: Core, engine: sfu::Engine) -> Media {
        let ffmpeg_ok = recording::ffmpeg_available(&core.config.ffmpeg);
        if !ffmpeg_ok {
            tracing::warn!(ffmpeg = %core.config.ffmpeg.display(), "FFmpeg cannot run: recording is unavailable");
        }
        Media(Arc::new(MediaInner {
            recordings: recording::Recordings::default(),
            ffmpeg_ok,
            core,
            engine,
            rooms: tokio::sync::Mutex::new(HashMap::new()),
            next_peer: AtomicU64::new(1),
        }))
    }

    pub fn engine(&self) -> &sfu::Engine {
        &self.0.engine
    }

    fn next_peer_id(&self) -> u64 {
        self.0.next_peer.fetch_add(1, Ordering::Relaxed)
    }
}

impl Plugin for Media {
    fn name(&self) -> &'static str {
        "media"
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/ws", get(ws))
            .route("/health", get(health))
            .route("/rooms/{room_id}/record/start", post(recording::start))
            .route("/rooms/{room_id}/record/stop", post(recording::stop))
            .route("/rooms/{room_id}/recordings", get(recording::list))
            .with_state(self.clone())
    }
}

async fn ws(State(media): State<Media>, upgrade: WebSocketUpgrade) -> Response {
    // Signaling messages are small (a few KiB): tungstenite's default 128 KiB read buffer per
    // socket was the largest single cost per participant (BENCHMARKS.md, memory).
    upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_READ_BUFFER)
        .max_message_size(WS_MESSAGE_LIMIT)
        .max_frame_size(WS_MESSAGE_LIMIT)
        .on_upgrade(move |socket| session::run(socket, media))
}

async fn health(State(media): State<Media>) -> Json<Value> {
    let (rooms, peers) = {
        let calls = media.0.rooms.lock().await;
        (calls.len(), calls.values().map(|r| r.peers.len()).sum::<usize>())
    };
    let stats = media.0.engine.stats().await.ok();
    Json(json!({
        "success": true,
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "workers": media.0.engine.worker_count(),
        "rooms": rooms,
        "peers": peers,
        "media": stats,
    }))
}
