//! TURN credentials for clients, by the TURN REST API scheme that coturn checks with
//! `use-auth-secret`: a secret shared with the TURN server, `username = "<expiry>:<user_id>"`
//! (expiry in Unix seconds) and `credential = base64(HMAC-SHA1(secret, username))`. The server
//! hands them out as `iceServers` in `roomJoined` and `iceRestarted`; the TURN server needs no
//! database of users and refuses a username whose expiry has passed.
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

use crate::config::Config;

/// Longest secret file read (a secret is a line of text; coturn's own limit is far below).
const MAX_SECRET_LEN: u64 = 4096;

/// The secret shared with the TURN server; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnSecret(Arc<str>);

impl fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TurnSecret(..)")
    }
}

impl FromStr for TurnSecret {
    type Err = String;
    fn from_str(s: &str) -> Result<TurnSecret, String> {
        if s.trim().is_empty() {
            return Err("the TURN secret is empty".into());
        }
        Ok(TurnSecret(s.into()))
    }
}

impl TurnSecret {
    /// Reads a secret file: its first line, without the line end. Refused: a file others than
    /// its owner and group may read, an empty one, or one longer than a secret can be.
    pub fn read(path: &Path) -> Result<TurnSecret, String> {
        let name = path.display();
        let meta = fs::metadata(path).map_err(|e| format!("TURN secret file {name}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("TURN secret file {name} is not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 {
            return Err(format!("TURN secret file {name} has mode {mode:04o}: other users may read it (chmod 640 {name})"));
        }
        if meta.len() > MAX_SECRET_LEN {
            return Err(format!("TURN secret file {name} holds {} bytes: a secret is one line of text", meta.len()));
        }
        let text = fs::read_to_string(path).map_err(|e| format!("TURN secret file {name}: {e}"))?;
        let line = text.lines().next().unwrap_or("").trim();
        line.parse().map_err(|e: String| format!("{e} (file {name})"))
    }
}

/// One entry of `iceServers`, as `RTCIceServer` and mediasoup-client take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// The TURN servers clients are told about and the secret their credentials are made with.
#[derive(Debug, Clone)]
pub struct Turn {
    urls: Vec<String>,
    secret: TurnSecret,
    ttl: Duration,
}

impl Turn {
    /// From the configuration: `None` when no TURN URL is configured. Reads the secret file.
    /// Errors say which flag to fix.
    pub fn from_config(config: &Config) -> Result<Option<Turn>, String> {
        check(config)?;
        if config.turn_urls.is_empty() {
            return Ok(None);
        }
        let secret = match (&config.turn_secret, &config.turn_secret_file) {
            (Some(secret), None) => secret.clone(),
            (None, Some(path)) => TurnSecret::read(path)?,
            // `check` refused every other combination.
            _ => return Err("give one of --turn-secret or --turn-secret-file".into()),
        };
        tracing::info!("TURN: clients get credentials for {} (valid {} s)", config.turn_urls.join(", "), config.turn_ttl);
        Ok(Some(Turn { urls: config.turn_urls.clone(), secret, ttl: Duration::from_secs(config.turn_ttl.into()) }))
    }

    /// The `iceServers` for `user_id`, valid for the configured lifetime from `now`.
    pub fn ice_servers(&self, user_id: &str, now: SystemTime) -> Vec<IceServer> {
        let expiry = (now + self.ttl).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let username = format!("{expiry}:{user_id}");
        let credential = credential(self.secret.0.as_bytes(), &username);
        vec![IceServer { urls: self.urls.clone(), username, credential }]
    }
}

/// `base64(HMAC-SHA1(secret, username))`: the password coturn expects for `username`.
pub fn credential(secret: &[u8], username: &str) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The TURN flags' rules that clap cannot express (the secret file itself is read later).
pub fn check(config: &Config) -> Result<(), String> {
    for url in &config.turn_urls {
        let scheme = url.split_once(':').map(|(s, rest)| (s, rest.trim()));
        match scheme {
            Some(("turn" | "turns", rest)) if !rest.is_empty() && !url.chars().any(char::is_whitespace) => {}
            _ => return Err(format!("--turn-urls: {url:?} is not a TURN URL (turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT])")),
        }
    }
    let secret = config.turn_secret.is_some() || config.turn_secret_file.is_some();
    if config.turn_secret.is_some() && config.turn_secret_file.is_some() {
        return Err("--turn-secret and --turn-secret-file are exclusive: give one".into());
    }
    if !config.turn_urls.is_empty() && !secret {
        return Err("--turn-urls needs the secret shared with the TURN server: --turn-secret-file (or --turn-secret)".into());
    }
    if config.turn_urls.is_empty() && secret {
        return Err("a TURN secret without --turn-urls: give the TURN server's URLs too".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config(args: &[&str]) -> Config {
        use clap::Parser;
        Config::try_parse_from(std::iter::once("atome").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn credential_matches_a_known_vector() {
        // printf %s "$user" | openssl dgst -sha1 -hmac north -binary | base64 (and Python's hmac).
        let user = "1700000000:0b9f1c6e-3d2a-4f5b-9c8d-7e6f5a4b3c2d";
        assert_eq!(credential(b"north", user), "GExRmA05KdDFsykmPXZah5X79bw=");
    }

    #[test]
    fn ice_servers_carry_expiry_user_and_credential() {
        let c = config(&["--turn-urls", "turn:198.18.0.1:3478?transport=udp,turns:turn.example.org:5349", "--turn-secret", "north"]);
        let turn = Turn::from_config(&c).unwrap().unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let servers = turn.ice_servers("u1", now);
        assert_eq!(servers.len(), 1);
        let s = &servers[0];
        assert_eq!(s.urls, ["turn:198.18.0.1:3478?transport=udp", "turns:turn.example.org:5349"]);
        assert_eq!(s.username, "1700086400:u1", "default lifetime: 24 h");
        assert_eq!(s.credential, credential(b"north", "1700086400:u1"));
        let v = serde_json::to_value(s).unwrap();
        assert_eq!(v["username"], "1700086400:u1");
        assert!(v.get("credential").is_some() && v.get("urls").is_some());
        let c = config(&["--turn-urls", "turn:h", "--turn-secret", "north", "--turn-ttl", "600"]);
        assert_eq!(Turn::from_config(&c).unwrap().unwrap().ice_servers("u1", now)[0].username, "1700000600:u1");
    }

    #[test]
    fn no_turn_urls_no_ice_servers() {
        assert!(Turn::from_config(&config(&[])).unwrap().is_none());
    }

    #[test]
    fn configuration_errors_say_what_to_fix() {
        let err = |args: &[&str]| Turn::from_config(&config(args)).unwrap_err();
        assert!(err(&["--turn-urls", "turn:h"]).contains("--turn-secret-file"));
        assert!(err(&["--turn-secret", "s"]).contains("without --turn-urls"));
        assert!(err(&["--turn-urls", "http://h", "--turn-secret", "s"]).contains("not a TURN URL"));
        assert!(err(&["--turn-urls", "turn:", "--turn-secret", "s"]).contains("not a TURN URL"));
        assert!(err(&["--turn-urls", "turn:h", "--turn-secret", "s", "--turn-secret-file", "/x"]).contains("exclusive"));
        assert!(err(&["--turn-urls", "turn:h", "--turn-secret-file", "/nonexistent/turn"]).contains("/nonexistent/turn"));
        use clap::Parser;
        assert!(Config::try_parse_from(["atome", "--turn-secret", " "]).is_err(), "empty secret");
        assert!(Config::try_parse_from(["atome", "--turn-ttl", "0"]).is_err(), "zero lifetime");
    }

    #[test]
    fn secret_file_first_line_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turn-secret");
        fs::write(&path, "north\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let file = path.to_str().unwrap();
        let turn = Turn::from_config(&config(&["--turn-urls", "turn:h", "--turn-secret-file", file])).unwrap().unwrap();
        let s = &turn.ice_servers("u", UNIX_EPOCH)[0];
        assert_eq!(s.credential, credential(b"north", &s.username), "the line end is not part of the secret");
        assert_eq!(format!("{:?}", turn.secret), "TurnSecret(..)");
        assert!(!format!("{turn:?}").contains("north"), "the secret is never printed");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(TurnSecret::read(&path).unwrap_err().contains("chmod 640"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "\n").unwrap();
        assert!(TurnSecret::read(&path).unwrap_err().contains("empty"));
    }
}
