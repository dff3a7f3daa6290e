//! The video-call plugin: the media engine's worker pool, one router per room in a call, and the
//! WebSocket signaling that mediasoup-client speaks (`GET /ws`).
pub mod messages;
pub mod recording;
pub mod registry;
pub mod session;
pub mod usage;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::core::Core;
use crate::http::ApiError;
use crate::plugins::Plugin;
use registry::CallRoom;

/// Largest WebSocket message accepted; a larger one closes the socket.
pub const WS_MESSAGE_LIMIT: usize = 64 * 1024;
/// Read and write buffers of a signaling socket; longer messages take several turns.
const WS_BUFFER: usize = 8 * 1024;

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
    /// Sockets and transports per user, against the per-user caps.
    usage: usage::Usage,
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
        let media = Media(Arc::new(MediaInner {
            recordings: recording::Recordings::default(),
            ffmpeg_ok,
            core,
            engine,
            rooms: tokio::sync::Mutex::new(HashMap::new()),
            next_peer: AtomicU64::new(1),
            usage: usage::Usage::default(),
        }));
        if let Some(events) = media.0.engine.take_events() {
            tokio::spawn(watch_engine(Arc::downgrade(&media.0), events));
        }
        media
    }

    /// A transport the engine closed on its own (silent, or closed by the peer): the peer keeps
    /// its place in the room, its producers are gone and everyone, itself included, hears it.
    async fn transport_lost(
        &self,
        transport: sfu::TransportId,
        producers: Vec<sfu::ProducerId>,
        consumers: Vec<sfu::ConsumerId>,
        reason: sfu::CloseReason,
    ) {
        {
            let mut rooms = self.0.rooms.lock().await;
            for (room_id, room) in rooms.iter_mut() {
                let Some(peer_id) = room.transport_owner(&transport) else { continue };
                if let Some(peer) = room.peers.get_mut(&peer_id) {
                    if peer.transports.remove(&transport).is_some() {
                        self.0.usage.release_transports(&peer.user_id, 1);
                    }
                    peer.consumers.retain(|c, _| !consumers.contains(c));
                }
                for producer in &producers {
                    room.producer_closed(producer, None);
                }
                tracing::info!(%room_id, peer = peer_id, %transport, ?reason, producers = producers.len(), "media transport lost");
                break;
            }
        }
        for producer in &producers {
            self.recording_producer_closed(producer).await;
        }
    }

    /// A media worker failed for good: the calls whose router lived on it are over. Their peers
    /// get `roomClosed {room_id, reason}` and may join again (a new router is placed on a worker
    /// that runs).
    async fn worker_lost(&self, worker: usize) {
        let lost: Vec<(String, CallRoom)> = {
            let mut rooms = self.0.rooms.lock().await;
            let ids: Vec<String> = rooms.iter().filter(|(_, r)| r.router.worker() == Some(worker)).map(|(id, _)| id.clone()).collect();
            ids.into_iter().filter_map(|id| rooms.remove(&id).map(|room| (id, room))).collect()
        };
        for (room_id, room) in lost {
            tracing::error!(%room_id, worker, peers = room.peers.len(), "media worker failed; call closed");
            room.notify_all(None, &json!({"type": "roomClosed", "room_id": room_id, "reason": "media_worker_failed"}));
            for peer in room.peers.values() {
                self.0.usage.release_transports(&peer.user_id, peer.transports.len());
                self.0.core.presence.leave(&room_id, &peer.user_id);
                for producer in peer.producers.keys() {
                    self.recording_producer_closed(producer).await;
                }
            }
        }
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

/// Passes the engine's own decisions on to the rooms until the engine stops. Holds the plugin
/// weakly: the engine (and so this stream) ends when the plugin is dropped.
async fn watch_engine(media: Weak<MediaInner>, mut events: tokio::sync::mpsc::UnboundedReceiver<sfu::EngineEvent>) {
    while let Some(event) = events.recv().await {
        let Some(inner) = media.upgrade() else { return };
        match event {
            sfu::EngineEvent::TransportClosed { transport, producers, consumers, reason } => {
                Media(inner).transport_lost(transport, producers, consumers, reason).await
            }
            sfu::EngineEvent::WorkerDied { worker } => Media(inner).worker_lost(worker).await,
        }
    }
}

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
        "media_workers": media.0.engine.workers(),
        "rooms": rooms,
        "peers": peers,
        "media": stats,
    }))
}
