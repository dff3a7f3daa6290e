//! `POST /rooms/:room_id/record/start`, `POST /rooms/:room_id/record/stop` and
//! `GET /rooms/:room_id/recordings`: the room's owner only.
use axum::extract::{FromRef, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, FileRow, Files};
use super::{Command, Mode, Recorder, RoomRef};
use crate::core::Core;
use crate::http::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::plugins::identity::AuthUser;
use crate::plugins::rooms::visible_room;

impl FromRef<Recorder> for Core {
    fn from_ref(recorder: &Recorder) -> Core {
        recorder.0.core.clone()
    }
}

pub fn routes(recorder: Recorder) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(start)).routes(routes!(stop)).routes(routes!(list)).with_state(recorder)
}

/// The room if `auth` owns it: 404 if they cannot see it, 403 if they only may join it.
async fn owned_room(recorder: &Recorder, room_id: &str, auth: &AuthUser) -> Result<RoomRef, ApiError> {
    let room = visible_room(&recorder.0.core.db, room_id, &auth.user).await?;
    if room.owner_user_id != auth.user.user_id {
        return Err(ApiError::forbidden("not_owner", "only the room's owner may record it"));
    }
    Ok(RoomRef { room_id: room.room_id, owner_user_id: room.owner_user_id })
}

/// The component's task is gone: only when the server is stopping.
fn stopping() -> ApiError {
    ApiError::Internal("the recorder has stopped".into())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StartBody {
    mode: Mode,
    producer_id: Option<String>,
}

#[derive(Serialize)]
struct Started {
    success: bool,
    recording_id: String,
    mode: &'static str,
    producers: usize,
}

/// Starts recording the room's call with FFmpeg (owner only).
#[utoipa::path(post, path = "/rooms/{room_id}/record/start", operation_id = "start_recording", tag = "recording", request_body = StartBody, params(("room_id" = String, Path, description = "The room's id")), responses((status = 200, description = "`{recording_id, mode, producers}`"), (status = 400, description = "Invalid input"), (status = 401, description = "Missing, invalid or expired token"), (status = 403, description = "Not the owner"), (status = 404, description = "No such room"), (status = 503, description = "Recording unavailable (no FFmpeg)")), security(("bearer" = [])))]
async fn start(
    State(recorder): State<Recorder>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<String>,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<Json<Started>> {
    let room = owned_room(&recorder, &room_id, &auth).await?;
    if !recorder.0.available {
        let ffmpeg = recorder.0.core.config.ffmpeg.display();
        let message = format!("recording needs FFmpeg, and {ffmpeg} cannot run on this server");
        return Err(ApiError::Unavailable { code: "recording_unavailable", message });
    }
    let (mode, producer_id) = (body.mode, body.producer_id);
    let room_id = room.room_id.clone();
    let started = recorder.ask(|reply| Command::Start { room, mode, producer_id, reply }).await.ok_or_else(stopping)?;
    let (recording_id, files) = started?;
    tracing::info!(%recording_id, %room_id, files, "recording started");
    Ok(Json(Started { success: true, recording_id, mode: mode.as_str(), producers: files }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StopBody {
    recording_id: String,
}

#[derive(Serialize)]
struct Stopped {
    success: bool,
    recording_id: String,
    files: Vec<FileRow>,
}

/// Stops a recording (owner only).
#[utoipa::path(post, path = "/rooms/{room_id}/record/stop", operation_id = "stop_recording", tag = "recording", request_body = StopBody, params(("room_id" = String, Path, description = "The room's id")), responses((status = 200, description = "`{recording_id, files}`"), (status = 400, description = "Invalid input"), (status = 401, description = "Missing, invalid or expired token"), (status = 403, description = "Not the owner"), (status = 404, description = "No such room or recording")), security(("bearer" = [])))]
async fn stop(
    State(recorder): State<Recorder>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<String>,
    ApiJson(body): ApiJson<StopBody>,
) -> ApiResult<Json<Stopped>> {
    let room = owned_room(&recorder, &room_id, &auth).await?;
    let recording_id = body.recording_id;
    let id = recording_id.clone();
    let tasks = recorder.ask(|reply| Command::Stop { room_id: room.room_id, recording_id: id, reply }).await.ok_or_else(stopping)?;
    let tasks = tasks.ok_or_else(|| ApiError::not_found("no recording in progress with that id in this room"))?;
    // Each file task ends once FFmpeg has closed its file and its row says how it went.
    for task in tasks {
        let _ = task.await;
    }
    let files = store::files(&recorder.0.core.db, Files::OfRecording(&recording_id)).await?;
    Ok(Json(Stopped { success: true, recording_id, files }))
}

#[derive(Serialize)]
struct Listed {
    success: bool,
    recordings: Vec<FileRow>,
}

/// The room's recordings and their files (owner only).
#[utoipa::path(get, path = "/rooms/{room_id}/recordings", operation_id = "list_recordings", tag = "recording", params(("room_id" = String, Path, description = "The room's id")), responses((status = 200, description = "`{recordings: [...]}`"), (status = 401, description = "Missing, invalid or expired token"), (status = 403, description = "Not the owner"), (status = 404, description = "No such room")), security(("bearer" = [])))]
async fn list(State(recorder): State<Recorder>, auth: AuthUser, ApiPath(room_id): ApiPath<String>) -> ApiResult<Json<Listed>> {
    let room = owned_room(&recorder, &room_id, &auth).await?;
    let recordings = store::files(&recorder.0.core.db, Files::OfRoom(&room.room_id)).await?;
    Ok(Json(Listed { success: true, recordings }))
}
