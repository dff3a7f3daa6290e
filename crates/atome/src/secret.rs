//! The server secret: 32 random bytes in a file outside the database. It keys the hashes of
//! one-time codes, so a copy of the database alone does not give the codes back.
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const SECRET_LEN: usize = 32;

/// `n` random bytes from the operating system, as lowercase hex (tokens, ids of secrets).
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // The OS random source is always available on supported platforms; a failure is fatal anyway.
    getrandom::fill(&mut buf).expect("operating system random source");
    hex::encode(buf)
}

/// SHA-256 of `data` as lowercase hex: how bearer and join tokens are stored.
pub fn sha256_hex(data: &str) -> String {
    hex::encode(Sha256::digest(data.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret file {}: {source} ({})", .path.display(), crate::startup::io_hint(.source, "--secret-file or --data-dir"))]
    Io { path: PathBuf, source: std::io::Error },
    #[error("secret file {} is not a regular file", .path.display())]
    NotAFile { path: PathBuf },
    #[error("secret file {} has mode {mode:04o}: only its owner may read it (chmod 600 {})", .path.display(), .path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "secret file {} holds {len} bytes instead of {SECRET_LEN}: restore the right file, or delete it to \
         have a new one generated (one-time codes in flight then stop working; logins are kept)",
        .path.display()
    )]
    Length { path: PathBuf, len: u64 },
}

/// The secret's bytes; never printed.
#[derive(Clone)]
pub struct ServerSecret(Arc<[u8; SECRET_LEN]>);

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

impl ServerSecret {
    /// Reads the secret at `path`, or creates it (mode 0600, random bytes) if there is no file.
    /// Refuses a file that others than its owner may read, or of the wrong length.
    pub fn load_or_create(path: &Path) -> Result<ServerSecret, SecretError> {
        let io = |source| SecretError::Io { path: path.to_path_buf(), source };
        match fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; SECRET_LEN];
                getrandom::fill(&mut bytes).map_err(|e| io(std::io::Error::other(e.to_string())))?;
                match Self::create(path, &bytes) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "generated the server secret");
                        return Ok(ServerSecret(Arc::new(bytes)));
                    }
                    // Another process created it first: read theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io(e)),
                }
            }
            Err(e) => return Err(io(e)),
        }
        let meta = fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(SecretError::NotAFile { path: path.to_path_buf() });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SecretError::Permissions { path: path.to_path_buf(), mode });
        }
        let mut content = Vec::with_capacity(SECRET_LEN);
        fs::File::open(path).map_err(io)?.take(SECRET_LEN as u64 + 1).read_to_end(&mut content).map_err(io)?;
        let bytes: [u8; SECRET_LEN] = content.try_into().map_err(|_| SecretError::Length { path: path.to_path_buf(), len: meta.len() })?;
        Ok(ServerSecret(Arc::new(bytes)))
    }

    /// Writes a new secret file; fails with `AlreadyExists` if there is one.
    fn create(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        if written.is_err() {
            let _ = fs::remove_file(path);
        }
        written
    }

    /// HMAC-SHA256 of `data` keyed with the secret, as lowercase hex.
    pub fn hmac_hex(&self, data: &[u8]) -> String {
        // HMAC takes keys of any length; ours is always 32 bytes.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0[..]).expect("HMAC accepts any key length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let a = ServerSecret::load_or_create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path).unwrap().len(), SECRET_LEN);
        let b = ServerSecret::load_or_create(&path).unwrap();
        assert_eq!(a.hmac_hex(b"x"), b.hmac_hex(b"x"));
        assert_eq!(format!("{a:?}"), "ServerSecret(..)");
    }

    #[test]
    fn hmac_sha256_as_python_computes_it() {
        // hmac.new(bytes([7] * 32), b"+33612345678:123456", hashlib.sha256).hexdigest()
        let secret = ServerSecret(Arc::new([7u8; SECRET_LEN]));
        assert_eq!(secret.hmac_hex(b"+33612345678:123456"), "cd28b38c0a5df6851a22ec7e3c260a2e9f598deb90c3a1de58b6f567b26e10e0");
    }
}
