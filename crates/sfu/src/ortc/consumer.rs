//! A consumer's rtpParameters for a receiving device: mediasoup's `getConsumerRtpParameters`
//! (ortc.ts) applied to a producer's consumable parameters ([`ProducerPlan`]).
use super::encodings::{consumer_max_bitrate, consumer_scalability_mode};
use super::matching::codecs_match;
use super::producer::ProducerPlan;
use super::{OrtcError, URI_ABS_SEND_TIME, URI_TWCC};
use crate::rtp_parameters::{
    MediaKind, RtcpParameters, RtpCapabilities, RtpCodecParameters, RtpEncodingParameters, RtpParameters, RtxSsrc,
};

/// The consumer's parameters (without its mid) for a device with receive capabilities `peer`.
///
/// - Codecs: the consumable codecs the device supports (strict match, the device's codec first
///   found), in the producer's order, each with the device's RTCP feedback. RTX only for video
///   (mediasoup's `enableRtx` default), and only while its media codec stays; the first codec
///   must be a media codec, else [`OrtcError::NotConsumable`].
/// - Header extensions: the consumable ones whose uri and id the device has.
/// - Feedback: transport-cc if its extension stays (then no goog-remb), else goog-remb if
///   abs-send-time stays, else neither.
/// - One encoding: `ssrc`, RTX at `ssrc + 1`, the producer's scalabilityMode (`L<streams>T<n>`
///   for simulcast) and its largest maxBitrate.
/// - rtcp: the producer's cname, reduced size, mux.
pub fn consumer_rtp_parameters(
    plan: &ProducerPlan,
    kind: MediaKind,
    peer: &RtpCapabilities,
    ssrc: u32,
    cname: Option<String>,
) -> Result<RtpParameters, OrtcError> {
    let enable_rtx = kind == MediaKind::Video;
    let mut codecs: Vec<RtpCodecParameters> = Vec::new();
    for codec in &plan.consumable_codecs {
        if codec.is_rtx() && !enable_rtx {
            continue;
        }
        let Some(cap) = peer.codecs.iter().find(|cap| codecs_match(cap.view(), codec.view(), true)) else { continue };
        let mut codec = codec.clone();
        codec.rtcp_feedback =
            cap.rtcp_feedback.iter().filter(|fb| enable_rtx || fb.kind != "nack" || !fb.parameter.is_empty()).cloned().collect();
        codecs.push(codec);
    }
    let media: Vec<u8> = codecs.iter().filter(|c| !c.is_rtx()).map(|c| c.payload_type).collect();
    codecs.retain(|c| !c.is_rtx() || c.apt().is_some_and(|apt| media.iter().any(|pt| i64::from(*pt) == apt)));
    if codecs.first().is_none_or(|c| c.is_rtx()) {
        return Err(OrtcError::NotConsumable);
    }
    let rtx_supported = codecs.iter().any(|c| c.is_rtx());
    let header_extensions: Vec<_> = plan
        .consumable_extensions
        .iter()
        .filter(|e| peer.header_extensions.iter().any(|cap| cap.preferred_id == e.id && cap.uri == e.uri))
        .cloned()
        .collect();
    let has = |uri: &str| header_extensions.iter().any(|e| e.uri == uri);
    let drop_feedback: &[&str] = if has(URI_TWCC) {
        &["goog-remb"]
    } else if has(URI_ABS_SEND_TIME) {
        &["transport-cc"]
    } else {
        &["transport-cc", "goog-remb"]
    };
    for c in &mut codecs {
        c.rtcp_feedback.retain(|f| !drop_feedback.contains(&f.kind.as_str()));
    }
    Ok(RtpParameters {
        mid: None,
        codecs,
        header_extensions,
        encodings: vec![RtpEncodingParameters {
            ssrc: Some(ssrc),
            rtx: rtx_supported.then_some(RtxSsrc { ssrc: ssrc.wrapping_add(1) }),
            scalability_mode: consumer_scalability_mode(&plan.encodings),
            max_bitrate: consumer_max_bitrate(&plan.encodings),
            ..Default::default()
        }],
        rtcp: RtcpParameters { cname, reduced_size: Some(true), mux: Some(true) },
    })
}

#[cfg(test)]
mod tests {
    use super::super::producer::{producer_plan, tests::client_params};
    use super::super::tests::caps;
    use super::super::URI_RID;
    use super::*;

