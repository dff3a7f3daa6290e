//! Drives Janus VideoRoom (1.1.x, multistream API) over its HTTP API with the same peers as the
//! Atome run: each publisher offers audio + video (str0m's SDP API), each subscriber takes every
//! publisher of its room on one PeerConnection (Janus offers, we answer).
//!
//! Janus gathers no loopback candidate (libnice skips `lo`): it announces the host's first
//! address, and the clients bind that address too; the kernel still routes it over `lo`.
use std::any::Any;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Pt};
use str0m::{Candidate, Rtc, RtcConfig};
use tokio::task::JoinHandle;

use crate::media::{self, Control, PeerReport, Source, Track};
use crate::plan::{Plan, RoomRef, Setup};
use crate::server::{free_port, scratch_dir, wait_http, ServerProcess};

const OPUS_PT: u8 = 111;
const VP8_PT: u8 = 96;
const VP8_RTX_PT: u8 = 97;
const MODULES: &str = "/usr/lib/x86_64-linux-gnu/janus";

/// The configuration a run uses, written to a fresh folder: only the HTTP transport (loopback)
/// and the VideoRoom plugin, ICE-lite, no STUN/TURN, no session expiry, warnings only.
pub fn config_files(dir: &Path, http_port: u16, modules: &str) -> Vec<(String, String)> {
    let janus = format!(
        r#"general: {{
	configs_folder = "{conf}"
	plugins_folder = "{modules}/plugins"
	transports_folder = "{modules}/transports"
	events_folder = "{modules}/events"
	loggers_folder = "{modules}/loggers"
	debug_level = 3
	session_timeout = 0
}}
certificates: {{
}}
media: {{
	rtp_port_range = "20000-29999"
}}
nat: {{
	ice_lite = true
	full_trickle = false
	ice_tcp = false
	ignore_mdns = true
}}
plugins: {{
	disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
}}
transports: {{
	disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so"
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
events: {{
	broadcast = false
}}
"#,
        conf = dir.display()
    );
    let http = format!(
        "general: {{\n\tjson = \"plain\"\n\tbase_path = \"/janus\"\n\thttp = true\n\tport = {http_port}\n\tip = \"127.0.0.1\"\n\thttps = false\n}}\nadmin: {{\n\tadmin_http = false\n\tadmin_https = false\n}}\ncors: {{\n}}\n"
    );
    vec![
        ("janus.jcfg".into(), janus),
        ("janus.transport.http.jcfg".into(), http),
        ("janus.plugin.videoroom.jcfg".into(), "general: {\n}\n".into()),
    ]
}

pub async fn start(bin: &Path, cpus: Option<&str>) -> Result<(ServerProcess, String), String> {
    let dir = scratch_dir("janus")?;
    let port = free_port()?;
    for (name, text) in config_files(&dir, port, MODULES) {
        std::fs::write(dir.join(&name), text).map_err(|e| format!("{name}: {e}"))?;
    }
    let args = vec!["-F".to_string(), dir.display().to_string(), "-o".to_string()];
    let mut server = ServerProcess::spawn("janus", bin, &args, &[], cpus, dir)?;
    let base = format!("http://127.0.0.1:{port}/janus");
    wait_http(&mut server, &format!("{base}/info")).await?;
    Ok((server, base))
}

/// The address Janus announces: the host's own (non-loopback) source address.
pub fn host_ip() -> Result<IpAddr, String> {
    let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    // A UDP connect sends nothing; it only picks the source address of the default route.
    s.connect("192.0.2.254:9").or_else(|_| s.connect("10.255.255.254:9")).map_err(|e| format!("no route to pick a host address: {e}"))?;
    let ip = s.local_addr().map_err(|e| e.to_string())?.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        return Err("no non-loopback address for Janus".into());
    }
    Ok(ip)
}

/// One Janus session with one VideoRoom handle.
struct Handle {
    base: String,
    session: u64,
    handle: u64,
    http: reqwest::Client,
}

impl Handle {
    async fn new(base: &str) -> Result<Handle, String> {
        let http = reqwest::Client::new();
        let session = post(&http, base, json!({"janus": "create"})).await?["data"]["id"].as_u64().ok_or("no session id")?;
        let url = format!("{base}/{session}");
        let handle = post(&http, &url, json!({"janus": "attach", "plugin": "janus.plugin.videoroom"})).await?["data"]["id"]
            .as_u64()
            .ok_or("no handle id")?;
        Ok(Handle { base: base.to_string(), session, handle, http })
    }

    /// A plugin message; synchronous requests answer at once, the others with an event.
    async fn message(&self, body: Value, jsep: Option<Value>) -> Result<Value, String> {
        let mut msg = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        post(&self.http, &format!("{}/{}/{}", self.base, self.session, self.handle), msg).await
    }

    /// The next event of this session matching `pred` (long-poll).
    async fn event(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value, String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let url = format!("{}/{}?maxev=1&rid={}", self.base, self.session, fastrand::u32(..));
            let v: Value = self.http.get(url).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
            if let Some(err) = v["plugindata"]["data"]["error"].as_str() {
                return Err(format!("janus: {err} (waiting for {what})"));
            }
            if pred(&v) {
                return Ok(v);
            }
        }
        Err(format!("janus: no {what} within 15 s"))
    }
}

