//! The engine's own parsers and builders of wire data, for the fuzz targets in `fuzz/` (cargo
//! feature `fuzzing`, never in a release build). They are crate-private; these wrappers only
//! expose them. The worker's handles are [`crate::worker::Worker::fuzz_footprint`] and
//! [`crate::worker::Worker::fuzz_set_srtp_keys`]. Not an API.
use crate::error::ConnectError;
use crate::rtp_parameters::{DtlsParameters, RtpCodecCapability};

/// Whether an RTP payload starts a keyframe, as a plain (recording) consumer decides.
pub fn starts_keyframe(mime: &str, payload: &[u8]) -> bool {
    crate::transport::plain::starts_keyframe(mime, payload)
}

/// The RTP datagram a plain consumer sends.
pub fn rtp_packet(pt: u8, seq: u16, timestamp: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::transport::plain::rtp_packet(pt, seq, timestamp, ssrc, marker, payload, &mut out);
    out
}

/// The RTCP a plain transport sends: an empty receiver report, and the BYE on closing.
pub fn rtcp_empty_rr(ssrc: u32) -> Vec<u8> {
    crate::transport::plain::rtcp_empty_rr(ssrc)
}

pub fn rtcp_bye(ssrcs: &[u32]) -> Vec<u8> {
    crate::transport::plain::rtcp_bye(ssrcs)
}

/// The worker's STUN demultiplexing: the (local, remote) ufrags of a binding request.
pub fn binding_request_ufrags(data: &[u8]) -> Option<(&str, &str)> {
    crate::worker::binding_request_ufrags(data)
}

/// The client's DTLS fingerprint as `connectTransport` reads it: the digest bytes.
pub fn remote_fingerprint(dtls: &DtlsParameters) -> Result<Vec<u8>, ConnectError> {
    crate::transport::remote_fingerprint(dtls).map(|f| f.bytes)
}

/// Whether a codec capability is one a transport's str0m carries (RTX aside).
pub fn str0m_codec_known(codec: &RtpCodecCapability) -> bool {
    crate::transport::codecs::str0m_codec(codec).is_some()
}

/// ICE-TCP's RFC 4571 deframing as the TCP listener does it: the frames taken from the front of
/// `read`, and false when a frame broke the limits (the connection is closed).
pub fn take_tcp_frames(read: &mut Vec<u8>) -> (Vec<Vec<u8>>, bool) {
    let mut frames = Vec::new();
    let ok = crate::tcp::take_frames(read, |f| frames.push(f.to_vec()));
    (frames, ok)
}

/// The largest RFC 4571 frame the TCP listener takes, in bytes.
pub const MAX_TCP_FRAME: usize = crate::tcp::MAX_FRAME;
