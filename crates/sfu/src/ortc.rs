//! Pure ORTC functions (mediasoup semantics): the router's rtpCapabilities from its media codecs.
use std::collections::BTreeSet;

use crate::rtp_parameters::{
    CodecParameters, ExtensionDirection, MediaKind, ParamValue, RtcpFeedback, RtcpParameters, RtpCapabilities, RtpCodecCapability,
    RtpCodecParameters, RtpEncodingParameters, RtpHeaderExtension, RtpHeaderExtensionParameters, RtpParameters, RtxSsrc,
};

pub const URI_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub const URI_RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
pub const URI_RRID: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
pub const URI_ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
pub const URI_TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
pub const URI_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
pub const URI_VIDEO_ORIENTATION: &str = "urn:3gpp:video-orientation";
pub const URI_TOFFSET: &str = "urn:ietf:params:rtp-hdrext:toffset";
pub const URI_ABS_CAPTURE_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
pub const URI_PLAYOUT_DELAY: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrtcError {
    #[error("media codec {0} is RTX: RTX codecs are added by the router, not configured")]
    RtxConfigured(String),
    #[error("media codec {mime} has kind {kind:?} but its MIME type says otherwise")]
    KindMismatch { mime: String, kind: MediaKind },
    #[error("payload type {0} is used twice or is outside 96..=127")]
    BadPayloadType(u8),
    #[error("no free dynamic payload type left")]
    NoFreePayloadType,
    #[error("no media codecs configured")]
    NoCodecs,
    #[error("the router does not support codec {0}")]
    UnsupportedCodec(String),
    #[error("RTX payload type {0} refers to no media codec (apt)")]
    DanglingRtx(u8),
    #[error("rtpParameters have no media codec")]
    NoMediaCodec,
    #[error("the codec list mixes kinds or does not match the producer's kind")]
    WrongKind,
    #[error("the consuming device supports none of the producer's codecs")]
    NotConsumable,
}

