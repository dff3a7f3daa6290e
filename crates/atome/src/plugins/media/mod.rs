//! The video-call plugin: the media engine's worker pool, one owner task per call (room ->
//! router), the WebSocket signaling that mediasoup-client speaks (`GET /ws`), and recording.
mod directory;
pub mod error;
pub mod events;
pub mod messages;
pub mod recording;
pub mod room;
pub mod session;
pub mod usage;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Json;
use futures_util::future::BoxFuture;
use serde::Serialize;
use sfu::rtp_parameters::RtpCapabilities;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Limits;
use crate::core::Core;
use crate::http::ApiError;
use crate::plugins::rooms::{Calls, Participant};
use crate::plugins::Plugin;
use crate::turn::{IceServer, Turn};
use directory::Directory;
use events::RoomEvents;

/// Largest WebSocket message accepted; a larger one closes the socket.
pub const WS_MESSAGE_LIMIT: usize = 64 * 1024;
/// Read and write buffers of a signaling socket; longer messages take several turns.
const WS_BUFFER: usize = 8 * 1024;

#[derive(Clone)]
pub struct Media(Arc<MediaInner>);

pub struct MediaInner {
    core: Core,
    shared: Arc<Shared>,
    /// room_id -> the call in progress.
    calls: Directory,
    next_peer: AtomicU64,
    recorder: recording::Recorder,
}

/// What every call and session of the plugin uses: immutable, or counters that are each
/// updated in one step.
pub struct Shared {
    pub engine: sfu::Engine,
    pub limits: Limits,
    /// Sockets and transports per user, against the per-user caps.
    pub usage: usage::Usage,
    /// Where calls announce producers and their own end.
    pub events: RoomEvents,
    /// Peers in all calls, for `/health`.
    pub peers: AtomicUsize,
    /// TURN servers and their secret, when configured.
    pub turn: Option<Turn>,
}

impl Shared {
    /// The `iceServers` for `user_id` (none without TURN), with credentials valid from now.
    pub fn ice_servers(&self, user_id: &str) -> Vec<IceServer> {
        self.turn.as_ref().map(|t| t.ice_servers(user_id, std::time::SystemTime::now())).unwrap_or_default()
    }
}

impl axum::extract::FromRef<Media> for Core {
    fn from_ref(media: &Media) -> Core {
        media.0.core.clone()
    }
}

impl Media {
    /// Starts the media engine (one worker thread per configured core), the recording
    /// component and the plugin.
    pub async fn start(core: Core, turn: Option<Turn>) -> Result<Media, sfu::StartError> {
        // FFmpeg processes left by a previous run hold ports the engine may want.
        recording::Recorder::clean_up_after_last_run(&core).await;
        let config = &core.config;
        let engine = sfu::Engine::start(sfu::EngineConfig {
            workers: config.worker_count(),
            listen_ip: config.rtc_listen_ip,
            announced_ip: config.announced_ip(),
            base_port: config.rtc_port,
            media_codecs: sfu::ortc::default_media_codecs(),
            nack_history: Duration::from_millis(config.nack_history_ms.into()),
            idle_timeout: Duration::from_secs(config.rtc_idle_seconds.into()),
            tcp: config.rtc_tcp,
            downlink_bwe: config.rtc_downlink_bwe,
        })?;
        let (to_recorder, room_events) = tokio::sync::mpsc::unbounded_channel();
        let recorder = recording::Recorder::start(core.clone(), engine.clone(), room_events);
        let shared = Shared {
            engine: engine.clone(),
            limits: config.limits.clone(),
            usage: usage::Usage::default(),
            events: RoomEvents::new(vec![to_recorder]),
            peers: AtomicUsize::new(0),
            turn,
        };
        let media = Media(Arc::new(MediaInner {
            core,
            shared: Arc::new(shared),
            calls: Directory::default(),
            next_peer: AtomicU64::new(1),
            recorder,
        }));
        if let Some(events) = engine.take_events() {
            tokio::spawn(directory::watch_engine(Arc::downgrade(&media.0), events));
        }
        Ok(media)
    }

