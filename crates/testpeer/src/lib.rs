//! A WebRTC client on str0m that behaves like mediasoup-client in Chrome: full ICE (controlling),
//! DTLS client, its own payload types, and header-extension ids that differ from the ones its
//! `sendRtpCapabilities` announce (as Chrome's do). It publishes synthetic Opus and VP8 (real VP8
//! payload descriptors, keyframe headers, marker bits) and records what it receives.
pub mod signaling;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu::ortc::{URI_ABS_SEND_TIME, URI_AUDIO_LEVEL, URI_MID, URI_TWCC};
use sfu::rtp_parameters::{MediaKind, RtpCapabilities, RtpParameters};
use str0m::bwe::Bitrate;
use str0m::config::Fingerprint;
use str0m::format::{Codec, FormatParams};
use str0m::ice::IceCreds;
use str0m::media::{Frequency, KeyframeRequestKind, MediaKind as StrKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, ExtensionValues, RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

/// The client's own payload types (Chrome's usual ones), not the router's.
pub const OPUS_PT: u8 = 111;
pub const VP8_PT: u8 = 96;
pub const VP8_RTX_PT: u8 = 97;

/// Extension ids the client really uses on its send connection (differ from its capabilities).
pub const SEND_EXTENSIONS: [(u8, &str); 4] = [(9, URI_MID), (4, URI_TWCC), (2, URI_ABS_SEND_TIME), (10, URI_AUDIO_LEVEL)];

/// What mediasoup-client's `device.sendRtpCapabilities` would be for the router's capabilities:
/// the client's payload types, the router's extension ids.
pub fn send_rtp_capabilities(router: &RtpCapabilities) -> RtpCapabilities {
    let caps = json!({
        "codecs": [
            {"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": OPUS_PT, "clockRate": 48000, "channels": 2,
             "parameters": {"minptime": 10, "useinbandfec": 1}, "rtcpFeedback": [{"type": "transport-cc"}]},
            {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": VP8_PT, "clockRate": 90000,
             "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}, {"type": "transport-cc"}]},
            {"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": VP8_RTX_PT, "clockRate": 90000,
             "parameters": {"apt": VP8_PT}}
        ],
        "headerExtensions": router.header_extensions,
    });
    serde_json::from_value(caps).expect("literal capabilities") // a constant shape, checked by tests
}

/// The rtpParameters mediasoup-client sends with `produce`.
pub fn produce_parameters(kind: MediaKind, mid: &str, ssrc: u32) -> RtpParameters {
    let exts: Vec<Value> = SEND_EXTENSIONS
        .iter()
        .filter(|(_, uri)| kind == MediaKind::Audio || *uri != URI_AUDIO_LEVEL)
        .map(|(id, uri)| json!({"uri": uri, "id": id, "encrypt": false, "parameters": {}}))
        .collect();
    let v = match kind {
        MediaKind::Audio => json!({
            "mid": mid,
            "codecs": [{"mimeType": "audio/opus", "payloadType": OPUS_PT, "clockRate": 48000, "channels": 2,
                        "parameters": {"minptime": 10, "useinbandfec": 1}, "rtcpFeedback": [{"type": "transport-cc"}]}],
            "headerExtensions": exts,
            "encodings": [{"ssrc": ssrc, "dtx": false}],
            "rtcp": {"cname": "testpeer", "reducedSize": true},
        }),
        MediaKind::Video => json!({
            "mid": mid,
            "codecs": [
                {"mimeType": "video/VP8", "payloadType": VP8_PT, "clockRate": 90000, "parameters": {},
                 "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}, {"type": "transport-cc"}]},
                {"mimeType": "video/rtx", "payloadType": VP8_RTX_PT, "clockRate": 90000, "parameters": {"apt": VP8_PT}}
            ],
            "headerExtensions": exts,
            "encodings": [{"ssrc": ssrc, "rtx": {"ssrc": ssrc + 1}}],
            "rtcp": {"cname": "testpeer", "reducedSize": true},
        }),
    };
    serde_json::from_value(v).expect("literal parameters") // a constant shape, checked by tests
}

/// One received RTP packet.
#[derive(Debug, Clone)]
pub struct Received {
    pub ssrc: u32,
    pub pt: u8,
    pub seq: u64,
    pub payload: Vec<u8>,
    /// The transport-wide sequence number, when the sender stamped one.
    pub transport_cc: Option<u16>,
}

/// A client side of one server transport: its own socket and Rtc.
pub struct ClientTransport {
    pub id: String,
    pub rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    /// Percentage of outgoing video RTP datagrams to drop (simulated loss).
    pub drop_pct: u32,
    pub dropped: u64,
}

impl ClientTransport {
    /// Builds the client for `options` (the server's transportOptions JSON); returns it and the
    /// dtlsParameters to send with `connectTransport`.
    pub fn new(options: &Value, send: bool) -> Result<(ClientTransport, Value), String> {
        Self::with_bwe(options, send, send)
    }

    /// As [`ClientTransport::new`]; `bwe` turns str0m's bandwidth estimation (and its pacer) on.
    /// Load runs leave it off so that the client's pacer adds no delay of its own.
    pub fn with_bwe(options: &Value, send: bool, bwe: bool) -> Result<(ClientTransport, Value), String> {
        Self::build(options, send, bwe, true)
    }

    /// As [`ClientTransport::new`], but this client is the DTLS server (it waits for the
    /// server's handshake); the dtlsParameters returned say `"role": "server"`.
    pub fn dtls_server(options: &Value, send: bool) -> Result<(ClientTransport, Value), String> {
        Self::build(options, send, send, false)
    }

    fn build(options: &Value, send: bool, bwe: bool, dtls_client: bool) -> Result<(ClientTransport, Value), String> {
        let id = options["id"].as_str().ok_or("options.id")?.to_string();
        let ice = &options["iceParameters"];
        let creds = IceCreds {
            ufrag: ice["usernameFragment"].as_str().ok_or("ufrag")?.into(),
            pass: ice["password"].as_str().ok_or("password")?.into(),
        };
        let cand = &options["iceCandidates"][0];
        let server: SocketAddr =
            format!("{}:{}", cand["address"].as_str().ok_or("address")?, cand["port"]).parse().map_err(|e| format!("candidate: {e}"))?;
        let fp = &options["dtlsParameters"]["fingerprints"][0];
        let fingerprint: Fingerprint = format!("{} {}", fp["algorithm"].as_str().unwrap_or(""), fp["value"].as_str().unwrap_or(""))
            .parse()
            .map_err(|_| "fingerprint".to_string())?;
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;

        let mut cfg = RtcConfig::new().set_rtp_mode(true).clear_codecs().clear_extension_map();
        let exts: Vec<(u8, Extension)> = if send {
            vec![
                (9, Extension::RtpMid),
                (4, Extension::TransportSequenceNumber),
                (2, Extension::AbsoluteSendTime),
                (10, Extension::AudioLevel),
            ]
        } else {
            vec![
                (1, Extension::RtpMid),
                (4, Extension::AbsoluteSendTime),
                (5, Extension::TransportSequenceNumber),
                (10, Extension::AudioLevel),
            ]
        };
        for (i, e) in exts {
            cfg = cfg.set_extension(i, e);
        }
        if bwe {
            cfg = cfg.enable_bwe(Some(Bitrate::kbps(300)));
        }
        let opus = FormatParams { min_p_time: Some(10), use_inband_fec: Some(true), ..Default::default() };
        let (opus_pt, vp8_pt, rtx_pt) = if send { (OPUS_PT, VP8_PT, VP8_RTX_PT) } else { (100, 101, 102) };
        let cc = cfg.codec_config();
        cc.add_config(Pt::from(opus_pt), None, Codec::Opus, Frequency::FORTY_EIGHT_KHZ, Some(2), opus);
        cc.add_config(Pt::from(vp8_pt), Some(Pt::from(rtx_pt)), Codec::Vp8, Frequency::NINETY_KHZ, None, FormatParams::default());
        let mut rtc = cfg.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
        rtc.add_remote_candidate(Candidate::host(server, "udp").map_err(|e| e.to_string())?);
        let my_fp = {
            let mut api = rtc.direct_api();
            api.set_ice_controlling(true);
            api.set_remote_ice_credentials(creds);
            api.set_remote_fingerprint(fingerprint);
            api.start_dtls(dtls_client).map_err(|e| e.to_string())?;
            api.local_dtls_fingerprint().to_string()
        };
        let (alg, val) = my_fp.split_once(' ').ok_or("own fingerprint")?;
        let role = if dtls_client { "client" } else { "server" };
        let dtls = json!({"role": role, "fingerprints": [{"algorithm": alg, "value": val}]});
        Ok((ClientTransport { id, rtc, socket, local, drop_pct: 0, dropped: 0 }, dtls))
    }

    /// The Rtc, its socket (non-blocking) and local address, for callers with their own loop.
    pub fn into_parts(self) -> (Rtc, UdpSocket, SocketAddr) {
        (self.rtc, self.socket, self.local)
    }

    /// Sends what the Rtc wants to send, feeds what arrived; returns the events.
    pub fn pump(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, src)) = self.socket.recv_from(&mut buf) {
            if let Ok(r) = Receive::new(Protocol::Udp, src, self.local, &buf[..n]) {
                let _ = self.rtc.handle_input(Input::Receive(Instant::now(), r));
            }
            // In RTP mode str0m keeps one received packet for the next poll_output: poll after
            // every datagram or the next one overwrites it.
            self.poll_into(&mut events);
        }
        let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
        self.poll_into(&mut events);
        events
    }

    fn poll_into(&mut self, events: &mut Vec<Event>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let is_rtp = t.contents.len() > 400 && (t.contents[0] & 0xc0) == 0x80;
                    if is_rtp && self.drop_pct > 0 && fastrand::u32(0..100) < self.drop_pct {
                        self.dropped += 1;
                        continue;
                    }
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => events.push(e),
                Ok(Output::Timeout(_)) | Err(_) => break,
            }
        }
    }
}

