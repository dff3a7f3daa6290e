//! Drives an Atome server the way the browser client does: dev login, a public room per room of
//! the plan, join over HTTP, then the WebSocket protocol (transports, produce, consume, resume).
//! The mediasoup reference server speaks the same contract, so the same driver runs it.
use std::any::Any;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu::rtp_parameters::{MediaKind as SfuKind, RtpCapabilities, RtpParameters};
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::Ssrc;
use testpeer::signaling::{dev_login, Ws};
use testpeer::simulcast::SimulcastTrack;
use testpeer::{expect_consumer, produce_parameters, send_rtp_capabilities, ClientTransport, OPUS_PT, VP8_PT};
use tokio::task::JoinHandle;

use crate::link::Link;
use crate::media::{self, Control, PeerReport, Source, Track};
use crate::plan::{Plan, RoomRef, Setup};
use crate::server::{free_port, scratch_dir, wait_http, ServerProcess};
use crate::simulcast::SimulcastSource;

/// Starts the server binary on a fresh data dir with dev login and loose join limits.
/// `downlink_bwe`: the server estimates each subscriber's downlink and shares it among its
/// consumers (`--rtc-downlink-bwe=true`), which simulcast layer selection under a cap needs.
pub async fn start(bin: &Path, workers: usize, cpus: Option<&str>, downlink_bwe: bool) -> Result<(ServerProcess, String), String> {
    let dir = scratch_dir("atome")?;
    let port = free_port()?;
    let args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        &dir.join("data").to_string_lossy(),
        "--dev-auth",
        "--workers",
        &workers.to_string(),
        "--rtc-port",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(downlink_bwe.then(|| "--rtc-downlink-bwe=true".to_string()))
    .collect();
    let envs = [
        ("RUST_LOG", "warn".to_string()),
        ("ATOME_JOINS_PER_MINUTE", "1000000".to_string()),
        ("ATOME_JOINS_PER_IP_MINUTE", "1000000".to_string()),
        ("ATOME_TRANSPORTS_PER_MINUTE", "1000".to_string()),
        // Every peer's signaling socket comes from 127.0.0.1 (480 at 40 rooms of 2 + 10).
        ("ATOME_MAX_CONNECTIONS_PER_IP", "100000".to_string()),
    ];
    let mut server = ServerProcess::spawn("atome", bin, &args, &envs, cpus, dir)?;
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&mut server, &format!("{base}/health")).await?;
    Ok((server, base))
}

async fn api(token: &str, method: reqwest::Method, url: String, body: Value) -> Result<Value, String> {
    let r = reqwest::Client::new().request(method, &url).bearer_auth(token).json(&body).send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{url}: {status} {v}"));
    }
    Ok(v)
}

/// One peer's way in: login, HTTP join, WebSocket auth and joinRoom. Returns the socket, the
/// joinRoom reply and the router's capabilities.
async fn enter(base: &str, room: &str, phone: &str, name: &str) -> Result<(Ws, Value, RtpCapabilities), String> {
    let token = dev_login(base, phone, name).await?;
    let join = api(&token, reqwest::Method::POST, format!("{base}/rooms/{room}/join"), json!({})).await?;
    let mut ws = Ws::authenticated(base, &token).await?;
    let r = ws
        .request("joinRoom", json!({"room_id": room, "join_token": join["join_token"], "rtpCapabilities": join["rtpCapabilities"]}))
        .await
        .ok_or("socket closed on joinRoom")?;
    if r["type"] != "roomJoined" {
        return Err(format!("joinRoom: {r}"));
    }
    let caps = serde_json::from_value(join["rtpCapabilities"].clone()).map_err(|e| e.to_string())?;
    Ok((ws, r, caps))
}

async fn request(ws: &mut Ws, kind: &str, fields: Value, expect: &str) -> Result<Value, String> {
    let r = ws.request(kind, fields).await.ok_or_else(|| format!("socket closed on {kind}"))?;
    if r["type"] != expect {
        return Err(format!("{kind}: {r}"));
    }
    Ok(r)
}

async fn transport(ws: &mut Ws, send: Option<&RtpCapabilities>) -> Result<ClientTransport, String> {
    let fields = match send {
        Some(caps) => json!({"direction": "send", "rtpCapabilities": send_rtp_capabilities(caps)}),
        None => json!({"direction": "recv"}),
    };
    let r = request(ws, "createTransport", fields, "transportCreated").await?;
    // Publishers without estimation (their packets leave as the tracks make them); subscribers
    // send transport-cc feedback as browsers do, so a server estimating downlinks sees it.
    let (t, dtls) = ClientTransport::with_bwe(&r["transportOptions"], send.is_some(), send.is_none())?;
    request(ws, "connectTransport", json!({"transport_id": t.id, "dtlsParameters": dtls}), "transportConnected").await?;
    Ok(t)
}