    pub fn engine(&self) -> &sfu::Engine {
        &self.0.shared.engine
    }

    /// Calls in progress (rooms with a router).
    pub fn rooms(&self) -> usize {
        self.0.calls.count()
    }

    /// Peers in all calls.
    pub fn peers(&self) -> usize {
        self.0.shared.peers.load(Ordering::Relaxed)
    }

    /// Each peer's user id and WebRTC transports, over all calls (a user in two calls is
    /// listed twice).
    pub async fn peer_transports(&self) -> Vec<(String, Vec<sfu::TransportId>)> {
        let mut out = Vec::new();
        for room in self.0.calls.all() {
            out.extend(room.peer_transports().await);
        }
        out
    }

    /// The data directory (recordings are under it).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.0.core.config.data_dir
    }

    fn next_peer_id(&self) -> u64 {
        self.0.next_peer.fetch_add(1, Ordering::Relaxed)
    }
}

impl Plugin for Media {
    fn name(&self) -> &'static str {
        "media"
    }

    fn router(&self) -> OpenApiRouter {
        OpenApiRouter::new()
            .routes(routes!(ws))
            .routes(routes!(health))
            .with_state(self.clone())
            .merge(recording::routes(self.0.recorder.clone()))
    }
}

/// What the rooms plugin asks of calls.
impl Calls for Media {
    fn rtp_capabilities(&self) -> &RtpCapabilities {
        self.engine().rtp_capabilities()
    }

    fn participants(&self, room_id: &str) -> BoxFuture<'static, Vec<Participant>> {
        let call = self.0.calls.get(room_id);
        Box::pin(async move {
            match call {
                Some(call) => call.participants().await,
                None => Vec::new(),
            }
        })
    }
}

/// The signaling WebSocket (mediasoup-client's protocol, docs/protocol.md): upgrade, then
/// authenticate with `{"type": "auth", "token"}` within 10 s; every message is JSON with a `type`
/// and an optional `requestId` echoed in the answer.
#[utoipa::path(get, path = "/ws", tag = "media", responses((status = 101, description = "Switching to the WebSocket protocol"), (status = 400, description = "`websocket_upgrade_required`: not a WebSocket handshake")))]
async fn ws(State(media): State<Media>, upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> Response {
    // Not a WebSocket handshake (a plain GET, a wrong version): our error shape, not axum's text.
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let message = format!("GET /ws must be a WebSocket upgrade: {}", rejection.body_text());
            return ApiError::bad_request("websocket_upgrade_required", message).into_response();
        }
    };
    // Signaling messages are small (a few KiB): tungstenite's default 128 KiB read buffer per
    // socket was the largest single cost per participant (BENCHMARKS.md, memory).
    upgrade
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .max_message_size(WS_MESSAGE_LIMIT)
        .max_frame_size(WS_MESSAGE_LIMIT)
        .on_upgrade(move |socket| session::run(socket, media))
}

#[derive(Serialize)]
struct Health {
    success: bool,
    status: &'static str,
    version: &'static str,
    workers: usize,
    media_workers: Vec<sfu::WorkerInfo>,
    rooms: usize,
    peers: usize,
    media: Option<sfu::EngineStats>,
}

/// Liveness and load: `{status, version, workers, media_workers: [{index, state, routers, addr}], rooms, peers, media: {routers, transports, producers, consumers, packets_in, ...}}` (no authentication).
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "The server is up; figures of its media engine")))]
async fn health(State(media): State<Media>) -> Json<Health> {
    let engine = media.engine();
    Json(Health {
        success: true,
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        workers: engine.worker_count(),
        media_workers: engine.workers(),
        rooms: media.0.calls.count(),
        peers: media.0.shared.peers.load(Ordering::Relaxed),
        media: engine.stats().await.ok(),
    })
}
