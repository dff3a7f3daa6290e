//! What every plugin shares: configuration, database, join tokens and live counters.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::db::Db;
use crate::plugins::identity::tokens::{random_hex, sha256_hex};

#[derive(Clone)]
pub struct Core(Arc<CoreInner>);

pub struct CoreInner {
    pub config: Config,
    pub db: Db,
    pub join_tokens: JoinTokens,
    pub presence: Presence,
    /// The routers' rtpCapabilities (every router uses the configured codecs).
    pub rtp_capabilities: serde_json::Value,
}

impl std::ops::Deref for Core {
    type Target = CoreInner;
    fn deref(&self) -> &CoreInner {
        &self.0
    }
}

impl Core {
    pub fn new(config: Config, db: Db, rtp_capabilities: serde_json::Value) -> Core {
        Core(Arc::new(CoreInner { config, db, join_tokens: JoinTokens::default(), presence: Presence::default(), rtp_capabilities }))
    }
}

/// Who is in a call right now, per room: kept by the media plugin, read by rooms and `/health`.
#[derive(Default)]
pub struct Presence {
    rooms: Mutex<HashMap<String, Vec<Participant>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Participant {
    pub user_id: String,
    pub display_name: String,
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Participant>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn enter(&self, room_id: &str, participant: Participant) {
        let mut rooms = self.lock();
        let list = rooms.entry(room_id.to_string()).or_default();
        if !list.contains(&participant) {
            list.push(participant);
        }
    }

    pub fn leave(&self, room_id: &str, user_id: &str) {
        let mut rooms = self.lock();
        if let Some(list) = rooms.get_mut(room_id) {
            list.retain(|p| p.user_id != user_id);
            if list.is_empty() {
                rooms.remove(room_id);
            }
        }
    }

    pub fn participants(&self, room_id: &str) -> Vec<Participant> {
        self.lock().get(room_id).cloned().unwrap_or_default()
    }

    /// (rooms with someone in them, peers in all rooms)
    pub fn counts(&self) -> (usize, usize) {
        let rooms = self.lock();
        (rooms.len(), rooms.values().map(Vec::len).sum())
    }
}

/// Short-lived tokens bound to (user, room), issued by `POST /rooms/:id/join` and spent by the
/// WebSocket `joinRoom`. Kept in memory, hashed; they do not survive a restart (they live 2 minutes).
#[derive(Default)]
pub struct JoinTokens {
    // One small map behind one lock; touched twice per join, never on the media path.
    entries: Mutex<HashMap<String, JoinGrant>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGrant {
    pub user_id: String,
    pub room_id: String,
    expires: Instant,
}

pub const JOIN_TOKEN_TTL: Duration = Duration::from_secs(120);

impl JoinTokens {
    pub fn issue(&self, user_id: &str, room_id: &str) -> String {
        let token = format!("jt_{}", random_hex(24));
        let now = Instant::now();
        let grant = JoinGrant { user_id: user_id.into(), room_id: room_id.into(), expires: now + JOIN_TOKEN_TTL };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, g| g.expires > now);
        entries.insert(sha256_hex(&token), grant);
        token
    }

    /// Checks that `token` is valid for (user, room). It stays valid until it expires, so a
    /// client that reconnects its WebSocket can rejoin with it.
    pub fn check(&self, token: &str, user_id: &str, room_id: &str) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(&sha256_hex(token)).is_some_and(|g| g.expires > Instant::now() && g.user_id == user_id && g.room_id == room_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_token_is_bound_to_user_and_room() {
        let tokens = JoinTokens::default();
        let t = tokens.issue("u1", "r1");
        assert!(tokens.check(&t, "u1", "r1"));
        assert!(!tokens.check(&t, "u2", "r1"));
        assert!(!tokens.check(&t, "u1", "r2"));
        assert!(!tokens.check("jt_forged", "u1", "r1"));
    }
}
