//! Pure ORTC functions with mediasoup's semantics (its `ortc.ts` and the worker's
//! `RtpParameters` checks): the router's rtpCapabilities from its media codecs ([this module]),
//! producer validation and payload-type mapping ([`producer`]), consumer parameters
//! ([`consumer`]), codec matching and H264 profiles ([`h264`]). No sockets, no state.
use std::collections::BTreeSet;

use crate::rtp_parameters::{
    CodecParameters, ExtensionDirection, MediaKind, ParamValue, RtcpFeedback, RtpCapabilities, RtpCodecCapability, RtpCodecParameters,
    RtpHeaderExtension,
};

pub mod consumer;
pub mod encodings;
pub mod h264;
mod matching;
pub mod producer;

pub use consumer::consumer_rtp_parameters;
pub use encodings::EncodingPlan;
pub use producer::{producer_plan, validate_rtp_parameters, ProducerPlan, PtMapping};

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

/// Why capabilities or parameters were refused. [`OrtcError::code`] is the stable signaling code.
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
    /// Client parameters that are malformed or inconsistent.
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    /// A codec (or its RTX) the router does not have.
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(String),
    /// More than one encoding, or encodings by rid: simulcast is not carried yet.
    #[error("{0}")]
    UnsupportedSimulcast(String),
    #[error("the consuming device supports none of the producer's codecs")]
    NotConsumable,
}

impl OrtcError {
    /// The signaling error code (docs/signaling-errors.md).
    pub fn code(&self) -> &'static str {
        match self {
            OrtcError::InvalidParameters(_) => "invalid_parameters",
            OrtcError::UnsupportedCodec(_) => "unsupported_codec",
            OrtcError::UnsupportedSimulcast(_) => "unsupported_simulcast",
            OrtcError::NotConsumable => "cannot_consume",
            _ => "invalid_configuration",
        }
    }
}

impl RtpCodecCapability {
    pub(crate) fn view(&self) -> matching::CodecView<'_> {
        matching::CodecView {
            mime_type: &self.mime_type,
            clock_rate: self.clock_rate,
            channels: self.channels,
            parameters: &self.parameters,
        }
    }
}

impl RtpCodecParameters {
    pub(crate) fn view(&self) -> matching::CodecView<'_> {
        matching::CodecView {
            mime_type: &self.mime_type,
            clock_rate: self.clock_rate,
            channels: self.channels,
            parameters: &self.parameters,
        }
    }

    /// The `apt` of an RTX codec, when it is a number.
    pub(crate) fn apt(&self) -> Option<i64> {
        match self.parameters.get("apt") {
            Some(ParamValue::Number(n)) => Some(*n),
            _ => None,
        }
    }
}

impl RtpCapabilities {
    /// The RTX codec whose apt is `pt`.
    pub(crate) fn rtx_for(&self, pt: u8) -> Option<&RtpCodecCapability> {
        self.codecs.iter().find(|c| c.is_rtx() && matches!(c.parameters.get("apt"), Some(ParamValue::Number(n)) if *n == i64::from(pt)))
    }
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

/// The router's rtpCapabilities for `media_codecs` (docs/architecture.md, "ORTC rules").
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

/// A send transport's capabilities (`device.sendRtpCapabilities`): they must name at least one
/// media codec the router has, or nothing could ever be produced on it.
pub fn validate_send_capabilities(router: &RtpCapabilities, caps: &RtpCapabilities) -> Result<(), OrtcError> {
    for codec in &caps.codecs {
        if producer::mime_kind(&codec.mime_type) != Some(codec.kind) {
            return Err(OrtcError::InvalidParameters(format!("codec mimeType {:?} does not match its kind", codec.mime_type)));
        }
    }
    let usable =
        caps.codecs.iter().filter(|c| !c.is_rtx()).any(|c| router.codecs.iter().any(|r| matching::codecs_match(c.view(), r.view(), true)));
    if !usable {
        return Err(OrtcError::InvalidParameters(
            "rtpCapabilities name no codec this router supports (give device.sendRtpCapabilities)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn caps() -> RtpCapabilities {
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
    fn send_capabilities_need_a_router_codec() {
        assert!(validate_send_capabilities(&caps(), &caps()).is_ok());
        let err = validate_send_capabilities(&caps(), &RtpCapabilities::default()).unwrap_err();
        assert_eq!(err.code(), "invalid_parameters");
        let mut only_av1 = caps();
        only_av1.codecs.retain(|c| c.mime_type == "video/VP8");
        only_av1.codecs[0].mime_type = "video/AV1".into();
        assert!(validate_send_capabilities(&caps(), &only_av1).is_err());
        let mut wrong_kind = caps();
        wrong_kind.codecs[0].kind = MediaKind::Video;
        assert!(validate_send_capabilities(&caps(), &wrong_kind).is_err());
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
}