    fn plan(kind: MediaKind) -> ProducerPlan {
        producer_plan(&caps(), kind, &client_params(kind)).unwrap()
    }

    #[test]
    fn router_pts_and_matching_extensions() {
        // A device loaded with the router's capabilities receives with the router's ids.
        let peer = caps();
        let p = consumer_rtp_parameters(&plan(MediaKind::Video), MediaKind::Video, &peer, 123456789, Some("abc".into())).unwrap();
        let pts: Vec<u8> = p.codecs.iter().map(|c| c.payload_type).collect();
        assert_eq!(pts, vec![101, 102]);
        assert_eq!(p.encodings[0].ssrc, Some(123456789));
        assert_eq!(p.encodings[0].rtx, Some(RtxSsrc { ssrc: 123456790 }));
        assert_eq!(p.rtcp.cname.as_deref(), Some("abc"));
        let uris: Vec<&str> = p.header_extensions.iter().map(|e| e.uri.as_str()).collect();
        assert!(uris.contains(&super::super::URI_MID) && uris.contains(&URI_TWCC));
        assert!(!uris.contains(&URI_RID), "recvonly extensions are not sent");
        let fb: Vec<&str> = p.codecs[0].rtcp_feedback.iter().map(|f| f.kind.as_str()).collect();
        assert!(fb.contains(&"transport-cc") && !fb.contains(&"goog-remb"), "{fb:?}");

        let audio = consumer_rtp_parameters(&plan(MediaKind::Audio), MediaKind::Audio, &peer, 5, None).unwrap();
        assert_eq!(audio.codecs.len(), 1);
        assert_eq!(audio.encodings[0].rtx, None);
        let uris: Vec<&str> = audio.header_extensions.iter().map(|e| e.uri.as_str()).collect();
        assert!(!uris.contains(&URI_TWCC), "audio transport-cc is recvonly on the router");
        let fb: Vec<&str> = audio.codecs[0].rtcp_feedback.iter().map(|f| f.kind.as_str()).collect();
        assert!(fb.is_empty(), "abs-send-time present: transport-cc feedback dropped, got {fb:?}");
    }

    #[test]
    fn other_extension_ids_are_dropped_and_unsupported_peers_refused() {
        let mut peer = caps();
        for e in &mut peer.header_extensions {
            if e.uri == URI_TWCC {
                e.preferred_id = 7;
            }
        }
        let p = consumer_rtp_parameters(&plan(MediaKind::Video), MediaKind::Video, &peer, 1, None).unwrap();
        assert!(p.header_extensions.iter().all(|e| e.uri != URI_TWCC));
        let fb: Vec<&str> = p.codecs[0].rtcp_feedback.iter().map(|f| f.kind.as_str()).collect();
        assert!(fb.contains(&"goog-remb") && !fb.contains(&"transport-cc"), "{fb:?}");

        let mut no_vp8 = caps();
        no_vp8.codecs.retain(|c| c.mime_type != "video/VP8");
        assert_eq!(consumer_rtp_parameters(&plan(MediaKind::Video), MediaKind::Video, &no_vp8, 1, None), Err(OrtcError::NotConsumable));
    }

    #[test]
    fn feedback_is_the_devices_and_rtx_needs_the_device() {
        let mut peer = caps();
        peer.codecs.retain(|c| !c.is_rtx());
        for c in &mut peer.codecs {
            c.rtcp_feedback.retain(|f| f.kind != "ccm");
        }
        let p = consumer_rtp_parameters(&plan(MediaKind::Video), MediaKind::Video, &peer, 9, None).unwrap();
        assert_eq!(p.codecs.len(), 1, "no RTX without the device's");
        assert_eq!(p.encodings[0].rtx, None);
        assert!(p.codecs[0].rtcp_feedback.iter().all(|f| f.kind != "ccm"), "the device's feedback");
    }

    #[test]
    fn opus_parameters_come_from_the_producer() {
        let mut params = client_params(MediaKind::Audio);
        params.codecs[0].parameters.insert("stereo".into(), crate::rtp_parameters::ParamValue::Number(1));
        let plan = producer_plan(&caps(), MediaKind::Audio, &params).unwrap();
        let p = consumer_rtp_parameters(&plan, MediaKind::Audio, &caps(), 3, None).unwrap();
        assert_eq!(p.codecs[0].parameters, params.codecs[0].parameters);
    }
}
