//! A producer's rtpParameters: validation (mediasoup's `validateRtpParameters` and the worker's
//! `RtpParameters::ValidateCodecs`/`ValidateEncodings`), the mapping of the client's payload
//! types to the router's (`getProducerRtpParametersMapping`) and the parameters consumers are
//! built from (`getConsumableRtpParameters`).
use super::encodings::{encoding_plans, parse_scalability_mode, validate_encodings, EncodingPlan};
use super::matching::{codecs_match, CodecView};
use super::{h264, OrtcError};
use crate::rtp_parameters::{
    CodecParameters, ExtensionDirection, MediaKind, ParamValue, RtpCapabilities, RtpCodecParameters, RtpHeaderExtensionParameters,
    RtpParameters,
};

/// One codec of a producer: the client's payload type and the router's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtMapping {
    pub client_pt: u8,
    pub router_pt: u8,
    pub rtx: bool,
}

/// What the engine keeps of an accepted producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerPlan {
    pub mapping: Vec<PtMapping>,
    /// Its RTP streams, one per encoding (simulcast spatial layers, lowest first).
    pub encodings: Vec<EncodingPlan>,
    pub mid: String,
    /// mediasoup's consumable rtpParameters: the router's codecs (PT, MIME type, clock rate,
    /// channels, RTCP feedback) with the producer's codec parameters, each followed by the
    /// router's RTX codec; the router's header extensions that may be sent to consumers.
    pub consumable_codecs: Vec<RtpCodecParameters>,
    pub consumable_extensions: Vec<RtpHeaderExtensionParameters>,
}

impl ProducerPlan {
    /// The router payload types of the producer's media codecs.
    pub fn media_pts(&self) -> Vec<u8> {
        self.consumable_codecs.iter().filter(|c| !c.is_rtx()).map(|c| c.payload_type).collect()
    }

    /// Whether it has several encodings (simulcast).
    pub fn is_simulcast(&self) -> bool {
        self.encodings.len() > 1
    }

    /// Temporal layers per stream: the first scalabilityMode given, 1 without one.
    pub fn temporal_layers(&self) -> u8 {
        self.encodings.iter().find_map(|e| e.scalability_mode.as_deref().and_then(parse_scalability_mode)).map_or(1, |(_, t)| t)
    }

    /// The layers of a single-stream producer whose one encoding names several in its
    /// scalabilityMode (SVC: `L3T3`, `L1T3`, ...): (spatial, temporal, K-SVC: a `_KEY` mode).
    pub fn svc_layers(&self) -> Option<(u8, u8, bool)> {
        let [e] = &self.encodings[..] else { return None };
        let mode = e.scalability_mode.as_deref()?;
        let (spatial, temporal) = parse_scalability_mode(mode)?;
        (spatial > 1 || temporal > 1).then_some((spatial, temporal, mode.contains("_KEY")))
    }

    /// Every SSRC it announced (media and RTX, all encodings).
    pub fn announced_ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.encodings.iter().flat_map(|e| e.ssrc.into_iter().chain(e.rtx_ssrc))
    }
}

fn invalid(message: impl Into<String>) -> OrtcError {
    OrtcError::InvalidParameters(message.into())
}

/// The kind a MIME type names (`audio/...`, `video/...`, any case), if any.
pub(crate) fn mime_kind(mime: &str) -> Option<MediaKind> {
    let (kind, subtype) = mime.split_once('/')?;
    if subtype.is_empty() {
        return None;
    }
    if kind.eq_ignore_ascii_case("audio") {
        Some(MediaKind::Audio)
    } else if kind.eq_ignore_ascii_case("video") {
        Some(MediaKind::Video)
    } else {
        None
    }
}

/// The apt of an RTX codec: a number, as mediasoup requires (`invalid codec apt parameter`).
fn apt(params: &CodecParameters) -> Result<i64, OrtcError> {
    match params.get("apt") {
        Some(ParamValue::Number(n)) => Ok(*n),
        Some(ParamValue::String(_) | ParamValue::Decimal(_)) => Err(invalid("the apt of an RTX codec must be a payload type number")),
        None => Err(invalid("an RTX codec needs an apt parameter")),
    }
}

/// A mid as RFC 8843 allows it and str0m stores it: 1 to 16 visible ASCII characters.
pub(crate) fn check_mid(mid: &str) -> Result<(), OrtcError> {
    if mid.is_empty() || mid.len() > 16 || !mid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("rtpParameters.mid must be 1 to 16 visible ASCII characters"));
    }
    Ok(())
}