async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> Result<Value, String> {
    body["transaction"] = json!(format!("t{}", fastrand::u64(..)));
    let v: Value = http.post(url).json(&body).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
    match v["janus"].as_str() {
        Some("success") | Some("ack") => Ok(v),
        _ => Err(format!("janus: {v}")),
    }
}

/// A client Rtc on its own socket at `ip`, RTP mode, Opus + VP8 (with RTX) like a browser.
fn client_rtc(ip: IpAddr) -> Result<(Rtc, UdpSocket), String> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut cfg = RtcConfig::new().set_rtp_mode(true).clear_codecs();
    let cc = cfg.codec_config();
    let opus = FormatParams { min_p_time: Some(10), use_inband_fec: Some(true), ..Default::default() };
    cc.add_config(Pt::from(OPUS_PT), None, Codec::Opus, Frequency::FORTY_EIGHT_KHZ, Some(2), opus);
    cc.add_config(Pt::from(VP8_PT), Some(Pt::from(VP8_RTX_PT)), Codec::Vp8, Frequency::NINETY_KHZ, None, FormatParams::default());
    let mut rtc = cfg.build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
    Ok((rtc, socket))
}

pub async fn setup(base: &str, plan: &Plan, rooms: Range<usize>, ctl: &Arc<Control>) -> Result<Setup, String> {
    let ip = host_ip()?;
    let mut setup = Setup::default();
    for r in rooms {
        let room = 1000 + r as u64;
        let mut feeds = Vec::new();
        for p in 0..plan.publishers {
            let joined_at = Instant::now();
            let h = Handle::new(base).await?;
            if p == 0 {
                // Same room shape as Atome's: no bitrate cap, no periodic keyframe requests.
                let body = json!({"request": "create", "room": room, "publishers": plan.publishers.max(3),
                    "bitrate": 0, "fir_freq": 0, "audiocodec": "opus", "videocodec": "vp8", "notify_joining": false});
                let r = h.message(body, None).await?;
                if r["plugindata"]["data"]["videoroom"] != "created" {
                    return Err(format!("janus room create: {r}"));
                }
            }
            let (mut rtc, socket) = client_rtc(ip)?;
            let mut change = rtc.sdp_api();
            let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
            let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            let (offer, pending) = change.apply().ok_or("no offer")?;
            let jsep = json!({"type": "offer", "sdp": offer.to_sdp_string()});
            h.message(json!({"request": "joinandconfigure", "ptype": "publisher", "room": room, "display": format!("pub{p}")}), Some(jsep))
                .await?;
            let ev = h.event("publisher answer", |v| v["jsep"]["type"] == "answer").await?;
            let answer = SdpAnswer::from_sdp_string(ev["jsep"]["sdp"].as_str().unwrap_or("")).map_err(|e| format!("answer: {e}"))?;
            rtc.sdp_api().accept_answer(pending, answer).map_err(|e| format!("accept answer: {e}"))?;
            feeds.push(ev["plugindata"]["data"]["id"].as_u64().ok_or("no publisher id")?);
            let sources = vec![
                Track::Single(Source::new(plan.video, video, Pt::from(VP8_PT))),
                Track::Single(Source::new(plan.audio, audio, Pt::from(OPUS_PT))),
            ];
            setup.publishers.push(tokio::spawn(media::run(rtc, socket, sources, None, joined_at, ctl.clone())));
            // Subscribing to a feed works only once its PeerConnection is up.
            h.event("publisher webrtcup", |v| v["janus"] == "webrtcup").await?;
            setup.keep.push(Box::new(h));
        }
        for _ in 0..plan.subscribers {
            let (task, keep) = subscriber(base, ip, room, &feeds, Instant::now(), ctl).await?;
            setup.subscribers.push(task);
            setup.keep.push(keep);
        }
        setup.rooms.push(RoomRef::Janus { room, feeds });
    }
    Ok(setup)
}

/// One subscriber joins VideoRoom `room` and takes every feed of `feeds` on one PeerConnection;
/// its media task counts from `joined_at`. Returns the task and its Janus session, which must
/// stay alive.
pub async fn subscriber(
    base: &str,
    ip: IpAddr,
    room: u64,
    feeds: &[u64],
    joined_at: Instant,
    ctl: &Arc<Control>,
) -> Result<(JoinHandle<PeerReport>, Box<dyn Any + Send>), String> {
    let h = Handle::new(base).await?;
    let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
    h.message(json!({"request": "join", "ptype": "subscriber", "room": room, "streams": streams}), None).await?;
    let ev = h.event("subscriber offer", |v| v["jsep"]["type"] == "offer").await?;
    let offer = SdpOffer::from_sdp_string(ev["jsep"]["sdp"].as_str().unwrap_or("")).map_err(|e| format!("offer: {e}"))?;
    let (mut rtc, socket) = client_rtc(ip)?;
    let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| format!("accept offer: {e}"))?;
    h.message(json!({"request": "start"}), Some(json!({"type": "answer", "sdp": answer.to_sdp_string()}))).await?;
    let task = tokio::spawn(media::run(rtc, socket, Vec::new(), None, joined_at, ctl.clone()));
    Ok((task, Box::new(h)))
}
