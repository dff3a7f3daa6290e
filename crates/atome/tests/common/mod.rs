//! Test harness: the real server on port 0 with a temporary data directory, real HTTP.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use atome::{App, Config};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub base: String,
    /// `http://addr` of the `--metrics-listen` listener, when set.
    pub metrics_base: Option<String>,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    pub http: reqwest::Client,
    /// The server's media engine (tests inject faults through it).
    pub engine: sfu::Engine,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start_in(tmp.path(), tweak).await;
        server._tmp = Some(tmp);
        server
    }

    /// Starts a server on an existing data directory (for restart tests).
    pub async fn start_in(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::for_tests(data_dir.to_path_buf());
        tweak(&mut config);
        let app = App::build(config).await.expect("server builds");
        let addr = app.local_addr();
        let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
        let engine = app.engine().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until(async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        TestServer {
            base: format!("http://{addr}"),
            metrics_base,
            data_dir: data_dir.to_path_buf(),
            stop: Some(tx),
            task: Some(task),
            http: reqwest::Client::new(),
            engine,
            _tmp: None,
        }
    }

    /// Stops the server and waits until it has released its listener and database.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self._tmp.take()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.expect("request sent")).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.expect("request sent")).await
    }

    /// Posts `body` through `client` (e.g. one made by [`client_from`], to act as another source).
    pub async fn post_via(&self, client: &reqwest::Client, path: &str, body: Value) -> (StatusCode, Value) {
        read(client.post(format!("{}{path}", self.base)).json(&body).send().await.expect("request sent")).await
    }

    /// Posts raw bytes with a JSON content type.
    pub async fn post_raw(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.expect("request sent")).await
    }

    /// The last code the `file` SMS sender wrote for `phone`.
    pub fn last_code(&self, phone: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.data_dir.join("sms_outbox.jsonl")).ok()?;
        text.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["phone_e164"] == phone)
            .and_then(|v| v["code"].as_str().map(String::from))
    }

    /// Logs in through the one-time-code flow; returns (token, user).
    pub async fn login(&self, phone: &str, name: &str) -> (String, Value) {
        let (status, body) = self.post("/auth/otp/request", None, json!({"phone_e164": phone})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let code = self.last_code(phone).expect("code in outbox");
        let (status, body) = self.post("/auth/otp/verify", None, json!({"phone_e164": phone, "code": code, "display_name": name})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (body["token"].as_str().expect("token").to_string(), body["user"].clone())
    }

    /// Logs in through dev login (faster; used where OTP is not the subject).
    pub async fn dev_login(&self, phone: &str, name: &str) -> String {
        let (status, body) = self.post("/auth/dev-login", None, json!({"phone_e164": phone, "display_name": name})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// Makes `a` and `b` connected (a requests, b accepts).
    pub async fn connect(&self, a_token: &str, b_token: &str, b_phone: &str) {
        let (status, body) = self.post("/contacts/request", Some(a_token), json!({"to_phone_e164": b_phone})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = body["request_id"].as_str().expect("request_id").to_string();
        let (status, body) = self.post("/contacts/respond", Some(b_token), json!({"request_id": id, "decision": "accepted"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// An HTTP client whose connections leave from `ip`: any address of 127.0.0.0/8 works on
/// Linux loopback, so one test can act as many sources (the server's per-IP limits see them apart).
pub fn client_from(ip: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip).build().expect("client")
}

/// The `n`-th loopback source address after 127.0.0.1 (127.0.0.2, 127.0.0.3, ...; up to ~16 M).
pub fn loopback_source(n: u32) -> std::net::IpAddr {
    std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(127, 0, 0, 2)) + n).into()
}

async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body for {status}: {text:?}"));
    (status, body)
}

/// Asserts an error response in our shape with the given status and code.
#[track_caller]
pub fn assert_error(resp: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (s, body) = resp;
    assert_eq!(*s, status, "status; body {body}");
    assert_eq!(body["success"], json!(false), "{body}");
    assert_eq!(body["code"], json!(code), "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
}

/// The test peer's signaling client, with panicking shortcuts for tests.
pub struct Ws(pub testpeer::signaling::Ws);

impl Ws {
    pub async fn connect(server: &TestServer) -> Ws {
        Ws(testpeer::signaling::Ws::connect(&server.base).await.expect("websocket connects"))
    }

    pub async fn auth(server: &TestServer, token: &str) -> Ws {
        Ws(testpeer::signaling::Ws::authenticated(&server.base, token).await.expect("authenticated"))
    }

    pub async fn send_text(&mut self, text: String) {
        assert!(self.0.send_text(text).await, "send");
    }

    pub async fn recv(&mut self) -> Option<Value> {
        self.0.recv().await
    }

    pub async fn request(&mut self, kind: &str, fields: Value) -> Value {
        self.0.request(kind, fields).await.unwrap_or_else(|| panic!("no reply to {kind}"))
    }

    pub async fn notification(&mut self, kind: &str) -> Value {
        self.0.notification(kind).await.unwrap_or_else(|| panic!("no {kind} notification"))
    }

    pub async fn close(self) {
        self.0.close().await
    }
}

/// A and B of the two-peer tests.
pub const A: &str = "+33611111111";
pub const B: &str = "+33622222222";

/// A room owned by A ("Alice") with B ("Bob") connected and invited; (a token, b token, room id).
pub async fn room_for_two(s: &TestServer) -> (String, String, String) {
    let a = s.dev_login(A, "Alice").await;
    let b = s.dev_login(B, "Bob").await;
    s.connect(&a, &b, B).await;
    let (_, room) = s.post("/rooms", Some(&a), json!({"name": "call"})).await;
    let room_id = room["room_id"].as_str().expect("a room id").to_string();
    s.post(&format!("/rooms/{room_id}/invite"), Some(&a), json!({"to_phone_e164": B})).await;
    (a, b, room_id)
}

/// POST join then WS joinRoom; returns the roomJoined reply.
pub async fn join(s: &TestServer, ws: &mut Ws, token: &str, room_id: &str) -> Value {
    let (status, joined) = s.post(&format!("/rooms/{room_id}/join"), Some(token), json!({})).await;
    assert_eq!(status, 200, "{joined}");
    let r = ws
        .request("joinRoom", json!({"room_id": room_id, "join_token": joined["join_token"], "rtpCapabilities": joined["rtpCapabilities"]}))
        .await;
    assert_eq!(r["type"], "roomJoined", "{r}");
    r
}

/// A send transport created over `ws` with a Chrome-like client's send capabilities for the
/// router of `joined` (the `roomJoined` reply), then connected: its client side.
pub async fn connected_send_transport(ws: &mut Ws, joined: &Value) -> testpeer::ClientTransport {
    let caps: sfu::rtp_parameters::RtpCapabilities =
        serde_json::from_value(joined["rtpCapabilities"].clone()).expect("roomJoined.rtpCapabilities");
    let r = ws.request("createTransport", json!({"direction": "send", "rtpCapabilities": testpeer::send_rtp_capabilities(&caps)})).await;
    connect_created(ws, &r, true).await
}

/// A receive transport created over `ws`, then connected: its client side.
pub async fn connected_recv_transport(ws: &mut Ws) -> testpeer::ClientTransport {
    let r = ws.request("createTransport", json!({"direction": "recv"})).await;
    connect_created(ws, &r, false).await
}

/// The client side of the transport a `transportCreated` reply describes, connected over `ws`.
async fn connect_created(ws: &mut Ws, created: &Value, send: bool) -> testpeer::ClientTransport {
    assert_eq!(created["type"], "transportCreated", "{created}");
    let (transport, dtls) = testpeer::ClientTransport::new(&created["transportOptions"], send).expect("transport options");
    let r = ws.request("connectTransport", json!({"transport_id": transport.id, "dtlsParameters": dtls})).await;
    assert_eq!(r["type"], "transportConnected", "{r}");
    transport
}