/// A synthetic publisher of one track.
pub struct Track {
    pub kind: MediaKind,
    pub ssrc: u32,
    pub mid: String,
    seq: u64,
    frame: u32,
    next_at: Instant,
    /// Every payload sent, in order.
    pub sent: Vec<Vec<u8>>,
    /// Packet interval override (load tests); None = the codec's natural pace.
    pub interval: Option<Duration>,
    /// Keep the sent payloads (tests compare them); off for load runs.
    pub record: bool,
    /// Make the next video frame a keyframe (set on a keyframe request, like an encoder).
    pub force_keyframe: bool,
    /// Real VP8 frames to send in a loop (frame 0 a keyframe) instead of synthetic ones.
    pub vp8_frames: Option<Vec<Vec<u8>>>,
}

impl Track {
    pub fn new(kind: MediaKind, mid: &str) -> Track {
        Track {
            kind,
            ssrc: fastrand::u32(10_000..1_000_000_000),
            mid: mid.into(),
            seq: u64::from(fastrand::u16(..)),
            frame: 0,
            next_at: Instant::now(),
            sent: Vec::new(),
            interval: None,
            record: true,
            force_keyframe: false,
            vp8_frames: None,
        }
    }

    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// Numbers the next packet `seq` (and those after it from there): tests of strays and jumps.
    pub fn set_next_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// Declares the stream on the client's send Rtc (after `produce` succeeded).
    pub fn declare(&self, t: &mut ClientTransport) {
        let mid: Mid = self.mid.as_str().into();
        let mut api = t.rtc.direct_api();
        let kind = if self.kind == MediaKind::Audio { StrKind::Audio } else { StrKind::Video };
        api.declare_media(mid, kind);
        let rtx = (self.kind == MediaKind::Video).then(|| Ssrc::from(self.ssrc + 1));
        api.declare_stream_tx(Ssrc::from(self.ssrc), rtx, mid, None);
    }

