//! Server-side recording, its own component: it follows the calls through their events
//! (opened, producer added or closed, closed) and records producers on request, one FFmpeg
//! process and one file per producer (audio and video of a peer are separate files: no A/V sync
//! problem inside a file, and a producer that ends finishes only its own file).
//!
//! One task owns what is being recorded; the HTTP handlers (`http.rs`) ask it through a command
//! channel, the calls tell it through their event queue. `store.rs` holds the SQL, `ffmpeg.rs`
//! the recording of one file.
mod ffmpeg;
mod http;
mod store;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use sfu::rtp_parameters::MediaKind;
use sfu::{ProducerId, RouterId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::events::{Happened, RoomEvent};
use crate::core::Core;
use crate::db::new_id;
use crate::http::ApiError;
use ffmpeg::FileJob;
pub use http::routes;
use store::NewFile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub enum Mode {
    #[serde(rename = "singleProducer")]
    SingleProducer,
    #[serde(rename = "perProducer")]
    PerProducer,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::SingleProducer => "singleProducer",
            Mode::PerProducer => "perProducer",
        }
    }
}

/// The recording component's handle, cheap to clone.
#[derive(Clone)]
pub struct Recorder(Arc<RecorderInner>);

pub struct RecorderInner {
    core: Core,
    commands: mpsc::Sender<Command>,
    /// FFmpeg runs on this server.
    available: bool,
}

/// The room a recording is of (checked by the handler: the caller owns it).
pub struct RoomRef {
    pub room_id: String,
    pub owner_user_id: String,
}

enum Command {
    Start {
        room: RoomRef,
        mode: Mode,
        producer_id: Option<String>,
        reply: oneshot::Sender<Result<(String, usize), ApiError>>,
    },
    /// The recording's file tasks, once told to stop; `None` if no such recording in that room.
    Stop {
        room_id: String,
        recording_id: String,
        reply: oneshot::Sender<Option<Vec<JoinHandle<()>>>>,
    },
}

impl Recorder {
    /// Before the media engine binds its ports: stops FFmpeg processes a previous run left
    /// (they hold ports and files) and marks their rows failed.
    pub async fn clean_up_after_last_run(core: &Core) {
        let data_dir = core.config.data_dir.clone();
        match tokio::task::spawn_blocking(move || ffmpeg::reap_leftovers(&data_dir)).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(n, "FFmpeg processes of an earlier run were stopped"),
            Err(e) => tracing::error!("looking for FFmpeg left by an earlier run: {e}"),
        }
        match store::mark_interrupted(&core.db).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(n, "recordings interrupted by the last stop marked failed (partial files kept)"),
            Err(e) => tracing::error!("cannot mark interrupted recordings: {e}"),
        }
    }

    /// Starts the component; it follows the calls through `events`.
    pub fn start(core: Core, engine: sfu::Engine, events: mpsc::UnboundedReceiver<RoomEvent>) -> Recorder {
        let available = ffmpeg::available(&core.config.ffmpeg);
        if !available {
            tracing::warn!(ffmpeg = %core.config.ffmpeg.display(), "FFmpeg cannot run: recording is unavailable");
        }
        let (commands, inbox) = mpsc::channel(16);
        let state = Recordings { core: core.clone(), engine, calls: HashMap::new(), active: HashMap::new() };
        tokio::spawn(state.run(events, inbox));
        Recorder(Arc::new(RecorderInner { core, commands, available }))
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.0.commands.send(make(reply)).await.ok()?;
        answer.await.ok()
    }
}

/// A call as the recorder knows it from its events.
struct Call {
    router: RouterId,
    /// producer -> (kind, peer_user_id), in the order they came.
    producers: Vec<(ProducerId, MediaKind, String)>,
}

