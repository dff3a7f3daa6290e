//! What the server tells its operator at start: where the web client and the data live, and,
//! when it cannot start, which flag changes what failed.
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Where the web client is served from, and why: the folder, or every place looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebDir {
    Found {
        dir: PathBuf,
        how: &'static str,
    },
    /// `--web-dir` names a folder without an `index.html`.
    Missing {
        dir: PathBuf,
    },
    /// No `--web-dir`, and no built client in any of these places.
    NotFound {
        tried: Vec<PathBuf>,
    },
}

/// Finds the built web client: `--web-dir` if given; else `web/dist` under the working
/// directory (a checkout), `../web` and `web` beside the binary (an install: `/opt/atome/bin/atome`
/// serves `/opt/atome/web`), and the checkout the binary was built from (`cargo run` from any
/// directory, whatever the target folder).
pub fn find_web_dir(config: &Config, exe: Option<&Path>) -> WebDir {
    if let Some(dir) = &config.web_dir {
        return if has_index(dir) { WebDir::Found { dir: dir.clone(), how: "--web-dir" } } else { WebDir::Missing { dir: dir.clone() } };
    }
    let mut candidates: Vec<(PathBuf, &'static str)> = vec![(PathBuf::from("web/dist"), "the working directory")];
    if let Some(bin_dir) = exe.and_then(Path::parent) {
        candidates.push((bin_dir.join("../web"), "beside the binary"));
        candidates.push((bin_dir.join("web"), "beside the binary"));
    }
    candidates.push((Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist"), "the source checkout the binary was built from"));
    for (dir, how) in &candidates {
        if has_index(dir) {
            let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
            return WebDir::Found { dir, how };
        }
    }
    WebDir::NotFound { tried: candidates.into_iter().map(|(d, _)| absolute(&d)).collect() }
}

fn has_index(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl WebDir {
    pub fn dir(&self) -> Option<&Path> {
        match self {
            WebDir::Found { dir, .. } => Some(dir),
            _ => None,
        }
    }

    /// One log line: where the client is served from, or why it is not (then `GET /` is 404).
    pub fn log(&self) {
        match self {
            WebDir::Found { dir, how } => tracing::info!("web client: serving {} ({how})", dir.display()),
            WebDir::Missing { dir } => tracing::warn!(
                "web client NOT served: --web-dir {} has no index.html (build it: cd web && npm ci && npm run build); GET / answers 404",
                dir.display()
            ),
            WebDir::NotFound { tried } => {
                let tried: Vec<String> = tried.iter().map(|d| d.display().to_string()).collect();
                tracing::warn!(
                    "web client NOT served: no built client (index.html) in {}; build it (cd web && npm ci && npm run build) or give --web-dir; GET / answers 404",
                    tried.join(", ")
                )
            }
        }
    }
}

/// The start's other facts an operator looks for first: the data folder and dev login.
pub fn log_config(config: &Config) {
    tracing::info!("data folder: {} (database, secret, recordings; --data-dir)", absolute(&config.data_dir).display());
    if config.dev_auth {
        tracing::warn!("dev login is ON (--dev-auth): anyone who can reach this server logs in as any number; for development only");
    }
}

/// Why an I/O error at start happened, in words, and the flag that changes it: appended to the
/// OS's own message.
pub fn io_hint(e: &std::io::Error, flag: &str) -> String {
    match e.kind() {
        ErrorKind::AddrInUse => format!("another program (or another atome) already uses it: stop it, or choose another with {flag}"),
        ErrorKind::AddrNotAvailable => format!("no interface of this machine has that address: choose another with {flag}"),
        ErrorKind::PermissionDenied if flag == "--data-dir" => {
            format!("permission denied: this user cannot write there; choose a folder it owns with {flag}, or fix the owner")
        }
        ErrorKind::PermissionDenied => {
            format!("permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE; choose another with {flag}")
        }
        ErrorKind::ReadOnlyFilesystem => format!("the file system is read-only: choose a writable folder with {flag}"),
        ErrorKind::NotADirectory => format!("a file is in the way of the folder: choose another with {flag}"),
        ErrorKind::StorageFull => format!("the disk is full: free some space or choose another folder with {flag}"),
        _ => format!("see {flag}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_flag_and_the_cause() {
        let e = |k| std::io::Error::from(k);
        assert!(io_hint(&e(ErrorKind::AddrInUse), "--listen").contains("--listen"));
        let h = io_hint(&e(ErrorKind::PermissionDenied), "--data-dir");
        assert!(h.contains("permission") && h.contains("--data-dir"), "{h}");
        let h = io_hint(&e(ErrorKind::ReadOnlyFilesystem), "--data-dir");
        assert!(h.contains("read-only") && h.contains("--data-dir"), "{h}");
        assert!(io_hint(&e(ErrorKind::PermissionDenied), "--listen").contains("1024"));
    }

    #[test]
    fn a_web_dir_without_index_is_missing_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path().join("data"));
        config.web_dir = Some(dir.path().to_path_buf());
        assert_eq!(find_web_dir(&config, None), WebDir::Missing { dir: dir.path().to_path_buf() });
        std::fs::write(dir.path().join("index.html"), "<!doctype html>").unwrap();
        assert_eq!(find_web_dir(&config, None).dir(), Some(dir.path()));
    }
}