    /// Writes the next packet if it is due (Opus every 20 ms; one VP8 packet every 33 ms,
    /// ~1000 bytes, keyframe every 30 frames).
    pub fn tick(&mut self, t: &mut ClientTransport) {
        let now = Instant::now();
        if now < self.next_at || !t.rtc.is_connected() {
            return;
        }
        if self.vp8_frames.is_some() {
            self.tick_real_vp8(t, now);
            return;
        }
        let (pt, interval, ts_step, payload) = match self.kind {
            MediaKind::Audio => {
                let mut p = vec![0xfc, 0xff, 0xfe];
                p.extend_from_slice(&self.frame.to_be_bytes());
                p.resize(80, 0x55);
                (OPUS_PT, Duration::from_millis(20), 960u32, p)
            }
            MediaKind::Video => {
                let key = self.frame.is_multiple_of(30) || std::mem::take(&mut self.force_keyframe);
                (VP8_PT, Duration::from_millis(33), 3000u32, vp8_frame(self.frame, key))
            }
        };
        let mut api = t.rtc.direct_api();
        let Some(tx) = api.stream_tx(&Ssrc::from(self.ssrc)) else { return };
        let ext = ExtensionValues { audio_level: (self.kind == MediaKind::Audio).then_some(-30), ..Default::default() };
        tx.write_rtp(
            RtpWrite::new(Pt::from(pt), SeqNo::from(self.seq), self.frame.wrapping_mul(ts_step), now, payload.clone())
                .marker(true)
                .ext_vals(ext)
                .nackable(self.kind == MediaKind::Video),
        );
        if self.record {
            self.sent.push(payload);
        }
        self.seq += 1;
        self.frame += 1;
        self.next_at = now + self.interval.unwrap_or(interval);
    }
}