pub async fn setup(base: &str, plan: &Plan, rooms: Range<usize>, ctl: &Arc<Control>) -> Result<Setup, String> {
    let mut setup = Setup::default();
    for r in rooms {
        let owner = dev_login(base, &Plan::phone(r, 0), "owner").await?;
        let room = api(&owner, reqwest::Method::POST, format!("{base}/rooms"), json!({"visibility": "public"})).await?;
        let room = room["room_id"].as_str().ok_or("no room_id")?.to_string();
        for p in 0..plan.publishers {
            let joined_at = Instant::now();
            let (mut ws, _, caps) = enter(base, &room, &Plan::phone(r, p), &format!("pub{p}")).await?;
            let mut t = transport(&mut ws, Some(&caps)).await?;
            let mut sources = Vec::new();
            for (i, (kind, spec, pt)) in
                [(SfuKind::Video, plan.video, VP8_PT), (SfuKind::Audio, plan.audio, OPUS_PT)].into_iter().enumerate()
            {
                let mid = i.to_string();
                let m = Mid::from(mid.as_str());
                if kind == SfuKind::Video && plan.simulcast {
                    // testpeer's track for the parameters and the declared streams (by SSRC, each
                    // with its rid on the client side); the load tool's own for the packets.
                    let track = SimulcastTrack::new(&mid, 3, false);
                    let params = track.produce_parameters();
                    produce(&mut ws, &t.id, kind, &params).await?;
                    track.declare(&mut t);
                    let streams: Vec<(u32, String)> = track.streams.iter().map(|s| (s.ssrc, s.rid.clone())).collect();
                    sources.push(Track::Simulcast(SimulcastSource::new(Pt::from(pt), &streams, spec.kbps, spec.packet_bytes)));
                    continue;
                }
                let ssrc = fastrand::u32(10_000..1_000_000_000);
                let params = produce_parameters(kind, &mid, ssrc);
                produce(&mut ws, &t.id, kind, &params).await?;
                let mut api = t.rtc.direct_api();
                api.declare_media(m, if spec.kind == MediaKind::Audio { MediaKind::Audio } else { MediaKind::Video });
                let rtx = (kind == SfuKind::Video).then(|| Ssrc::from(ssrc + 1));
                api.declare_stream_tx(Ssrc::from(ssrc), rtx, m, None);
                sources.push(Track::Single(Source::new(spec, m, Pt::from(pt))));
            }
            let (rtc, socket, _) = t.into_parts().ok_or("a UDP client has a socket")?;
            setup.publishers.push(tokio::spawn(media::run(rtc, socket, sources, None, joined_at, ctl.clone())));
            setup.keep.push(Box::new(ws.keep_alive())); // answers the server's pings
        }
        for s in 0..plan.subscribers {
            let phone = Plan::phone(r, plan.publishers + s);
            let (task, keep) = subscriber(base, &room, &phone, &format!("sub{s}"), Instant::now(), plan.capped(s), ctl).await?;
            setup.subscribers.push(task);
            setup.keep.push(keep);
        }
        setup.rooms.push(RoomRef::Signaling(room));
    }
    Ok(setup)
}

/// One subscriber joins `room` (whose publishers are all in) and consumes every producer in it;
/// its media task counts from `joined_at`. Returns the task and its signaling session, which
/// must stay alive. `cap_kbps`: its downlink goes through a [`Link`] of that rate.
pub async fn subscriber(
    base: &str,
    room: &str,
    phone: &str,
    name: &str,
    joined_at: Instant,
    cap_kbps: Option<u32>,
    ctl: &Arc<Control>,
) -> Result<(JoinHandle<PeerReport>, Box<dyn Any + Send>), String> {
    let (mut ws, joined, _) = enter(base, room, phone, name).await?;
    let mut t = transport(&mut ws, None).await?;
    let producers = joined["existingProducers"].as_array().cloned().unwrap_or_default();
    let mut consumers = Vec::new();
    for p in &producers {
        let c = request(&mut ws, "consume", json!({"transport_id": t.id, "producer_id": p["producer_id"]}), "consumerCreated").await?;
        expect_consumer(&mut t, &c["consumerOptions"])?;
        consumers.push(c["consumerOptions"]["id"].clone());
    }
    let (rtc, socket, _) = t.into_parts().ok_or("a UDP client has a socket")?;
    let link = cap_kbps.map(|kbps| Link::new(kbps, LINK_QUEUE));
    let task = tokio::spawn(media::run(rtc, socket, Vec::new(), link, joined_at, ctl.clone()));
    for id in consumers {
        request(&mut ws, "resumeConsumer", json!({"consumer_id": id}), "consumerResumed").await?;
    }
    Ok((task, Box::new(ws.keep_alive()))) // answers the server's pings
}

/// How much traffic a capped subscriber's link queues before it drops (as a home router's
/// buffer).
const LINK_QUEUE: Duration = Duration::from_millis(200);

async fn produce(ws: &mut Ws, transport_id: &str, kind: SfuKind, params: &RtpParameters) -> Result<Value, String> {
    let fields = json!({"transport_id": transport_id, "kind": kind.as_str(), "rtpParameters": params, "appData": {}});
    request(ws, "produce", fields, "produced").await
}

/// The server's own counters (`/health` media section).
pub async fn health(base: &str) -> Option<Value> {
    reqwest::get(format!("{base}/health")).await.ok()?.json().await.ok()
}