fn params(pairs: &[(&str, ParamValue)]) -> CodecParameters {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// The default codecs: Opus 48000/2, VP8, VP9 (profile 0) and H264 (constrained baseline).
pub fn default_media_codecs() -> Vec<RtpCodecCapability> {
    let codec = |kind, mime: &str, clock_rate, channels, parameters| RtpCodecCapability {
        kind,
        mime_type: mime.into(),
        preferred_payload_type: None,
        clock_rate,
        channels,
        parameters,
        rtcp_feedback: vec![],
    };
    vec![
        codec(
            MediaKind::Audio,
            "audio/opus",
            48000,
            Some(2),
            params(&[("minptime", ParamValue::Number(10)), ("useinbandfec", ParamValue::Number(1))]),
        ),
        codec(MediaKind::Video, "video/VP8", 90000, None, CodecParameters::new()),
        codec(MediaKind::Video, "video/VP9", 90000, None, params(&[("profile-id", ParamValue::Number(0))])),
        codec(
            MediaKind::Video,
            "video/H264",
            90000,
            None,
            params(&[
                ("level-asymmetry-allowed", ParamValue::Number(1)),
                ("packetization-mode", ParamValue::Number(1)),
                ("profile-level-id", ParamValue::String("42e01f".into())),
            ]),
        ),
    ]
}

fn feedback(kind: MediaKind) -> Vec<RtcpFeedback> {
    match kind {
        MediaKind::Audio => vec![RtcpFeedback::new("transport-cc", "")],
        MediaKind::Video => vec![
            RtcpFeedback::new("nack", ""),
            RtcpFeedback::new("nack", "pli"),
            RtcpFeedback::new("ccm", "fir"),
            RtcpFeedback::new("goog-remb", ""),
            RtcpFeedback::new("transport-cc", ""),
        ],
    }
}

/// The router's header extensions (uri, kind, preferred id, direction).
pub fn router_header_extensions() -> Vec<RtpHeaderExtension> {
    use ExtensionDirection::{Recvonly, Sendrecv};
    use MediaKind::{Audio, Video};
    let table: [(MediaKind, &str, u8, ExtensionDirection); 14] = [
        (Audio, URI_MID, 1, Sendrecv),
        (Video, URI_MID, 1, Sendrecv),
        (Video, URI_RID, 2, Recvonly),
        (Video, URI_RRID, 3, Recvonly),
        (Audio, URI_ABS_SEND_TIME, 4, Sendrecv),
        (Video, URI_ABS_SEND_TIME, 4, Sendrecv),
        (Audio, URI_TWCC, 5, Recvonly),
        (Video, URI_TWCC, 5, Sendrecv),
        (Audio, URI_AUDIO_LEVEL, 10, Sendrecv),
        (Video, URI_VIDEO_ORIENTATION, 11, Sendrecv),
        (Video, URI_TOFFSET, 12, Sendrecv),
        (Audio, URI_ABS_CAPTURE_TIME, 13, Sendrecv),
        (Video, URI_ABS_CAPTURE_TIME, 13, Sendrecv),
        (Video, URI_PLAYOUT_DELAY, 14, Sendrecv),
    ];
    table
        .iter()
        .map(|&(kind, uri, preferred_id, direction)| RtpHeaderExtension {
            kind: Some(kind),
            uri: uri.into(),
            preferred_id,
            preferred_encrypt: false,
            direction,
        })
        .collect()
}

/// Dynamic payload types in the order they are handed out: 100..=127, then 96..=99.
fn dynamic_pts() -> impl Iterator<Item = u8> {
    (100..=127).chain(96..=99)
}

/// The router's rtpCapabilities for `media_codecs` (DESIGN.md's ORTC rules).
pub fn router_rtp_capabilities(media_codecs: &[RtpCodecCapability]) -> Result<RtpCapabilities, OrtcError> {
    if media_codecs.is_empty() {
        return Err(OrtcError::NoCodecs);
    }
    let mut used = BTreeSet::new();
    for codec in media_codecs {
        if codec.is_rtx() {
            return Err(OrtcError::RtxConfigured(codec.mime_type.clone()));
        }
        let mime_kind = codec.mime_type.split('/').next().unwrap_or("").to_ascii_lowercase();
        if mime_kind != codec.kind.as_str() {
            return Err(OrtcError::KindMismatch { mime: codec.mime_type.clone(), kind: codec.kind });
        }
        if let Some(pt) = codec.preferred_payload_type {
            if !(96..=127).contains(&pt) || !used.insert(pt) {
                return Err(OrtcError::BadPayloadType(pt));
            }
        }
    }
    let next_free = |used: &mut BTreeSet<u8>| -> Result<u8, OrtcError> {
        let pt = dynamic_pts().find(|pt| !used.contains(pt)).ok_or(OrtcError::NoFreePayloadType)?;
        used.insert(pt);
        Ok(pt)
    };
    let mut codecs = Vec::new();
    for codec in media_codecs {
        let pt = match codec.preferred_payload_type {
            Some(pt) => pt,
            None => next_free(&mut used)?,
        };
        let mut out = codec.clone();
        out.preferred_payload_type = Some(pt);
        out.rtcp_feedback = feedback(codec.kind);
        if codec.kind == MediaKind::Audio {
            out.channels = Some(codec.channels.unwrap_or(1));
        }
        codecs.push(out);
        if codec.kind == MediaKind::Video {
            codecs.push(RtpCodecCapability {
                kind: MediaKind::Video,
                mime_type: "video/rtx".into(),
                preferred_payload_type: Some(next_free(&mut used)?),
                clock_rate: codec.clock_rate,
                channels: None,
                parameters: params(&[("apt", ParamValue::Number(i64::from(pt)))]),
                rtcp_feedback: vec![],
            });
        }
    }
    Ok(RtpCapabilities { codecs, header_extensions: router_header_extensions() })
}

fn param_i64(p: &CodecParameters, key: &str, default: i64) -> i64 {
    p.get(key).and_then(ParamValue::as_i64).unwrap_or(default)
}

/// Whether two codecs are the same codec for forwarding purposes.
fn codec_matches(a_mime: &str, a_clock: u32, a_channels: Option<u8>, a_params: &CodecParameters, b: &RtpCodecCapability) -> bool {
    if !a_mime.eq_ignore_ascii_case(&b.mime_type) || a_clock != b.clock_rate {
        return false;
    }
    let mime = a_mime.to_ascii_lowercase();
    if mime.starts_with("audio/") && a_channels.unwrap_or(1) != b.channels.unwrap_or(1) {
        return false;
    }
    match mime.as_str() {
        "video/h264" => {
            let profile = |p: &CodecParameters| match p.get("profile-level-id") {
                Some(ParamValue::String(s)) if s.len() >= 2 => s[..2].to_ascii_lowercase(),
                _ => "42".to_string(),
            };
            param_i64(a_params, "packetization-mode", 0) == param_i64(&b.parameters, "packetization-mode", 0)
                && profile(a_params) == profile(&b.parameters)
        }
        "video/vp9" => param_i64(a_params, "profile-id", 0) == param_i64(&b.parameters, "profile-id", 0),
        _ => true,
    }
}

/// One codec of a producer: the client's payload type and the router's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtMapping {
    pub client_pt: u8,
    pub router_pt: u8,
    pub rtx: bool,
}

