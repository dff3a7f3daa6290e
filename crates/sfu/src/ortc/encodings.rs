//! A producer's `rtpParameters.encodings`: one RTP stream each (a simulcast spatial layer when
//! there are several, lowest first, as mediasoup-client lists them), identified by SSRC or by
//! `rid` (RFC 8851; the SSRC is then learned from the first packet carrying that rid).
//!
//! Rules, from mediasoup (`ortc.validateRtpEncodingParameters`, the worker's
//! `RtpParameters::ValidateEncodings`, `Producer` and `Codecs::Tools::IsValidTypeForCodec`) and
//! from what the engine supports (docs/signaling-errors.md lists the differences):
//! - 1 to [`MAX_ENCODINGS`] encodings, each with a nonzero `ssrc` or a `rid` (mediasoup also takes
//!   a single encoding with neither when a mid is given; mediasoup-client never sends one);
//! - a rid is 1 to 8 characters `A-Z a-z 0-9 - _` (RFC 8851's token; str0m keeps 8 bytes), unique
//!   among the encodings; `rtx.ssrc` only beside an `ssrc`;
//! - several encodings (simulcast): video only, VP8 or H264 (`unsupported_simulcast`), and
//!   no encoding with more than one spatial layer in its `scalabilityMode` (mediasoup: "cannot use
//!   both simulcast and encodings with multiple SVC spatial layers");
//! - `codecPayloadType`, when given, names a media codec; `scalabilityMode` is `L<n>T<n>` or
//!   `S<n>T<n>` with an optional `_KEY`/`_KEY_SHIFT` (W3C webrtc-svc).
use super::OrtcError;
use crate::rtp_parameters::{MediaKind, RtpParameters};

/// Most encodings (simulcast streams) one producer may have.
pub const MAX_ENCODINGS: usize = 4;

/// One encoding of an accepted producer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncodingPlan {
    pub ssrc: Option<u32>,
    pub rid: Option<String>,
    pub rtx_ssrc: Option<u32>,
    pub scalability_mode: Option<String>,
    pub max_bitrate: Option<u64>,
}

/// Spatial and temporal layer counts of a scalability mode (`L3T3`, `S2T1_KEY`, ...); None if
/// it is not one.
pub fn parse_scalability_mode(mode: &str) -> Option<(u8, u8)> {
    let rest = mode.strip_prefix('L').or_else(|| mode.strip_prefix('S'))?;
    let (spatial, temporal) = rest.split_once('T')?;
    let temporal = temporal.strip_suffix("_KEY_SHIFT").or_else(|| temporal.strip_suffix("_KEY")).unwrap_or(temporal);
    let layers = |s: &str| -> Option<u8> {
        let ok = !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
        ok.then(|| s.parse().ok()).flatten()
    };
    Some((layers(spatial)?, layers(temporal)?))
}

