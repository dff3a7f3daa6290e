//! The signaling side of the test peer: logs in over HTTP and speaks the server's WebSocket
//! protocol the way mediasoup-client's application code does (requests with `requestId`,
//! notifications kept aside until asked for).
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a reply or notification may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// Logs in with the server's dev login (`--dev-auth`); returns the bearer token.
pub async fn dev_login(base: &str, phone: &str, name: &str) -> Result<String, String> {
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/auth/dev-login"))
        .json(&json!({"phone_e164": phone, "display_name": name}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    body["token"].as_str().map(String::from).ok_or_else(|| format!("dev login failed: {body}"))
}

pub struct Ws {
    stream: Stream,
    next_id: u64,
    pub notifications: Vec<Value>,
}

impl Ws {
    /// Opens `ws://.../ws` for an `http://` base URL.
    pub async fn connect(base: &str) -> Result<Ws, String> {
        let url = base.replacen("http", "ws", 1) + "/ws";
        let (stream, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| e.to_string())?;
        Ok(Ws { stream, next_id: 0, notifications: Vec::new() })
    }

    /// Connects and authenticates; fails unless the server answers `authOk`.
    pub async fn authenticated(base: &str, token: &str) -> Result<Ws, String> {
        let mut ws = Ws::connect(base).await?;
        let r = ws.request("auth", json!({"token": token})).await.ok_or("socket closed during auth")?;
        if r["type"] != "authOk" {
            return Err(format!("auth refused: {r}"));
        }
        Ok(ws)
    }

    /// Sends a WebSocket ping frame (a control frame, not a message).
    pub async fn send_ping(&mut self) -> bool {
        self.stream.send(Message::Ping(Vec::new().into())).await.is_ok()
    }

    pub async fn send_text(&mut self, text: String) -> bool {
        self.stream.send(Message::Text(text.into())).await.is_ok()
    }

    /// The next server message; None if the socket closed or nothing came within [`WAIT`].
    pub async fn recv(&mut self) -> Option<Value> {
        serde_json::from_str(&self.recv_text().await?).ok()
    }

    /// The next server message as sent (raw text); None if the socket closed or nothing came
    /// within [`WAIT`].
    pub async fn recv_text(&mut self) -> Option<String> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next()).await.ok()??;
            match msg {
                Ok(Message::Text(t)) => return Some(t.to_string()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Sends `{type, requestId, ...fields}`; returns the reply echoing that requestId.
    pub async fn request(&mut self, kind: &str, fields: Value) -> Option<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = if fields.is_object() { fields } else { json!({}) };
        msg["type"] = json!(kind);
        msg["requestId"] = json!(id);
        if !self.send_text(msg.to_string()).await {
            return None;
        }
        loop {
            let reply = self.recv().await?;
            if reply["requestId"] == json!(id) {
                return Some(reply);
            }
            self.notifications.push(reply);
        }
    }

    /// A notification of `kind`, already received or arriving within [`WAIT`].
    pub async fn notification(&mut self, kind: &str) -> Option<Value> {
        if let Some(i) = self.notifications.iter().position(|n| n["type"] == kind) {
            return Some(self.notifications.remove(i));
        }
        loop {
            let msg = self.recv().await?;
            if msg["type"] == kind {
                return Some(msg);
            }
            self.notifications.push(msg);
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// Reads for `period`, keeping notifications and answering the server's pings (reading is
    /// what sends the pongs). False if the socket closed meanwhile.
    pub async fn listen_for(&mut self, period: Duration) -> bool {
        let end = tokio::time::Instant::now() + period;
        loop {
            match tokio::time::timeout_at(end, self.stream.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Text(t)))) => self.notifications.extend(serde_json::from_str::<Value>(&t).ok()),
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => return false,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Keeps the socket open and answering pings in a task of its own, until the guard is dropped.
    pub fn keep_alive(mut self) -> KeptAlive {
        KeptAlive(tokio::spawn(async move { while self.listen_for(Duration::from_secs(3600)).await {} }))
    }
}

/// A socket kept alive in the background; dropping this closes it.
pub struct KeptAlive(tokio::task::JoinHandle<()>);

impl Drop for KeptAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}
