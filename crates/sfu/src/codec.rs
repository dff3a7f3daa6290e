//! The video codecs whose payloads the engine reads (mediasoup's `Codecs::Tools`): which of a
//! producer's packets start keyframes, and which temporal layer each belongs to.
use crate::{h264, vp8, vp9};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
    /// Anything else (audio too): packets are not read.
    Other,
}

impl VideoCodec {
    /// By MIME type (`video/VP8`, case-insensitive).
    pub fn from_mime(mime: &str) -> VideoCodec {
        if mime.eq_ignore_ascii_case("video/vp8") {
            VideoCodec::Vp8
        } else if mime.eq_ignore_ascii_case("video/vp9") {
            VideoCodec::Vp9
        } else if mime.eq_ignore_ascii_case("video/h264") {
            VideoCodec::H264
        } else {
            VideoCodec::Other
        }
    }

    /// Whether the payload starts a keyframe; unreadable payloads do not. Codecs that are not
    /// read say yes (nothing is held back for them).
    pub fn starts_keyframe(self, payload: &[u8]) -> bool {
        match self {
            VideoCodec::Vp8 => vp8::parse(payload).is_ok_and(|d| d.keyframe),
            VideoCodec::Vp9 => vp9::parse(payload).is_ok_and(|d| d.keyframe()),
            VideoCodec::H264 => h264::is_keyframe(payload),
            VideoCodec::Other => true,
        }
    }

    /// The packet's temporal layer (0 when the payload does not tell).
    pub fn temporal_layer(self, payload: &[u8]) -> u8 {
        match self {
            VideoCodec::Vp8 => vp8::parse(payload).ok().and_then(|d| d.tid).unwrap_or(0),
            VideoCodec::Vp9 => vp9::parse(payload).map_or(0, |d| d.tid),
            VideoCodec::H264 | VideoCodec::Other => 0,
        }
    }

    /// Whether a simulcast consumer can tell temporal layers apart in its payloads (H264's
    /// would need the frame-marking extension; VP9 is carried as SVC, not simulcast).
    pub fn has_temporal_layers(self) -> bool {
        self == VideoCodec::Vp8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_by_mime_and_their_keyframes() {
        assert_eq!(VideoCodec::from_mime("video/vp8"), VideoCodec::Vp8);
        assert_eq!(VideoCodec::from_mime("video/H264"), VideoCodec::H264);
        assert_eq!(VideoCodec::from_mime("audio/opus"), VideoCodec::Other);
        assert!(VideoCodec::Vp8.starts_keyframe(&[0x90, 0x80, 0x80, 0x01, 0x10, 0, 0, 0x9d]));
        assert!(!VideoCodec::Vp8.starts_keyframe(&[0x90]));
        assert!(VideoCodec::H264.starts_keyframe(&[0x67, 0x42]));
        assert!(!VideoCodec::H264.starts_keyframe(&[0x41, 0x9a]));
        assert!(VideoCodec::Other.starts_keyframe(&[]));
        assert_eq!(VideoCodec::Vp8.temporal_layer(&[0x90, 0xe0, 0x80, 1, 5, 0x80, 1, 0, 0]), 2);
        assert_eq!(VideoCodec::H264.temporal_layer(&[0x90, 0xe0, 0x80, 1, 5, 0x80, 1, 0, 0]), 0, "not read as VP8");
        assert!(!VideoCodec::H264.has_temporal_layers());
        assert_eq!(VideoCodec::from_mime("video/VP9"), VideoCodec::Vp9);
        // I, L, B: picture 5, TID 1, SID 0, TL0PICIDX 3; then a payload byte.
        assert!(VideoCodec::Vp9.starts_keyframe(&[0xa8, 0x05, 0x20, 0x03, 0x00]));
        assert!(!VideoCodec::Vp9.starts_keyframe(&[0xe8, 0x05, 0x20, 0x03, 0x00]), "inter-picture predicted");
        assert_eq!(VideoCodec::Vp9.temporal_layer(&[0xa8, 0x05, 0x20, 0x03, 0x00]), 1);
    }
}
