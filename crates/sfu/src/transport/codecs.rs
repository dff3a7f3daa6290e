//! The router's codecs and header extensions in str0m's terms, for building a transport's Rtc.
use str0m::format::{Codec, FormatParams};
use str0m::rtp::Extension;

use crate::ortc;
use crate::rtp_parameters::{ParamValue, RtpCodecCapability};

/// The str0m extension for a header-extension URI the engine handles; None for others.
pub(crate) fn extension_from_uri(uri: &str) -> Option<Extension> {
    Some(match uri {
        ortc::URI_MID => Extension::RtpMid,
        ortc::URI_RID => Extension::RtpStreamId,
        ortc::URI_RRID => Extension::RepairedRtpStreamId,
        ortc::URI_ABS_SEND_TIME => Extension::AbsoluteSendTime,
        ortc::URI_TWCC => Extension::TransportSequenceNumber,
        ortc::URI_AUDIO_LEVEL => Extension::AudioLevel,
        ortc::URI_VIDEO_ORIENTATION => Extension::VideoOrientation,
        ortc::URI_TOFFSET => Extension::TransmissionTimeOffset,
        ortc::URI_ABS_CAPTURE_TIME => Extension::AbsoluteCaptureTime,
        ortc::URI_PLAYOUT_DELAY => Extension::PlayoutDelay,
        _ => return None,
    })
}

/// The str0m codec and format parameters of a codec capability; None for codecs str0m does
/// not carry (RTX is configured with its media codec).
pub(crate) fn str0m_codec(c: &RtpCodecCapability) -> Option<(Codec, FormatParams)> {
    let int = |k: &str| c.parameters.get(k).and_then(ParamValue::as_i64);
    let mime = c.mime_type.to_ascii_lowercase();
    Some(match mime.as_str() {
        "audio/opus" => (Codec::Opus, FormatParams { min_p_time: Some(10), use_inband_fec: Some(true), ..Default::default() }),
        "video/vp8" => (Codec::Vp8, FormatParams::default()),
        "video/vp9" => {
            (Codec::Vp9, FormatParams { profile_id: int("profile-id").and_then(|p| u32::try_from(p).ok()), ..Default::default() })
        }
        "video/h264" => {
            let profile_level_id = match c.parameters.get("profile-level-id") {
                Some(ParamValue::String(s)) => u32::from_str_radix(s, 16).ok(),
                Some(ParamValue::Number(n)) => u32::from_str_radix(&n.to_string(), 16).ok(),
                Some(ParamValue::Decimal(_)) => None,
                None => None,
            };
            (
                Codec::H264,
                FormatParams {
                    packetization_mode: int("packetization-mode").and_then(|p| u8::try_from(p).ok()),
                    profile_level_id,
                    level_asymmetry_allowed: int("level-asymmetry-allowed").map(|v| v == 1),
                    ..Default::default()
                },
            )
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ortc::default_media_codecs;

    #[test]
    fn every_default_codec_but_rtx_maps_to_str0m() {
        for c in default_media_codecs() {
            assert_eq!(str0m_codec(&c).is_some(), !c.mime_type.eq_ignore_ascii_case("video/rtx"), "{}", c.mime_type);
        }
    }

    #[test]
    fn unknown_extensions_are_left_out() {
        assert_eq!(extension_from_uri(ortc::URI_MID), Some(Extension::RtpMid));
        assert_eq!(extension_from_uri("urn:example:unknown"), None);
    }
}
