//! A WebRTC client on str0m that behaves like mediasoup-client in Chrome: full ICE (controlling),
//! DTLS client, its own payload types, and header-extension ids that differ from the ones its
//! `sendRtpCapabilities` announce (as Chrome's do). It publishes synthetic Opus and VP8 (real VP8
//! payload descriptors, keyframe headers, marker bits) and records what it receives.
pub mod client;
pub mod signaling;
pub mod sim;
pub mod simulcast;
pub mod svc;
mod track;

pub use client::ClientTransport;
pub use track::{is_vp8_keyframe, publish_in_background, read_ivf, real_vp8_frames, vp8_frame, Track};

use std::collections::HashMap;

use serde_json::{json, Value};
use sfu::ortc::{URI_ABS_SEND_TIME, URI_AUDIO_LEVEL, URI_MID, URI_TWCC};
use sfu::rtp_parameters::{MediaKind, RtpCapabilities, RtpParameters};
use str0m::media::{KeyframeRequestKind, MediaKind as StrKind, Mid};
use str0m::rtp::Ssrc;
use str0m::Event;

/// The client's own payload types (Chrome's usual ones), not the router's.
pub const OPUS_PT: u8 = 111;
pub const VP8_PT: u8 = 96;
pub const VP8_RTX_PT: u8 = 97;
pub const VP9_PT: u8 = 98;
pub const VP9_RTX_PT: u8 = 99;

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
             "parameters": {"apt": VP8_PT}},
            {"kind": "video", "mimeType": "video/VP9", "preferredPayloadType": VP9_PT, "clockRate": 90000,
             "parameters": {"profile-id": 0},
             "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}, {"type": "transport-cc"}]},
            {"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": VP9_RTX_PT, "clockRate": 90000,
             "parameters": {"apt": VP9_PT}}
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
    if kind == MediaKind::Video {
        let codec = VideoCodec { mime: "video/VP8", pt: VP8_PT, rtx_pt: VP8_RTX_PT, parameters: json!({}) };
        return video_produce_parameters(mid, codec, json!(exts), json!([{"ssrc": ssrc, "rtx": {"ssrc": ssrc + 1}}]));
    }
    let v = json!({
        "mid": mid,
        "codecs": [{"mimeType": "audio/opus", "payloadType": OPUS_PT, "clockRate": 48000, "channels": 2,
                    "parameters": {"minptime": 10, "useinbandfec": 1}, "rtcpFeedback": [{"type": "transport-cc"}]}],
        "headerExtensions": exts,
        "encodings": [{"ssrc": ssrc, "dtx": false}],
        "rtcp": {"cname": "testpeer", "reducedSize": true},
    });
    serde_json::from_value(v).expect("literal parameters") // a constant shape, checked by tests
}

/// A video codec as the client sends it, with RTX.
pub(crate) struct VideoCodec {
    pub mime: &'static str,
    pub pt: u8,
    pub rtx_pt: u8,
    /// Its fmtp parameters (a JSON object).
    pub parameters: Value,
}

/// The rtpParameters mediasoup-client sends with `produce` for video: `codec` with nack, PLI and
/// transport-cc feedback and its RTX, then `extensions` and `encodings` (JSON arrays) as given.
pub(crate) fn video_produce_parameters(mid: &str, codec: VideoCodec, extensions: Value, encodings: Value) -> RtpParameters {
    let v = json!({
        "mid": mid,
        "codecs": [
            {"mimeType": codec.mime, "payloadType": codec.pt, "clockRate": 90000, "parameters": codec.parameters,
             "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}, {"type": "transport-cc"}]},
            {"mimeType": "video/rtx", "payloadType": codec.rtx_pt, "clockRate": 90000, "parameters": {"apt": codec.pt}}
        ],
        "headerExtensions": extensions,
        "encodings": encodings,
        "rtcp": {"cname": "testpeer", "reducedSize": true},
    });
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
    pub marker: bool,
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
                    marker: p.header.marker,
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

/// Checks what a subscriber got of one producer's stream against what the publisher sent, as a
/// consumer with `options` (consumerOptions JSON): the router's payload type and the consumer's
/// SSRC, byte-identical payloads, at least 95% of what was sent after the first one arrived,
/// sequence numbers from below 65536, no transport-wide sequence numbers stamped downstream.
/// Panics with what is wrong; returns the share received.
pub fn assert_forwarded(kind: MediaKind, sent: &[Vec<u8>], got: &[&Received], options: &Value) -> f64 {
    assert!(sent.len() > 50, "{kind:?}: the publisher sent {}", sent.len());
    let router_pt = options["rtpParameters"]["codecs"][0]["payloadType"].as_u64().unwrap_or(0) as u8;
    let ssrc = options["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap_or(0) as u32;
    assert_eq!(router_pt, if kind == MediaKind::Audio { 100 } else { 101 });
    assert!(got.iter().all(|p| p.pt == router_pt && p.ssrc == ssrc), "{kind:?}: router PT and consumer SSRC");
    let sent_set: std::collections::HashSet<&[u8]> = sent.iter().map(|p| p.as_slice()).collect();
    let exact = got.iter().filter(|p| sent_set.contains(p.payload.as_slice())).count();
    assert_eq!(exact, got.len(), "{kind:?}: every received payload is byte-identical to a sent one");
    let unique: std::collections::HashSet<&[u8]> = got.iter().map(|p| p.payload.as_slice()).collect();
    // Packets sent before the subscriber's transport connected are not forwarded.
    let first = sent.iter().position(|s| unique.contains(s.as_slice())).unwrap_or(0);
    let expected = sent.len() - first;
    let ratio = unique.len() as f64 / expected as f64;
    println!("{kind:?}: sent {} (after connecting {expected}), received {} unique ({:.1}%)", sent.len(), unique.len(), ratio * 100.0);
    assert!(ratio >= 0.95, "{kind:?}: received {:.1}% of packets", ratio * 100.0);
    assert!(got.iter().map(|p| p.seq).min().is_some_and(|s| s < 65536), "{kind:?}: sequence numbers start below 65536");
    // The engine estimates the downlink: it stamps transport-wide sequence numbers on what it
    // sends (the video consumer's parameters announce the extension).
    let uris: Vec<&str> = options["rtpParameters"]["headerExtensions"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["uri"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(uris.contains(&URI_TWCC), kind == MediaKind::Video, "{uris:?}");
    assert!(got.iter().all(|p| p.transport_cc.is_some()), "{kind:?}: transport-cc stamped downstream");
    ratio
}