impl Track {
    /// Sends the next real VP8 frame, split into packets of at most 1100 bytes (RFC 7741).
    fn tick_real_vp8(&mut self, t: &mut ClientTransport, now: Instant) {
        let Some(frames) = self.vp8_frames.as_ref().filter(|f| !f.is_empty()) else { return };
        if std::mem::take(&mut self.force_keyframe) {
            self.frame -= self.frame % frames.len() as u32; // back to the keyframe at index 0
        }
        let frame = &frames[self.frame as usize % frames.len()];
        let pic = (self.frame & 0x7fff) as u16;
        let chunks: Vec<&[u8]> = frame.chunks(1100).collect();
        let mut api = t.rtc.direct_api();
        let Some(tx) = api.stream_tx(&Ssrc::from(self.ssrc)) else { return };
        for (i, chunk) in chunks.iter().enumerate() {
            let first = if i == 0 { 0x90 } else { 0x80 };
            let mut payload = vec![first, 0x80, 0x80 | (pic >> 8) as u8, pic as u8];
            payload.extend_from_slice(chunk);
            tx.write_rtp(
                RtpWrite::new(Pt::from(VP8_PT), SeqNo::from(self.seq), self.frame.wrapping_mul(3000), now, payload.clone())
                    .marker(i + 1 == chunks.len())
                    .nackable(true),
            );
            self.seq += 1;
            if self.record {
                self.sent.push(payload);
            }
        }
        self.frame += 1;
        self.next_at = now + self.interval.unwrap_or(Duration::from_millis(33));
    }
}

/// Two seconds of real VP8 (320x240, 30 frames/s, keyframe every 30 frames) encoded by
/// FFmpeg's libvpx (FFmpeg must be installed).
pub fn real_vp8_frames() -> Result<Vec<Vec<u8>>, String> {
    let ivf = std::env::temp_dir().join(format!("testpeer-{}-{}.ivf", std::process::id(), fastrand::u64(..)));
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "2"])
        .args(["-c:v", "libvpx", "-g", "30", "-b:v", "300k", "-f", "ivf", "-y"])
        .arg(&ivf)
        .status()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    let data = std::fs::read(&ivf).map_err(|e| format!("ffmpeg wrote no file ({status}): {e}"));
    let _ = std::fs::remove_file(&ivf);
    read_ivf(&data?)
}

/// The frames of an IVF file (what `ffmpeg -c:v libvpx -f ivf` writes).
pub fn read_ivf(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if data.len() < 32 || &data[..4] != b"DKIF" {
        return Err("not an IVF file".into());
    }
    let header_len = u16::from_le_bytes([data[6], data[7]]) as usize;
    let mut at = header_len;
    let mut frames = Vec::new();
    while at + 12 <= data.len() {
        let size = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        at += 12;
        let end = at.checked_add(size).filter(|e| *e <= data.len()).ok_or("truncated IVF frame")?;
        frames.push(data[at..end].to_vec());
        at = end;
    }
    Ok(frames)
}