struct FileRecorder {
    producer: ProducerId,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl FileRecorder {
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct Active {
    room: RoomRef,
    mode: Mode,
    files: Vec<FileRecorder>,
}

/// What the component's task owns.
struct Recordings {
    core: Core,
    engine: sfu::Engine,
    calls: HashMap<Arc<str>, Call>,
    /// Recordings in progress, by recording_id.
    active: HashMap<String, Active>,
}

impl Recordings {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<RoomEvent>, mut commands: mpsc::Receiver<Command>) {
        loop {
            // Events first: one a call sent before a client's request (a producer added before
            // `produced` was answered) is seen before that request.
            tokio::select! {
                biased;
                Some(event) = events.recv() => self.follow(event).await,
                Some(command) = commands.recv() => match command {
                    Command::Start { room, mode, producer_id, reply } => drop(reply.send(self.start(room, mode, producer_id).await)),
                    Command::Stop { room_id, recording_id, reply } => drop(reply.send(self.stop(&room_id, &recording_id))),
                },
                else => return,
            }
        }
    }

    async fn follow(&mut self, RoomEvent { room_id, what }: RoomEvent) {
        match what {
            Happened::Opened { router } => drop(self.calls.insert(room_id, Call { router, producers: Vec::new() })),
            Happened::ProducerAdded { producer, kind, peer_user_id } => {
                let Some(call) = self.calls.get_mut(&room_id) else { return };
                call.producers.push((producer.clone(), kind, peer_user_id.clone()));
                let router = call.router.clone();
                // `perProducer` recordings of the room record it too.
                let ids: Vec<String> = self
                    .active
                    .iter()
                    .filter(|(_, rec)| *rec.room.room_id == *room_id && rec.mode == Mode::PerProducer)
                    .map(|(id, _)| id.clone())
                    .collect();
                for recording_id in ids {
                    match self.start_file(&recording_id, &producer, kind, &peer_user_id, &router).await {
                        Ok(file) => self.add_file(&recording_id, file),
                        Err(e) => tracing::warn!(%recording_id, "cannot record new producer: {e}"),
                    }
                }
            }
            Happened::ProducerClosed { producer } => {
                if let Some(call) = self.calls.get_mut(&room_id) {
                    call.producers.retain(|(id, _, _)| *id != producer);
                }
                // Its recorders finish their files.
                for rec in self.active.values_mut() {
                    rec.files.iter_mut().filter(|f| f.producer == producer).for_each(FileRecorder::stop);
                }
            }
            Happened::Closed => drop(self.calls.remove(&room_id)),
        }
    }

    async fn start(&mut self, room: RoomRef, mode: Mode, producer_id: Option<String>) -> Result<(String, usize), ApiError> {
        let call = self
            .calls
            .get(room.room_id.as_str())
            .ok_or_else(|| ApiError::conflict("no_call", "nobody is in this room's call: nothing to record"))?;
        let router = call.router.clone();
        let producers: Vec<_> = match (mode, producer_id) {
            (Mode::SingleProducer, None) => return Err(ApiError::bad_request("invalid_body", "singleProducer needs a producer_id")),
            (Mode::SingleProducer, Some(wanted)) => {
                let one: Vec<_> = call.producers.iter().filter(|(id, _, _)| id.as_str() == wanted).cloned().collect();
                if one.is_empty() {
                    return Err(ApiError::not_found("no such producer in this room"));
                }
                one
            }
            (Mode::PerProducer, _) => call.producers.clone(),
        };
        let recording_id = new_id();
        self.active.insert(recording_id.clone(), Active { room, mode, files: Vec::new() });
        for (producer, kind, peer) in producers {
            match self.start_file(&recording_id, &producer, kind, &peer, &router).await {
                Ok(file) => self.add_file(&recording_id, file),
                Err(e) => {
                    // Nothing half-started is left running.
                    if let Some(mut rec) = self.active.remove(&recording_id) {
                        rec.files.iter_mut().for_each(FileRecorder::stop);
                    }
                    return Err(e);
                }
            }
        }
        let files = self.active.get(&recording_id).map_or(0, |rec| rec.files.len());
        Ok((recording_id, files))
    }

    fn add_file(&mut self, recording_id: &str, file: FileRecorder) {
        if let Some(rec) = self.active.get_mut(recording_id) {
            rec.files.push(file);
        }
    }

    fn stop(&mut self, room_id: &str, recording_id: &str) -> Option<Vec<JoinHandle<()>>> {
        if self.active.get(recording_id)?.room.room_id != room_id {
            return None;
        }
        let rec = self.active.remove(recording_id)?;
        Some(
            rec.files
                .into_iter()
                .map(|mut f| {
                    f.stop();
                    f.task
                })
                .collect(),
        )
    }

    /// Writes the `recording` row of one producer's file and spawns its recorder.
    async fn start_file(
        &self,
        recording_id: &str,
        producer: &ProducerId,
        kind: MediaKind,
        peer_user_id: &str,
        router: &RouterId,
    ) -> Result<FileRecorder, ApiError> {
        let rec = self.active.get(recording_id).ok_or_else(|| ApiError::Internal("recording vanished".into()))?;
        let row_id = store::insert(
            &self.core.db,
            &NewFile {
                recording_id,
                room_id: &rec.room.room_id,
                owner_user_id: &rec.room.owner_user_id,
                producer_id: producer.as_str(),
                peer_user_id,
                kind: kind.as_str(),
                mode: rec.mode,
            },
        )
        .await?;
        let job = FileJob {
            core: self.core.clone(),
            engine: self.engine.clone(),
            row_id,
            owner_user_id: rec.room.owner_user_id.clone(),
            producer: producer.clone(),
            kind,
            router: router.clone(),
        };
        let (stop, stopped) = oneshot::channel();
        // On a runtime worker thread, as FFmpeg's parent-death signal needs (ffmpeg.rs).
        let task = tokio::spawn(job.run(stopped));
        Ok(FileRecorder { producer: producer.clone(), stop: Some(stop), task })
    }
}
