//! Whether two codec entries name the same codec: mediasoup's `matchCodecs` (ortc.ts).
//!
//! Parameter values compare as mediasoup compares them, type included: JavaScript's
//! `params[k] || 0` then `!==`, so `packetization-mode: "1"` is not `1` (SDP parsers such as
//! sdp-transform, which mediasoup-client uses, give all-digit values as numbers).
use super::h264;
use crate::rtp_parameters::{CodecParameters, ParamValue};

/// The parts of a codec entry that matching reads (capability or parameters alike).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodecView<'a> {
    pub mime_type: &'a str,
    pub clock_rate: u32,
    pub channels: Option<u8>,
    pub parameters: &'a CodecParameters,
}

impl CodecView<'_> {
    fn is_audio(&self) -> bool {
        self.mime_type.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("audio/"))
    }
}

/// A parameter as mediasoup's `params[key] || 0` reads it: missing, `""` and `0` are `0`.
fn or_zero(params: &CodecParameters, key: &str) -> ParamValue {
    match params.get(key) {
        None => ParamValue::Number(0),
        Some(ParamValue::String(s)) if s.is_empty() => ParamValue::Number(0),
        Some(v) => v.clone(),
    }
}

/// `matchCodecs(a, b, {strict})`: same MIME type (any case), clock rate and channels (audio
/// defaults to 1 channel, video has none); with `strict`, H264 needs the same
/// packetization-mode, the same profile and an answerable profile-level-id, VP9 the same
/// profile-id.
pub(crate) fn codecs_match(a: CodecView<'_>, b: CodecView<'_>, strict: bool) -> bool {
    if !a.mime_type.eq_ignore_ascii_case(b.mime_type) || a.clock_rate != b.clock_rate {
        return false;
    }
    if a.is_audio() && a.channels.unwrap_or(1) != b.channels.unwrap_or(1) {
        return false;
    }
    if !strict {
        return true;
    }
    let mime = a.mime_type.to_ascii_lowercase();
    match mime.as_str() {
        "video/h264" | "video/h264-svc" => {
            or_zero(a.parameters, "packetization-mode") == or_zero(b.parameters, "packetization-mode")
                && h264::is_same_profile(a.parameters, b.parameters)
                && h264::answer_profile_level_id(a.parameters, b.parameters).is_ok()
        }
        "video/vp9" => or_zero(a.parameters, "profile-id") == or_zero(b.parameters, "profile-id"),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(mime: &'a str, channels: Option<u8>, parameters: &'a CodecParameters) -> CodecView<'a> {
        CodecView { mime_type: mime, clock_rate: if mime.starts_with("audio") { 48000 } else { 90000 }, channels, parameters }
    }

    fn params(pairs: &[(&str, ParamValue)]) -> CodecParameters {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn mime_clock_and_channels() {
        let none = CodecParameters::new();
        assert!(codecs_match(view("video/VP8", None, &none), view("video/vp8", None, &none), true));
        assert!(!codecs_match(view("audio/opus", Some(1), &none), view("audio/opus", Some(2), &none), true));
        assert!(codecs_match(view("audio/opus", None, &none), view("audio/opus", Some(1), &none), true));
        assert!(codecs_match(view("video/VP8", Some(3), &none), view("video/VP8", None, &none), true), "video ignores channels");
        let mut other_clock = view("video/VP8", None, &none);
        other_clock.clock_rate = 8000;
        assert!(!codecs_match(other_clock, view("video/VP8", None, &none), false));
    }

    #[test]
    fn parameter_types_count_as_in_mediasoup() {
        let router = params(&[("packetization-mode", ParamValue::Number(1)), ("profile-level-id", ParamValue::String("42e01f".into()))]);
        let same = params(&[("packetization-mode", ParamValue::Number(1)), ("profile-level-id", ParamValue::String("42e01f".into()))]);
        let as_string =
            params(&[("packetization-mode", ParamValue::String("1".into())), ("profile-level-id", ParamValue::String("42e01f".into()))]);
        assert!(codecs_match(view("video/H264", None, &same), view("video/H264", None, &router), true));
        assert!(!codecs_match(view("video/H264", None, &as_string), view("video/H264", None, &router), true));
        assert!(codecs_match(view("video/H264", None, &as_string), view("video/H264", None, &router), false), "loose match skips it");
        let vp9_0 = params(&[("profile-id", ParamValue::Number(0))]);
        let vp9_none = params(&[]);
        let vp9_2 = params(&[("profile-id", ParamValue::Number(2))]);
        assert!(codecs_match(view("video/VP9", None, &vp9_none), view("video/VP9", None, &vp9_0), true));
        assert!(!codecs_match(view("video/VP9", None, &vp9_2), view("video/VP9", None, &vp9_0), true));
    }

    #[test]
    fn h264_profiles_must_agree() {
        let cb = params(&[("packetization-mode", ParamValue::Number(1)), ("profile-level-id", ParamValue::String("42e01f".into()))]);
        for bad in [ParamValue::String("42001f".into()), ParamValue::Number(640032), ParamValue::String("aé".into())] {
            let p = params(&[("packetization-mode", ParamValue::Number(1)), ("profile-level-id", bad.clone())]);
            assert!(!codecs_match(view("video/H264", None, &p), view("video/H264", None, &cb), true), "{bad:?}");
        }
    }
}