/// Publishes `tracks` on `transport` from a thread until `stop` is set; answers keyframe
/// requests with a keyframe. Returns the transport and tracks when joined.
pub fn publish_in_background(
    mut transport: ClientTransport,
    mut tracks: Vec<Track>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(ClientTransport, Vec<Track>)> {
    std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for t in &mut tracks {
                t.tick(&mut transport);
            }
            for e in transport.pump() {
                if let Event::KeyframeRequest(_) = e {
                    for t in tracks.iter_mut().filter(|t| t.kind == MediaKind::Video) {
                        t.force_keyframe = true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        (transport, tracks)
    })
}

/// A one-packet VP8 frame: payload descriptor with picture id, then a VP8 frame header
/// (a keyframe carries the start code and 640x480), then a counter and padding.
pub fn vp8_frame(n: u32, keyframe: bool) -> Vec<u8> {
    let pic = (n & 0x7fff) as u16;
    let mut p = vec![0x90, 0x80, 0x80 | (pic >> 8) as u8, pic as u8];
    let size = 1000u32;
    // frame tag: bit0 = 0 for a keyframe, version 0, show_frame 1, first partition size.
    let tag = (if keyframe { 0 } else { 1 }) | (1 << 4) | (size << 5);
    p.extend_from_slice(&[tag as u8, (tag >> 8) as u8, (tag >> 16) as u8]);
    if keyframe {
        p.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
    }
    p.extend_from_slice(&n.to_be_bytes());
    p.resize(1000, (n % 251) as u8);
    p
}

/// Whether a VP8 RTP payload starts a keyframe.
pub fn is_vp8_keyframe(payload: &[u8]) -> bool {
    payload.len() > 7 && payload[0] & 0x10 != 0 && payload[4] & 0x01 == 0
}

/// The receiving side's record.
#[derive(Default)]
pub struct Inbox {
    pub packets: Vec<Received>,
    pub connected: bool,
}

impl Inbox {
    pub fn take_events(&mut self, events: Vec<Event>) -> Vec<Event> {
        let mut rest = Vec::new();
        for e in events {
            match e {
                Event::RtpPacket(p) => self.packets.push(Received {
                    ssrc: *p.header.ssrc,
                    pt: *p.header.payload_type,
                    seq: *p.seq_no,
                    payload: p.payload.to_vec(),
                    transport_cc: p.header.ext_vals.transport_cc,
                }),
                Event::Connected => self.connected = true,
                other => rest.push(other),
            }
        }
        rest
    }

    pub fn by_ssrc(&self) -> HashMap<u32, Vec<&Received>> {
        let mut m: HashMap<u32, Vec<&Received>> = HashMap::new();
        for p in &self.packets {
            m.entry(p.ssrc).or_default().push(p);
        }
        m
    }
}

/// Expects a consumer's stream on the receiving Rtc.
pub fn expect_consumer(t: &mut ClientTransport, options: &Value) -> Result<(u32, MediaKind), String> {
    let params: RtpParameters = serde_json::from_value(options["rtpParameters"].clone()).map_err(|e| e.to_string())?;
    let kind: MediaKind = serde_json::from_value(options["kind"].clone()).map_err(|e| e.to_string())?;
    let mid_text = params.mid.clone().ok_or("mid")?;
    let mid: Mid = mid_text.as_str().into();
    let enc = params.encodings.first().ok_or("encodings")?;
    let ssrc = enc.ssrc.ok_or("ssrc")?;
    let mut api = t.rtc.direct_api();
    api.declare_media(mid, if kind == MediaKind::Audio { StrKind::Audio } else { StrKind::Video });
    api.expect_stream_rx(Ssrc::from(ssrc), enc.rtx.map(|r| Ssrc::from(r.ssrc)), mid, None);
    Ok((ssrc, kind))
}

/// Asks the sender of `ssrc` for a keyframe (what a browser does on decode errors).
pub fn request_keyframe(t: &mut ClientTransport, ssrc: u32) -> bool {
    match t.rtc.direct_api().stream_rx(&Ssrc::from(ssrc)) {
        Some(rx) => {
            rx.request_keyframe(KeyframeRequestKind::Pli);
            true
        }
        None => false,
    }
}
