//! The SQLite database: one file in the data directory, WAL mode, migrations applied at start.
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

pub type Db = SqlitePool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("database file {path}: {source} ({})", crate::startup::io_hint(.source, "--data-dir"))]
    File { path: String, source: std::io::Error },
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Opens (creating if needed) `<data_dir>/atome.db` and applies pending migrations. The database
/// files are readable by the server's user only (0600).
pub async fn open(data_dir: &Path) -> Result<Db, DbError> {
    let path = data_dir.join("atome.db");
    let display = path.display().to_string();
    // SQLite creates files 0644 (less the umask) but gives its -wal and -shm files the mode of the
    // database file: create that one 0600 first, and tighten files an older version left open.
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| DbError::File { path: display.clone(), source })?;
    for file in ["atome.db", "atome.db-wal", "atome.db-shm"] {
        make_private(&data_dir.join(file)).map_err(|source| DbError::File { path: display.clone(), source })?;
    }
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|source| DbError::Open { path: display.clone(), source })?
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .map_err(|source| DbError::Open { path: display, source })?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Sets an existing file's mode to 0600 if others than its owner may use it.
fn make_private(path: &Path) -> std::io::Result<()> {
    let mode = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        tracing::info!(file = %path.display(), "database file was mode {mode:04o}: now 0600");
    }
    Ok(())
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Unix milliseconds as an RFC 3339 timestamp (UTC).
pub fn iso(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// A new random identifier (UUID v4, hyphenated).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