/// Maps a producer's codecs (client payload types) to the router's (DESIGN.md "Producer").
pub fn map_producer_codecs(router: &RtpCapabilities, kind: MediaKind, params: &RtpParameters) -> Result<Vec<PtMapping>, OrtcError> {
    let mut out = Vec::new();
    for codec in params.codecs.iter().filter(|c| !c.is_rtx()) {
        if !codec.mime_type.to_ascii_lowercase().starts_with(kind.as_str()) {
            return Err(OrtcError::WrongKind);
        }
        let router_codec = router
            .codecs
            .iter()
            .filter(|r| !r.is_rtx() && r.kind == kind)
            .find(|r| codec_matches(&codec.mime_type, codec.clock_rate, codec.channels, &codec.parameters, r))
            .ok_or_else(|| OrtcError::UnsupportedCodec(codec.mime_type.clone()))?;
        let router_pt = router_codec.preferred_payload_type.ok_or(OrtcError::NoMediaCodec)?;
        out.push(PtMapping { client_pt: codec.payload_type, router_pt, rtx: false });
    }
    if out.is_empty() {
        return Err(OrtcError::NoMediaCodec);
    }
    for rtx in params.codecs.iter().filter(|c| c.is_rtx()) {
        let apt = param_i64(&rtx.parameters, "apt", -1);
        let media = out.iter().find(|m| i64::from(m.client_pt) == apt).copied().ok_or(OrtcError::DanglingRtx(rtx.payload_type))?;
        let router_rtx = router
            .codecs
            .iter()
            .find(|r| r.is_rtx() && param_i64(&r.parameters, "apt", -1) == i64::from(media.router_pt))
            .and_then(|r| r.preferred_payload_type);
        if let Some(router_pt) = router_rtx {
            out.push(PtMapping { client_pt: rtx.payload_type, router_pt, rtx: true });
        }
    }
    Ok(out)
}

