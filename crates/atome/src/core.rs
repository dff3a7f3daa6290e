//! What every plugin shares: configuration, database and join tokens. No plugin's own state.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::db::Db;
use crate::secret::{random_hex, sha256_hex};

#[derive(Clone)]
pub struct Core(Arc<CoreInner>);

pub struct CoreInner {
    pub config: Config,
    pub db: Db,
    pub join_tokens: JoinTokens,
}

impl std::ops::Deref for Core {
    type Target = CoreInner;
    fn deref(&self) -> &CoreInner {
        &self.0
    }
}

impl Core {
    pub fn new(config: Config, db: Db) -> Core {
        Core(Arc::new(CoreInner { config, db, join_tokens: JoinTokens::default() }))
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