/// Checks a producer's rtpParameters for `kind` before anything else reads them.
pub fn validate_rtp_parameters(kind: MediaKind, params: &RtpParameters) -> Result<(), OrtcError> {
    if params.codecs.is_empty() {
        return Err(invalid("rtpParameters.codecs is empty"));
    }
    for (i, codec) in params.codecs.iter().enumerate() {
        let Some(codec_kind) = mime_kind(&codec.mime_type) else {
            return Err(invalid(format!("codec mimeType {:?} is not audio/... or video/...", codec.mime_type)));
        };
        if codec_kind != kind {
            return Err(invalid(format!("codec {} in a {} producer", codec.mime_type, kind.as_str())));
        }
        if codec.payload_type > 127 {
            return Err(invalid(format!("payloadType {} is outside 0..=127", codec.payload_type)));
        }
        if params.codecs[..i].iter().any(|c| c.payload_type == codec.payload_type) {
            return Err(invalid(format!("payloadType {} is used twice", codec.payload_type)));
        }
    }
    for codec in params.codecs.iter().filter(|c| c.is_rtx()) {
        let apt = apt(&codec.parameters)?;
        match params.codecs.iter().find(|c| i64::from(c.payload_type) == apt) {
            Some(media) if !media.is_rtx() => {}
            Some(_) => return Err(invalid("the apt of an RTX codec points to an RTX codec")),
            None => return Err(invalid(format!("the apt of RTX payload type {} points to no codec", codec.payload_type))),
        }
    }
    if params.codecs[0].is_rtx() {
        return Err(invalid("the first codec must be a media codec"));
    }
    if let Some(ext) = params.header_extensions.iter().find(|e| e.id == 0) {
        return Err(invalid(format!("header extension {} has id 0", ext.uri)));
    }
    match &params.mid {
        Some(mid) => check_mid(mid)?,
        None => return Err(invalid("rtpParameters.mid is required (mediasoup-client always sends it)")),
    }
    validate_encodings(kind, params)?;
    Ok(())
}

fn view(c: &RtpCodecParameters) -> CodecView<'_> {
    CodecView { mime_type: &c.mime_type, clock_rate: c.clock_rate, channels: c.channels, parameters: &c.parameters }
}

