//! The world of the signaling fuzz target (`fuzz/fuzz_targets/signaling.rs`; cargo feature
//! `fuzzing`, never in a release build): the real server on port 0 with its SQLite file in a
//! temporary directory, two connected users, a room both may join, and sessions driven frame by
//! frame through the same code a WebSocket runs ([`Driven`]). Not an API.
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu::rtp_parameters::RtpCapabilities;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::plugins::media::session::Driven;
use crate::plugins::media::Media;
use crate::{App, Config};

pub const PHONE_A: &str = "+33611111111";
pub const PHONE_B: &str = "+33622222222";

/// One user of the world.
pub struct User {
    pub token: String,
    pub user_id: String,
}

pub struct World {
    pub a: User,
    pub b: User,
    pub room_id: String,
    media: Media,
    core: crate::core::Core,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    dir: PathBuf,
    /// The join tokens handed out, per user (A, B), and when: see [`World::join_token`].
    join_tokens: Mutex<[Option<(String, Instant)>; 2]>,
}

/// A join token is handed out again until it is this old (half its lifetime: an input never
/// outlives the rest).
const JOIN_TOKEN_REUSE: Duration = Duration::from_secs(crate::core::JOIN_TOKEN_TTL.as_secs() / 2);

impl World {
    /// Starts the server in a fresh directory under the system's temporary directory and sets
    /// up the users and the room over HTTP, as a client would.
    pub async fn build() -> Result<World, String> {
        let dir = std::env::temp_dir().join(format!("atome-fuzz-signaling-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config::for_tests(dir.clone());
        config.workers = Some(1);
        config.rtc_tcp = false;
        // Every input is a new socket of the same two users: no cap may stop the fuzzer.
        config.limits.max_sockets_per_user = 64;
        let app = App::build(config).await.map_err(|e| e.to_string())?;
        let base = format!("http://{}", app.local_addr());
        let media = app.media().clone();
        let core = app.core().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = app
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
        });
        let http = reqwest::Client::new();
        let post = |path: &str, token: Option<&str>, body: Value| {
            let mut req = http.post(format!("{base}{path}")).json(&body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            async move {
                let res = req.send().await.map_err(|e| e.to_string())?;
                let status = res.status();
                let body: Value = res.json().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("{status}: {body}"));
                }
                Ok::<Value, String>(body)
            }
        };
        let login = |phone: &'static str| {
            let reply = post("/auth/dev-login", None, json!({"phone_e164": phone, "display_name": "fuzz"}));
            async move {
                let v = reply.await?;
                let field = |v: &Value| v.as_str().map(String::from).ok_or_else(|| format!("dev-login: {v}"));
                Ok::<User, String>(User { token: field(&v["token"])?, user_id: field(&v["user"]["user_id"])? })
            }
        };
        let a = login(PHONE_A).await?;
        let b = login(PHONE_B).await?;
        let request = post("/contacts/request", Some(&a.token), json!({"to_phone_e164": PHONE_B})).await?;
        post("/contacts/respond", Some(&b.token), json!({"request_id": request["request_id"], "decision": "accepted"})).await?;
        let room = post("/rooms", Some(&a.token), json!({"name": "fuzz"})).await?;
        let room_id = room["room_id"].as_str().ok_or_else(|| format!("room: {room}"))?.to_string();
        post(&format!("/rooms/{room_id}/invite"), Some(&a.token), json!({"to_phone_e164": PHONE_B})).await?;
        Ok(World { a, b, room_id, media, core, stop: Some(stop), server: Some(server), dir, join_tokens: Mutex::new([None, None]) })
    }

    /// A new signaling session (a new socket), not yet authenticated.
    pub fn session(&self) -> Driven {
        Driven::new(self.media.clone())
    }

    /// A join token for `user` and the room, as `POST /rooms/:room_id/join` issues it. The same
    /// one for a minute, as a client that rejoins does (a token stays valid until it expires):
    /// the server keeps every token issued for its lifetime, and thousands of inputs a minute
    /// each issuing new ones made issuing (which sweeps the expired ones) most of an input's time.
    pub fn join_token(&self, user: &User) -> String {
        let slot = usize::from(user.user_id != self.a.user_id);
        let mut tokens = self.join_tokens.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match &tokens[slot] {
            Some((token, issued)) if now.duration_since(*issued) < JOIN_TOKEN_REUSE => token.clone(),
            _ => {
                let token = self.core.join_tokens.issue(&user.user_id, &self.room_id);
                tokens[slot] = Some((token.clone(), now));
                token
            }
        }
    }

    /// The routers' capabilities (what `POST /rooms/:room_id/join` hands a device).
    pub fn rtp_capabilities(&self) -> &RtpCapabilities {
        self.media.engine().rtp_capabilities()
    }

    /// (transports, producers, consumers) alive in the engine.
    pub async fn objects(&self) -> Result<(usize, usize, usize), String> {
        let s = self.media.engine().stats().await.map_err(|e| e.to_string())?;
        Ok((s.transports, s.producers, s.consumers))
    }

    /// Stops the server and removes its directory.
    pub async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