/// Whether `rid` is one this engine can match: 1 to 8 of `A-Z a-z 0-9 - _`.
pub fn rid_ok(rid: &str) -> bool {
    (1..=8).contains(&rid.len()) && rid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn invalid(message: impl Into<String>) -> OrtcError {
    OrtcError::InvalidParameters(message.into())
}

/// Checks the encodings of a producer's parameters (codecs already checked).
pub(super) fn validate_encodings(kind: MediaKind, params: &RtpParameters) -> Result<(), OrtcError> {
    let encodings = &params.encodings;
    if encodings.is_empty() {
        return Err(invalid("rtpParameters.encodings is empty: one encoding with an ssrc (or one per simulcast stream) is needed"));
    }
    if encodings.len() > MAX_ENCODINGS {
        return Err(OrtcError::UnsupportedSimulcast(format!("{} encodings given: at most {MAX_ENCODINGS}", encodings.len())));
    }
    for (i, e) in encodings.iter().enumerate() {
        match (e.ssrc, &e.rid) {
            (Some(0), _) => return Err(invalid(format!("encodings[{i}].ssrc is 0"))),
            (None, None) => return Err(invalid(format!("encodings[{i}] needs an ssrc or a rid"))),
            _ => {}
        }
        if let Some(rid) = &e.rid {
            if !rid_ok(rid) {
                return Err(invalid(format!("encodings[{i}].rid must be 1 to 8 characters A-Z a-z 0-9 - _")));
            }
            if encodings[..i].iter().any(|o| o.rid.as_ref() == Some(rid)) {
                return Err(invalid(format!("encodings[{i}].rid {rid:?} is used twice")));
            }
        }
        if e.rtx.is_some() && e.ssrc.is_none() {
            return Err(invalid(format!("encodings[{i}].rtx needs encodings[{i}].ssrc")));
        }
        if let Some(pt) = e.codec_payload_type {
            if !params.codecs.iter().any(|c| c.payload_type == pt && !c.is_rtx()) {
                return Err(invalid(format!("encodings[{i}].codecPayloadType {pt} is not a media codec of this producer")));
            }
        }
        if let Some(mode) = &e.scalability_mode {
            let Some((spatial, _)) = parse_scalability_mode(mode) else {
                return Err(invalid(format!("invalid scalabilityMode {mode:?}")));
            };
            if spatial > 1 && encodings.len() > 1 {
                return Err(invalid("cannot use both simulcast and encodings with multiple SVC spatial layers"));
            }
        }
    }
    if encodings.len() > 1 {
        if kind == MediaKind::Audio {
            return Err(OrtcError::UnsupportedSimulcast("audio has no simulcast: send one encoding".into()));
        }
        for (i, e) in encodings.iter().enumerate() {
            // The encoding's codec: its codecPayloadType, else the first codec (a media codec).
            let codec = e.codec_payload_type.and_then(|pt| params.codecs.iter().find(|c| c.payload_type == pt)).or(params.codecs.first());
            let carried = |c: &&crate::rtp_parameters::RtpCodecParameters| {
                c.mime_type.eq_ignore_ascii_case("video/vp8") || c.mime_type.eq_ignore_ascii_case("video/h264")
            };
            if !codec.is_some_and(|c| carried(&c)) {
                return Err(OrtcError::UnsupportedSimulcast(format!(
                    "encodings[{i}]: simulcast is supported with VP8 and H264 (VP9: one encoding with an SVC scalabilityMode)"
                )));
            }
        }
    }
    Ok(())
}

/// The engine's copy of validated encodings.
pub(super) fn encoding_plans(params: &RtpParameters) -> Vec<EncodingPlan> {
    params
        .encodings
        .iter()
        .map(|e| EncodingPlan {
            ssrc: e.ssrc,
            rid: e.rid.clone(),
            rtx_ssrc: e.rtx.map(|r| r.ssrc),
            scalability_mode: e.scalability_mode.clone(),
            max_bitrate: e.max_bitrate,
        })
        .collect()
}

/// The scalability mode of a consumer of these encodings (mediasoup's
/// `getConsumerRtpParameters`): the first one given; with several encodings
/// `L<encodings>T<temporal layers of that mode, 1 if none>`.
pub fn consumer_scalability_mode(encodings: &[EncodingPlan]) -> Option<String> {
    let mode = encodings.iter().find_map(|e| e.scalability_mode.clone());
    if encodings.len() > 1 {
        let temporal = mode.as_deref().and_then(parse_scalability_mode).map_or(1, |(_, t)| t);
        return Some(format!("L{}T{temporal}", encodings.len()));
    }
    mode
}

/// The largest `maxBitrate` of these encodings (mediasoup gives it to the consumer's encoding).
pub fn consumer_max_bitrate(encodings: &[EncodingPlan]) -> Option<u64> {
    encodings.iter().filter_map(|e| e.max_bitrate).max().filter(|b| *b > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalability_modes_parse_as_webrtc_svc_names_them() {
        assert_eq!(parse_scalability_mode("L1T3"), Some((1, 3)));
        assert_eq!(parse_scalability_mode("S3T3"), Some((3, 3)));
        assert_eq!(parse_scalability_mode("L3T3_KEY"), Some((3, 3)));
        assert_eq!(parse_scalability_mode("L2T2_KEY_SHIFT"), Some((2, 2)));
        for bad in ["", "L", "L1", "T3", "L0T1", "L1T0", "LxT1", "L1T3_K", "L100T1", "X1T1"] {
            assert_eq!(parse_scalability_mode(bad), None, "{bad}");
        }
    }

    #[test]
    fn rids_are_short_tokens() {
        for ok in ["r0", "h", "q-1_x", "ABCDEFGH"] {
            assert!(rid_ok(ok), "{ok}");
        }
        for bad in ["", "ABCDEFGHI", "r 0", "é", "r/0"] {
            assert!(!rid_ok(bad), "{bad}");
        }
    }

    #[test]
    fn consumers_of_simulcast_get_one_encoding_named_by_stream_count() {
        let e = |mode: Option<&str>, max: Option<u64>| EncodingPlan {
            scalability_mode: mode.map(Into::into),
            max_bitrate: max,
            ..Default::default()
        };
        let three = [e(Some("L1T3"), Some(100_000)), e(Some("L1T3"), Some(300_000)), e(Some("L1T3"), Some(900_000))];
        assert_eq!(consumer_scalability_mode(&three).as_deref(), Some("L3T3"));
        assert_eq!(consumer_max_bitrate(&three), Some(900_000));
        assert_eq!(consumer_scalability_mode(&[e(None, None), e(None, None)]).as_deref(), Some("L2T1"), "no mode: one temporal layer");
        assert_eq!(consumer_scalability_mode(&[e(Some("L1T2"), None)]).as_deref(), Some("L1T2"), "one encoding: its own mode");
        assert_eq!(consumer_scalability_mode(&[e(None, None)]), None);
        assert_eq!(consumer_max_bitrate(&[e(None, Some(0))]), None);
    }
}