/// Validates `params` and maps them onto the router's capabilities. Errors: invalid parameters,
/// or a codec (or its RTX) the router lacks (`unsupported_codec`).
pub fn producer_plan(router: &RtpCapabilities, kind: MediaKind, params: &RtpParameters) -> Result<ProducerPlan, OrtcError> {
    validate_rtp_parameters(kind, params)?;
    let mut mapping = Vec::new();
    let mut consumable_codecs: Vec<RtpCodecParameters> = Vec::new();
    for codec in params.codecs.iter().filter(|c| !c.is_rtx()) {
        let Some(cap) = router.codecs.iter().filter(|r| !r.is_rtx()).find(|r| codecs_match(view(codec), r.view(), true)) else {
            return Err(OrtcError::UnsupportedCodec(format!("{} (payloadType {})", codec.mime_type, codec.payload_type)));
        };
        let Some(router_pt) = cap.preferred_payload_type else { continue }; // the router's codecs all have one
                                                                            // mediasoup's matchCodecs(..., {modify: true}): H264 gets the answered profile-level-id.
        let mut parameters = codec.parameters.clone();
        if cap.mime_type.eq_ignore_ascii_case("video/h264") {
            match h264::answer_profile_level_id(&codec.parameters, &cap.parameters) {
                Ok(Some(id)) => {
                    parameters.insert("profile-level-id".into(), ParamValue::String(id));
                }
                Ok(None) => {
                    parameters.remove("profile-level-id");
                }
                Err(_) => return Err(OrtcError::UnsupportedCodec(codec.mime_type.clone())), // checked by the match
            }
        }
        mapping.push(PtMapping { client_pt: codec.payload_type, router_pt, rtx: false });
        // Two of the producer's codecs on one router codec (two Opus entries, say): both are
        // forwarded, but consumers are offered the router codec once, with the first one's
        // parameters (a payload type twice would make the consumer's parameters invalid).
        if consumable_codecs.iter().any(|c| c.payload_type == router_pt) {
            continue;
        }
        consumable_codecs.push(RtpCodecParameters {
            mime_type: cap.mime_type.clone(),
            payload_type: router_pt,
            clock_rate: cap.clock_rate,
            channels: cap.channels,
            parameters,
            rtcp_feedback: cap.rtcp_feedback.clone(),
        });
        if let Some(rtx) = router.rtx_for(router_pt) {
            consumable_codecs.push(RtpCodecParameters {
                mime_type: rtx.mime_type.clone(),
                payload_type: rtx.preferred_payload_type.unwrap_or_default(), // the router's codecs all have one
                clock_rate: rtx.clock_rate,
                channels: None,
                parameters: rtx.parameters.clone(),
                rtcp_feedback: vec![],
            });
        }
    }
    for rtx in params.codecs.iter().filter(|c| c.is_rtx()) {
        let apt = apt(&rtx.parameters)?;
        let media = mapping.iter().find(|m| i64::from(m.client_pt) == apt).copied();
        let router_rtx = media.and_then(|m| router.rtx_for(m.router_pt)).and_then(|r| r.preferred_payload_type);
        let Some(router_pt) = router_rtx else {
            return Err(OrtcError::UnsupportedCodec(format!("no RTX codec on the router for payload type {apt}")));
        };
        mapping.push(PtMapping { client_pt: rtx.payload_type, router_pt, rtx: true });
    }
    let consumable_extensions = router
        .header_extensions
        .iter()
        .filter(|e| e.kind == Some(kind) && matches!(e.direction, ExtensionDirection::Sendrecv | ExtensionDirection::Sendonly))
        .map(|e| RtpHeaderExtensionParameters {
            uri: e.uri.clone(),
            id: e.preferred_id,
            encrypt: e.preferred_encrypt,
            parameters: CodecParameters::new(),
        })
        .collect();
    Ok(ProducerPlan {
        mapping,
        encodings: encoding_plans(params),
        mid: params.mid.clone().unwrap_or_default(),
        consumable_codecs,
        consumable_extensions,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::tests::caps;
    use super::*;

    /// A Chrome-like client: its own payload types.
    pub(crate) fn client_params(kind: MediaKind) -> RtpParameters {
        let json = match kind {
            MediaKind::Video => serde_json::json!({
                "mid": "0",
                "codecs": [
                    {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000, "parameters": {}, "rtcpFeedback": []},
                    {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}}
                ],
                "headerExtensions": [{"uri": super::super::URI_MID, "id": 9}],
                "encodings": [{"ssrc": 1111, "rtx": {"ssrc": 2222}}],
                "rtcp": {"cname": "abc"}
            }),
            MediaKind::Audio => serde_json::json!({
                "mid": "1",
                "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2}],
                "encodings": [{"ssrc": 3333}]
            }),
        };
        serde_json::from_value(json).unwrap()
    }

    fn plan(kind: MediaKind, p: &RtpParameters) -> Result<ProducerPlan, OrtcError> {
        producer_plan(&caps(), kind, p)
    }

    #[test]
    fn two_codecs_on_one_router_codec_are_offered_to_consumers_once() {
        // fuzz/regressions/ortc/duplicate-router-codec: two Opus entries (other fmtp) both
        // mapped to the router's Opus, and every consumer was offered payload type 100 twice.
        let mut params = client_params(MediaKind::Audio);
        let mut second = params.codecs[0].clone();
        second.payload_type = 109;
        second.parameters.insert("stereo".into(), ParamValue::Number(1));
        params.codecs.push(second);
        let plan = producer_plan(&caps(), MediaKind::Audio, &params).unwrap();
        let mapped: Vec<(u8, u8)> = plan.mapping.iter().map(|m| (m.client_pt, m.router_pt)).collect();
        assert_eq!(mapped, vec![(params.codecs[0].payload_type, 100), (109, 100)], "both are forwarded");
        assert_eq!(plan.media_pts(), vec![100], "offered once");
        assert!(!plan.consumable_codecs[0].parameters.contains_key("stereo"), "with the first one's parameters");
        let mut consumer = super::super::consumer_rtp_parameters(&plan, MediaKind::Audio, &caps(), 1, None).unwrap();
        consumer.mid = Some("0".into());
        validate_rtp_parameters(MediaKind::Audio, &consumer).expect("a consumer's parameters are valid parameters");
    }

    #[test]
    fn payload_types_map_to_the_routers() {
        let p = plan(MediaKind::Video, &client_params(MediaKind::Video)).unwrap();
        assert_eq!(
            p.mapping,
            vec![PtMapping { client_pt: 96, router_pt: 101, rtx: false }, PtMapping { client_pt: 97, router_pt: 102, rtx: true }]
        );
        assert_eq!((p.encodings[0].ssrc, p.encodings[0].rtx_ssrc, p.mid.as_str()), (Some(1111), Some(2222), "0"));
        let p = plan(MediaKind::Audio, &client_params(MediaKind::Audio)).unwrap();
        assert_eq!(p.mapping, vec![PtMapping { client_pt: 111, router_pt: 100, rtx: false }]);
    }

    #[test]
    fn consumable_codecs_keep_the_producers_parameters() {
        let mut p = client_params(MediaKind::Audio);
        for (k, v) in [("stereo", 1), ("sprop-stereo", 1), ("usedtx", 1)] {
            p.codecs[0].parameters.insert(k.into(), ParamValue::Number(v));
        }
        let plan = plan(MediaKind::Audio, &p).unwrap();
        let c = &plan.consumable_codecs[0];
        assert_eq!((c.payload_type, c.channels), (100, Some(2)));
        assert_eq!(c.parameters, p.codecs[0].parameters, "the producer's parameters, as mediasoup");
    }

    #[test]
    fn h264_gets_the_answered_profile_level_id() {
        let mut p = client_params(MediaKind::Video);
        p.codecs[0].mime_type = "video/H264".into();
        p.codecs[0].parameters = [
            ("packetization-mode".to_string(), ParamValue::Number(1)),
            ("profile-level-id".to_string(), ParamValue::String("42e034".into())),
        ]
        .into();
        let plan = plan(MediaKind::Video, &p).unwrap();
        assert_eq!(plan.consumable_codecs[0].parameters["profile-level-id"], ParamValue::String("42e01f".into()));
        let mut simulcast_h264 = p.clone();
        simulcast_h264.encodings = simulcast(&["r0", "r1", "r2"]);
        assert!(producer_plan(&caps(), MediaKind::Video, &simulcast_h264).unwrap().is_simulcast(), "H264 simulcast is carried");
        for bad in [ParamValue::Number(640032), ParamValue::String("42001f".into()), ParamValue::String("aé".into())] {
            p.codecs[0].parameters.insert("profile-level-id".into(), bad.clone());
            assert!(matches!(producer_plan(&caps(), MediaKind::Video, &p), Err(OrtcError::UnsupportedCodec(_))), "{bad:?}");
        }
    }

    #[test]
    fn malformed_parameters_are_refused_with_their_reason() {
        let base = client_params(MediaKind::Video);
        type Case = (&'static str, Box<dyn Fn(&mut RtpParameters)>, &'static str);
        let cases: Vec<Case> = vec![
            ("no codecs", Box::new(|p| p.codecs.clear()), "invalid_parameters"),
            ("bad mime", Box::new(|p| p.codecs[0].mime_type = "vp8".into()), "invalid_parameters"),
            ("other kind", Box::new(|p| p.codecs[0].mime_type = "audio/opus".into()), "invalid_parameters"),
            ("pt > 127", Box::new(|p| p.codecs[0].payload_type = 200), "invalid_parameters"),
            ("pt twice", Box::new(|p| p.codecs[1].payload_type = 96), "invalid_parameters"),
            (
                "apt string",
                Box::new(|p| drop(p.codecs[1].parameters.insert("apt".into(), ParamValue::String("96".into())))),
                "invalid_parameters",
            ),
            ("apt dangling", Box::new(|p| drop(p.codecs[1].parameters.insert("apt".into(), ParamValue::Number(50)))), "invalid_parameters"),
            ("rtx first", Box::new(|p| p.codecs.swap(0, 1)), "invalid_parameters"),
            ("ext id 0", Box::new(|p| p.header_extensions[0].id = 0), "invalid_parameters"),
            ("no mid", Box::new(|p| p.mid = None), "invalid_parameters"),
            ("long mid", Box::new(|p| p.mid = Some("x".repeat(17))), "invalid_parameters"),
            ("odd mid", Box::new(|p| p.mid = Some("é".into())), "invalid_parameters"),
            ("no encodings", Box::new(|p| p.encodings.clear()), "invalid_parameters"),
            ("no ssrc", Box::new(|p| p.encodings[0].ssrc = None), "invalid_parameters"),
            ("ssrc 0", Box::new(|p| p.encodings[0].ssrc = Some(0)), "invalid_parameters"),
            ("five encodings", Box::new(|p| p.encodings = vec![p.encodings[0].clone(); 5]), "unsupported_simulcast"),
            ("neither ssrc nor rid", Box::new(|p| p.encodings[0].ssrc = None), "invalid_parameters"),
            (
                "long rid",
                Box::new(|p| {
                    p.encodings[0].ssrc = None;
                    p.encodings[0].rtx = None;
                    p.encodings[0].rid = Some("r0123456789".into());
                }),
                "invalid_parameters",
            ),
            (
                "rtx without ssrc",
                Box::new(|p| {
                    p.encodings[0].ssrc = None;
                    p.encodings[0].rid = Some("r0".into());
                }),
                "invalid_parameters",
            ),
            ("rid twice", Box::new(|p| p.encodings = simulcast(&["a", "a"])), "invalid_parameters"),
            (
                "simulcast of SVC",
                Box::new(|p| {
                    p.encodings = simulcast(&["a", "b"]);
                    p.encodings[1].scalability_mode = Some("L3T3".into());
                }),
                "invalid_parameters",
            ),
            (
                "VP9 simulcast",
                Box::new(|p| {
                    p.encodings = simulcast(&["a", "b"]);
                    p.codecs[0].mime_type = "video/VP9".into();
                }),
                "unsupported_simulcast",
            ),
            ("codecPayloadType rtx", Box::new(|p| p.encodings[0].codec_payload_type = Some(97)), "invalid_parameters"),
            ("bad scalabilityMode", Box::new(|p| p.encodings[0].scalability_mode = Some("L0T9x".into())), "invalid_parameters"),
            ("unknown codec", Box::new(|p| p.codecs[0].mime_type = "video/AV1X".into()), "unsupported_codec"),
        ];
        for (name, change, code) in cases {
            let mut p = base.clone();
            change(&mut p);
            let err = producer_plan(&caps(), MediaKind::Video, &p).expect_err(name);
            assert_eq!(err.code(), code, "{name}: {err}");
        }
        let mut ok = base.clone();
        ok.encodings[0].scalability_mode = Some("L1T3".into());
        assert!(producer_plan(&caps(), MediaKind::Video, &ok).is_ok());
        let mut audio = client_params(MediaKind::Audio);
        audio.encodings = simulcast(&["a", "b"]);
        assert_eq!(producer_plan(&caps(), MediaKind::Audio, &audio).unwrap_err().code(), "unsupported_simulcast", "audio simulcast");
    }

    /// Encodings identified by these rids, `L1T3` each.
    fn simulcast(rids: &[&str]) -> Vec<crate::rtp_parameters::RtpEncodingParameters> {
        rids.iter()
            .map(|r| crate::rtp_parameters::RtpEncodingParameters {
                rid: Some(r.to_string()),
                scalability_mode: Some("L1T3".into()),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn simulcast_encodings_by_rid_or_ssrc_are_kept_in_order() {
        let mut p = client_params(MediaKind::Video);
        p.encodings = simulcast(&["r0", "r1", "r2"]);
        p.encodings[2].max_bitrate = Some(900_000);
        let plan = producer_plan(&caps(), MediaKind::Video, &p).unwrap();
        let rids: Vec<_> = plan.encodings.iter().map(|e| e.rid.as_deref()).collect();
        assert_eq!(rids, [Some("r0"), Some("r1"), Some("r2")]);
        assert!(plan.is_simulcast());
        assert_eq!(plan.temporal_layers(), 3);
        assert_eq!(plan.announced_ssrcs().count(), 0, "rid streams learn their SSRCs from their packets");
        let mut p = client_params(MediaKind::Video);
        p.encodings =
            (0..3).map(|i| serde_json::from_value(serde_json::json!({"ssrc": 10 + 2 * i, "rtx": {"ssrc": 11 + 2 * i}})).unwrap()).collect();
        let plan = producer_plan(&caps(), MediaKind::Video, &p).unwrap();
        assert_eq!(plan.announced_ssrcs().collect::<Vec<_>>(), [10, 11, 12, 13, 14, 15]);
        assert_eq!(plan.temporal_layers(), 1);
        assert_eq!(plan.svc_layers(), None, "simulcast is not SVC");
        let mut svc = client_params(MediaKind::Video);
        for (mode, layers) in
            [("L3T3", Some((3, 3, false))), ("L3T3_KEY", Some((3, 3, true))), ("L1T3", Some((1, 3, false))), ("L1T1", None)]
        {
            svc.encodings[0].scalability_mode = Some(mode.into());
            assert_eq!(producer_plan(&caps(), MediaKind::Video, &svc).unwrap().svc_layers(), layers, "{mode}");
        }
    }

    #[test]
    fn rtx_needs_a_router_rtx() {
        let mut router = caps();
        router.codecs.retain(|c| !c.is_rtx());
        let err = producer_plan(&router, MediaKind::Video, &client_params(MediaKind::Video)).unwrap_err();
        assert_eq!(err.code(), "unsupported_codec");
    }
}
