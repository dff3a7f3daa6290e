//! The `recordings` table: one row per recorded file, written as the file starts, links its
//! partial file, and ends `done` (named by its SHA-256) or `failed` (partial file kept).
use std::path::Path;

use serde::Serialize;

use super::Mode;
use crate::db::{iso, new_id, now_ms, Db};

/// What a new row says about its file.
pub struct NewFile<'a> {
    pub recording_id: &'a str,
    pub room_id: &'a str,
    pub owner_user_id: &'a str,
    pub producer_id: &'a str,
    pub peer_user_id: &'a str,
    pub kind: &'a str,
    pub mode: Mode,
}

/// A finished file.
pub struct Finished {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub mime: &'static str,
    pub duration_ms: i64,
}

/// Writes the `recording` row of a file about to start; returns the row id.
pub async fn insert(db: &Db, f: &NewFile<'_>) -> Result<String, sqlx::Error> {
    let row_id = new_id();
    sqlx::query(
        "INSERT INTO recordings (id, recording_id, room_id, owner_user_id, producer_id, peer_user_id, kind, mode, started_at, status) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'recording')",
    )
    .bind(&row_id)
    .bind(f.recording_id)
    .bind(f.room_id)
    .bind(f.owner_user_id)
    .bind(f.producer_id)
    .bind(f.peer_user_id)
    .bind(f.kind)
    .bind(f.mode.as_str())
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(row_id)
}

/// The row names the partial file from the start: if the server dies, what FFmpeg wrote is
/// still linked (and kept) once the row is marked failed at the next start.
pub async fn link_partial(db: &Db, row_id: &str, partial: &Path) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE recordings SET path = ? WHERE id = ?").bind(partial.display().to_string()).bind(row_id).execute(db).await?;
    Ok(())
}

pub async fn mark_done(db: &Db, row_id: &str, f: &Finished) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE recordings SET status = 'done', path = ?, sha256 = ?, bytes = ?, mime = ?, duration_ms = ?, stopped_at = ? WHERE id = ?",
    )
    .bind(&f.path)
    .bind(&f.sha256)
    .bind(f.bytes as i64)
    .bind(f.mime)
    .bind(f.duration_ms)
    .bind(now_ms())
    .bind(row_id)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn mark_failed(db: &Db, row_id: &str, error: &str, partial: Option<&Path>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE recordings SET status = 'failed', error = ?, path = ?, stopped_at = ? WHERE id = ?")
        .bind(error)
        .bind(partial.map(|p| p.display().to_string()))
        .bind(now_ms())
        .bind(row_id)
        .execute(db)
        .await?;
    Ok(())
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

/// One `recordings` row as the API shows it (times as ISO 8601).
#[derive(sqlx::FromRow, Serialize)]
pub struct FileRow {
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
    #[serde(serialize_with = "iso_ms")]
    started_at: i64,
    #[serde(serialize_with = "iso_ms_opt")]
    stopped_at: Option<i64>,
    status: String,
    error: Option<String>,
}

fn iso_ms<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(*ms))
}

fn iso_ms_opt<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => iso_ms(ms, s),
        None => s.serialize_none(),
    }
}

/// Which rows to list.
pub enum Files<'a> {
    OfRecording(&'a str),
    OfRoom(&'a str),
}

pub async fn files(db: &Db, which: Files<'_>) -> Result<Vec<FileRow>, sqlx::Error> {
    let (column, value) = match which {
        Files::OfRecording(id) => ("recording_id", id),
        Files::OfRoom(id) => ("room_id", id),
    };
    let sql = format!(
        "SELECT id, recording_id, producer_id, peer_user_id, kind, mode, path, sha256, bytes, mime, duration_ms, started_at, stopped_at, status, error \
         FROM recordings WHERE {column} = ? ORDER BY started_at"
    );
    sqlx::query_as(&sql).bind(value).fetch_all(db).await
}