/// A consumer's rtpParameters for a peer's receive capabilities (DESIGN.md "Consumer"), without
/// its mid. `producer_pts` are the router payload types the producer sends.
pub fn consumer_rtp_parameters(
    router: &RtpCapabilities,
    kind: MediaKind,
    producer_pts: &[u8],
    peer: &RtpCapabilities,
    ssrc: u32,
    cname: Option<String>,
) -> Result<RtpParameters, OrtcError> {
    let mut codecs: Vec<RtpCodecParameters> = Vec::new();
    for rc in router.codecs.iter().filter(|c| c.kind == kind && !c.is_rtx()) {
        let Some(pt) = rc.preferred_payload_type else { continue };
        if !producer_pts.contains(&pt) {
            continue;
        }
        let Some(pc) = peer
            .codecs
            .iter()
            .find(|p| !p.is_rtx() && p.kind == kind && codec_matches(&rc.mime_type, rc.clock_rate, rc.channels, &rc.parameters, p))
        else {
            continue;
        };
        // Feedback both sides know.
        let rtcp_feedback = rc.rtcp_feedback.iter().filter(|f| pc.rtcp_feedback.contains(f)).cloned().collect::<Vec<_>>();
        codecs.push(RtpCodecParameters {
            mime_type: rc.mime_type.clone(),
            payload_type: pt,
            clock_rate: rc.clock_rate,
            channels: rc.channels,
            parameters: rc.parameters.clone(),
            rtcp_feedback,
        });
        let router_rtx = router.codecs.iter().find(|r| r.is_rtx() && param_i64(&r.parameters, "apt", -1) == i64::from(pt));
        let peer_has_rtx = peer.codecs.iter().any(|p| p.is_rtx());
        if let (Some(rtx), true) = (router_rtx, peer_has_rtx) {
            if let Some(rtx_pt) = rtx.preferred_payload_type {
                codecs.push(RtpCodecParameters {
                    mime_type: rtx.mime_type.clone(),
                    payload_type: rtx_pt,
                    clock_rate: rtx.clock_rate,
                    channels: None,
                    parameters: rtx.parameters.clone(),
                    rtcp_feedback: vec![],
                });
            }
        }
    }
    if codecs.first().is_none_or(|c| c.is_rtx()) {
        return Err(OrtcError::NotConsumable);
    }
    let mut header_extensions: Vec<RtpHeaderExtensionParameters> = router
        .header_extensions
        .iter()
        .filter(|e| e.kind == Some(kind))
        .filter(|e| matches!(e.direction, ExtensionDirection::Sendrecv | ExtensionDirection::Sendonly))
        .filter(|e| peer.header_extensions.iter().any(|p| p.kind == e.kind && p.uri == e.uri && p.preferred_id == e.preferred_id))
        .map(|e| RtpHeaderExtensionParameters {
            uri: e.uri.clone(),
            id: e.preferred_id,
            encrypt: false,
            parameters: CodecParameters::new(),
        })
        .collect();
    let has = |exts: &[RtpHeaderExtensionParameters], uri: &str| exts.iter().any(|e| e.uri == uri);
    if has(&header_extensions, URI_TWCC) {
        for c in &mut codecs {
            c.rtcp_feedback.retain(|f| f.kind != "goog-remb");
        }
    } else if has(&header_extensions, URI_ABS_SEND_TIME) {
        for c in &mut codecs {
            c.rtcp_feedback.retain(|f| f.kind != "transport-cc");
        }
    } else {
        for c in &mut codecs {
            c.rtcp_feedback.retain(|f| f.kind != "transport-cc" && f.kind != "goog-remb");
        }
    }
    header_extensions.sort_by_key(|e| e.id);
    let with_rtx = codecs.iter().any(|c| c.is_rtx());
    Ok(RtpParameters {
        mid: None,
        codecs,
        header_extensions,
        encodings: vec![RtpEncodingParameters {
            ssrc: Some(ssrc),
            rtx: with_rtx.then_some(RtxSsrc { ssrc: ssrc + 1 }),
            ..Default::default()
        }],
        rtcp: RtcpParameters { cname, reduced_size: Some(true), mux: Some(true) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> RtpCapabilities {
        router_rtp_capabilities(&default_media_codecs()).unwrap()
    }

    #[test]
    fn payload_types_are_assigned_from_100_with_rtx_after_each_video_codec() {
        let c = caps();
        let summary: Vec<(String, u8)> = c.codecs.iter().map(|c| (c.mime_type.clone(), c.preferred_payload_type.unwrap())).collect();
        let expected = [
            ("audio/opus", 100),
            ("video/VP8", 101),
            ("video/rtx", 102),
            ("video/VP9", 103),
            ("video/rtx", 104),
            ("video/H264", 105),
            ("video/rtx", 106),
        ];
        let expected: Vec<(String, u8)> = expected.iter().map(|(m, p)| (m.to_string(), *p)).collect();
        assert_eq!(summary, expected);
        for (i, codec) in c.codecs.iter().enumerate() {
            if codec.is_rtx() {
                let apt = codec.parameters["apt"].as_i64().unwrap();
                assert_eq!(apt, i64::from(c.codecs[i - 1].preferred_payload_type.unwrap()));
            }
        }
    }

    #[test]
    fn configured_payload_types_are_kept_and_skipped() {
        let mut codecs = default_media_codecs();
        codecs[0].preferred_payload_type = Some(101);
        codecs.truncate(2);
        let c = router_rtp_capabilities(&codecs).unwrap();
        let pts: Vec<u8> = c.codecs.iter().map(|c| c.preferred_payload_type.unwrap()).collect();
        assert_eq!(pts, vec![101, 100, 102]);
    }

    #[test]
    fn after_127_the_range_wraps_to_96() {
        let mut codecs = Vec::new();
        for i in 0..15 {
            let mut vp8 = default_media_codecs()[1].clone();
            vp8.parameters.insert("x".into(), ParamValue::Number(i));
            codecs.push(vp8);
        }
        let c = router_rtp_capabilities(&codecs).unwrap();
        let pts: Vec<u8> = c.codecs.iter().map(|c| c.preferred_payload_type.unwrap()).collect();
        assert_eq!(&pts[26..30], &[126, 127, 96, 97]);
        codecs.push(default_media_codecs()[1].clone());
        codecs.push(default_media_codecs()[1].clone());
        assert_eq!(router_rtp_capabilities(&codecs), Err(OrtcError::NoFreePayloadType));
    }

    #[test]
    fn feedback_per_kind() {
        let c = caps();
        let fb = |i: usize| -> Vec<String> {
            c.codecs[i].rtcp_feedback.iter().map(|f| format!("{} {}", f.kind, f.parameter).trim().to_string()).collect()
        };
        assert_eq!(fb(0), vec!["transport-cc"]);
        assert_eq!(fb(1), vec!["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"]);
        assert!(fb(2).is_empty(), "rtx has no feedback");
    }

    #[test]
    fn header_extensions_follow_the_table() {
        let c = caps();
        let find = |kind: MediaKind, uri: &str| {
            c.header_extensions.iter().find(|e| e.kind == Some(kind) && e.uri == uri).map(|e| (e.preferred_id, e.direction))
        };
        assert_eq!(find(MediaKind::Audio, URI_MID), Some((1, ExtensionDirection::Sendrecv)));
        assert_eq!(find(MediaKind::Video, URI_RID), Some((2, ExtensionDirection::Recvonly)));
        assert_eq!(find(MediaKind::Video, URI_RRID), Some((3, ExtensionDirection::Recvonly)));
        assert_eq!(find(MediaKind::Video, URI_ABS_SEND_TIME), Some((4, ExtensionDirection::Sendrecv)));
        assert_eq!(find(MediaKind::Audio, URI_TWCC), Some((5, ExtensionDirection::Recvonly)));
        assert_eq!(find(MediaKind::Video, URI_TWCC), Some((5, ExtensionDirection::Sendrecv)));
        assert_eq!(find(MediaKind::Audio, URI_AUDIO_LEVEL), Some((10, ExtensionDirection::Sendrecv)));
        assert_eq!(find(MediaKind::Video, URI_VIDEO_ORIENTATION), Some((11, ExtensionDirection::Sendrecv)));
        assert_eq!(find(MediaKind::Video, URI_TOFFSET), Some((12, ExtensionDirection::Sendrecv)));
        assert_eq!(find(MediaKind::Video, URI_ABS_CAPTURE_TIME), Some((13, ExtensionDirection::Sendrecv)));
        assert_eq!(find(MediaKind::Video, URI_PLAYOUT_DELAY), Some((14, ExtensionDirection::Sendrecv)));
        assert!(c.header_extensions.iter().all(|e| (1..=16).contains(&e.preferred_id)), "str0m caps ids at 16");
    }

    #[test]
    fn json_shape_is_mediasoups() {
        let v = serde_json::to_value(caps()).unwrap();
        let opus = &v["codecs"][0];
        assert_eq!(opus["mimeType"], "audio/opus");
        assert_eq!(opus["preferredPayloadType"], 100);
        assert_eq!(opus["clockRate"], 48000);
        assert_eq!(opus["channels"], 2);
        assert_eq!(opus["parameters"]["useinbandfec"], 1);
        assert_eq!(opus["rtcpFeedback"][0]["type"], "transport-cc");
        assert_eq!(v["codecs"][2]["parameters"]["apt"], 101);
        assert_eq!(v["codecs"][5]["parameters"]["profile-level-id"], "42e01f");
        assert_eq!(v["headerExtensions"][0]["preferredId"], 1);
        assert_eq!(v["headerExtensions"][0]["direction"], "sendrecv");
    }

    #[test]
    fn bad_configurations_are_errors() {
        assert_eq!(router_rtp_capabilities(&[]), Err(OrtcError::NoCodecs));
        let mut rtx = default_media_codecs()[1].clone();
        rtx.mime_type = "video/rtx".into();
        assert!(matches!(router_rtp_capabilities(&[rtx]), Err(OrtcError::RtxConfigured(_))));
        let mut wrong = default_media_codecs()[0].clone();
        wrong.kind = MediaKind::Video;
        assert!(matches!(router_rtp_capabilities(&[wrong]), Err(OrtcError::KindMismatch { .. })));
        let mut a = default_media_codecs();
        a[0].preferred_payload_type = Some(100);
        a[1].preferred_payload_type = Some(100);
        assert_eq!(router_rtp_capabilities(&a), Err(OrtcError::BadPayloadType(100)));
    }

    /// A Chrome-like client: its own payload types.
    fn client_params(kind: MediaKind) -> RtpParameters {
        let json = match kind {
            MediaKind::Video => serde_json::json!({
                "mid": "0",
                "codecs": [
                    {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000, "parameters": {}, "rtcpFeedback": []},
                    {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}}
                ],
                "headerExtensions": [{"uri": URI_MID, "id": 9}],
                "encodings": [{"ssrc": 1111, "rtx": {"ssrc": 2222}}],
                "rtcp": {"cname": "abc"}
            }),
            MediaKind::Audio => serde_json::json!({
                "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2}],
                "encodings": [{"ssrc": 3333}]
            }),
        };
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn producer_payload_types_map_to_the_routers() {
        let map = map_producer_codecs(&caps(), MediaKind::Video, &client_params(MediaKind::Video)).unwrap();
        assert_eq!(
            map,
            vec![PtMapping { client_pt: 96, router_pt: 101, rtx: false }, PtMapping { client_pt: 97, router_pt: 102, rtx: true }]
        );
        let map = map_producer_codecs(&caps(), MediaKind::Audio, &client_params(MediaKind::Audio)).unwrap();
        assert_eq!(map, vec![PtMapping { client_pt: 111, router_pt: 100, rtx: false }]);
    }

    #[test]
    fn unsupported_or_inconsistent_producers_are_refused() {
        let mut p = client_params(MediaKind::Video);
        p.codecs[0].mime_type = "video/AV1".into();
        assert_eq!(map_producer_codecs(&caps(), MediaKind::Video, &p), Err(OrtcError::UnsupportedCodec("video/AV1".into())));
        let p = client_params(MediaKind::Audio);
        assert_eq!(map_producer_codecs(&caps(), MediaKind::Video, &p), Err(OrtcError::WrongKind));
        let mut p = client_params(MediaKind::Video);
        p.codecs[1].parameters.insert("apt".into(), ParamValue::Number(50));
        assert_eq!(map_producer_codecs(&caps(), MediaKind::Video, &p), Err(OrtcError::DanglingRtx(97)));
        let mut p = client_params(MediaKind::Audio);
        p.codecs[0].channels = Some(1);
        assert!(matches!(map_producer_codecs(&caps(), MediaKind::Audio, &p), Err(OrtcError::UnsupportedCodec(_))));
    }

    #[test]
    fn consumer_parameters_use_router_pts_and_matching_extensions() {
        // A device loaded with the router's capabilities receives with the router's ids.
        let peer = caps();
        let p = consumer_rtp_parameters(&caps(), MediaKind::Video, &[101, 102], &peer, 123456789, Some("abc".into())).unwrap();
        let pts: Vec<u8> = p.codecs.iter().map(|c| c.payload_type).collect();
        assert_eq!(pts, vec![101, 102]);
        assert_eq!(p.encodings[0].ssrc, Some(123456789));
        assert_eq!(p.encodings[0].rtx, Some(RtxSsrc { ssrc: 123456790 }));
        assert_eq!(p.rtcp.cname.as_deref(), Some("abc"));
        let uris: Vec<&str> = p.header_extensions.iter().map(|e| e.uri.as_str()).collect();
        assert!(uris.contains(&URI_MID) && uris.contains(&URI_TWCC));
        assert!(!uris.contains(&URI_RID), "recvonly extensions are not sent");
        let fb: Vec<&str> = p.codecs[0].rtcp_feedback.iter().map(|f| f.kind.as_str()).collect();
        assert!(fb.contains(&"transport-cc") && !fb.contains(&"goog-remb"), "{fb:?}");

        let audio = consumer_rtp_parameters(&caps(), MediaKind::Audio, &[100], &peer, 5, None).unwrap();
        assert_eq!(audio.codecs.len(), 1);
        assert_eq!(audio.encodings[0].rtx, None);
        let uris: Vec<&str> = audio.header_extensions.iter().map(|e| e.uri.as_str()).collect();
        assert!(!uris.contains(&URI_TWCC), "audio transport-cc is recvonly on the router");
        let fb: Vec<&str> = audio.codecs[0].rtcp_feedback.iter().map(|f| f.kind.as_str()).collect();
        assert!(fb.is_empty(), "abs-send-time present: transport-cc feedback dropped, got {fb:?}");
    }

    #[test]
    fn extensions_with_other_ids_are_dropped_and_unsupported_peers_refused() {
        let mut peer = caps();
        for e in &mut peer.header_extensions {
            if e.uri == URI_TWCC {
                e.preferred_id = 7;
            }
        }
        let p = consumer_rtp_parameters(&caps(), MediaKind::Video, &[101, 102], &peer, 1, None).unwrap();
        assert!(p.header_extensions.iter().all(|e| e.uri != URI_TWCC));
        let fb: Vec<&str> = p.codecs[0].rtcp_feedback.iter().map(|f| f.kind.as_str()).collect();
        assert!(fb.contains(&"goog-remb") && !fb.contains(&"transport-cc"), "{fb:?}");

        let mut no_vp8 = caps();
        no_vp8.codecs.retain(|c| c.mime_type != "video/VP8");
        assert_eq!(consumer_rtp_parameters(&caps(), MediaKind::Video, &[101, 102], &no_vp8, 1, None), Err(OrtcError::NotConsumable));
    }
}
