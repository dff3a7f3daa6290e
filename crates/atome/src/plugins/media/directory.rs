//! The calls in progress, by room id: a handle to each call's owner task. Read when a peer joins,
//! by `/health`, by the rooms plugin and by the engine's rare events; a signaling message in a
//! call goes straight to its room through the handle its session keeps, never through here.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::error::SignalError;
use super::room::RoomHandle;
use super::{MediaInner, Shared};

#[derive(Default)]
pub struct Directory {
    // A call that ended is closed in place and forgotten at the next opening.
    rooms: Mutex<HashMap<String, RoomHandle>>,
}

impl Directory {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, RoomHandle>> {
        // Poisoned only if a holder panicked between two map operations: the map is still whole.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The call in progress in `room_id`, if any.
    pub fn get(&self, room_id: &str) -> Option<RoomHandle> {
        self.lock().get(room_id).filter(|room| !room.is_closed()).cloned()
    }

    /// The call in `room_id`, opened on a new router if there is none.
    pub async fn open(&self, room_id: &str, shared: &Arc<Shared>) -> Result<RoomHandle, SignalError> {
        if let Some(room) = self.get(room_id) {
            return Ok(room);
        }
        let router = shared.engine.create_router().await?;
        let fresh = RoomHandle::spawn(room_id, router.clone(), shared.clone());
        let mut rooms = self.lock();
        rooms.retain(|_, room| !room.is_closed());
        let room = rooms.entry(room_id.to_string()).or_insert_with(|| {
            tracing::info!(%room_id, %router, "router created");
            fresh.clone()
        });
        // Another joiner opened the call first: ours, never joined, closes its router once
        // `fresh` is dropped.
        Ok(room.clone())
    }

    /// The calls an engine event concerns: the one on its router, or every call on a worker.
    fn concerned(&self, event: &sfu::EngineEvent) -> Vec<RoomHandle> {
        let rooms = self.lock();
        let on = |room: &&RoomHandle| match event {
            sfu::EngineEvent::TransportClosed { router, .. }
            | sfu::EngineEvent::ProducerScore { router, .. }
            | sfu::EngineEvent::ConsumerLayersChanged { router, .. }
            | sfu::EngineEvent::ConsumerScore { router, .. } => room.router() == router,
            sfu::EngineEvent::WorkerDied { worker } => room.router().worker() == Some(*worker),
        };
        rooms.values().filter(on).cloned().collect()
    }

    /// Every call in progress.
    pub fn all(&self) -> Vec<RoomHandle> {
        self.lock().values().filter(|room| !room.is_closed()).cloned().collect()
    }

    /// Calls in progress.
    pub fn count(&self) -> usize {
        self.lock().values().filter(|room| !room.is_closed()).count()
    }
}

/// Passes the engine's own decisions on to the calls until the engine stops: a lost transport
/// to the call on its router, a failed worker to every call on it. Holds the plugin weakly: the
/// engine (and so this stream) ends when the plugin is dropped.
pub async fn watch_engine(media: Weak<MediaInner>, mut events: tokio::sync::mpsc::UnboundedReceiver<sfu::EngineEvent>) {
    while let Some(event) = events.recv().await {
        let Some(media) = media.upgrade() else { return };
        for room in media.calls.concerned(&event) {
            room.engine_event(event.clone()).await;
        }
    }
}
