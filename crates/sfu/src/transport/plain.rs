//! PlainTransport: plain RTP (no ICE, no DTLS, no SRTP) from the worker's socket to a local
//! address, e.g. an FFmpeg process recording a producer. RTP goes to `remote`, RTCP to the
//! port above it (RFC 3550 11).
use std::net::SocketAddr;

pub(crate) struct PlainTransport {
    /// Where RTP goes (FFmpeg listens there).
    remote: SocketAddr,
}

impl PlainTransport {
    pub fn new(remote: SocketAddr) -> PlainTransport {
        PlainTransport { remote }
    }

    pub fn rtp_addr(&self) -> SocketAddr {
        self.remote
    }

    pub fn rtcp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.remote.ip(), self.remote.port().wrapping_add(1))
    }
}

/// An empty RTCP receiver report from `ssrc` (RFC 3550 6.4.2): 8 bytes.
pub(crate) fn rtcp_empty_rr(ssrc: u32) -> Vec<u8> {
    let mut rr = vec![0x80, 201, 0, 1];
    rr.extend_from_slice(&ssrc.to_be_bytes());
    rr
}

/// A compound RTCP packet saying goodbye for `ssrcs` (RFC 3550 6.1: it starts with a report,
/// here an empty receiver report from the first SSRC, then one BYE listing them all; at most 31).
pub(crate) fn rtcp_bye(ssrcs: &[u32]) -> Vec<u8> {
    let ssrcs = &ssrcs[..ssrcs.len().min(31)];
    let mut out = rtcp_empty_rr(ssrcs.first().copied().unwrap_or(0));
    out.push(0x80 | ssrcs.len() as u8); // V=2, source count
    out.push(203);
    out.extend_from_slice(&(ssrcs.len() as u16).to_be_bytes()); // length in words minus one
    for s in ssrcs {
        out.extend_from_slice(&s.to_be_bytes());
    }
    out
}

/// Serialises one RTP packet (RFC 3550 fixed header, no extensions, no CSRC).
pub(crate) fn rtp_packet(pt: u8, seq: u16, timestamp: u32, ssrc: u32, marker: bool, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(0x80);
    out.push((pt & 0x7f) | if marker { 0x80 } else { 0 });
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Whether a payload starts a keyframe, for the codecs we can tell; other codecs count as yes.
pub(crate) fn starts_keyframe(mime: &str, payload: &[u8]) -> bool {
    crate::codec::VideoCodec::from_mime(mime).starts_keyframe(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_header_layout() {
        let mut out = Vec::new();
        rtp_packet(101, 0x1234, 0xdeadbeef, 0x01020304, true, &[9, 9], &mut out);
        assert_eq!(out, vec![0x80, 0x80 | 101, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 9, 9]);
    }

    #[test]
    fn rtcp_bye_is_a_compound_packet() {
        let bye = rtcp_bye(&[1, 2]);
        assert_eq!(bye[..8], [0x80, 201, 0, 1, 0, 0, 0, 1], "an empty receiver report first");
        assert_eq!(bye[8..], [0x82, 203, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2], "then BYE for both");
        let t = PlainTransport::new("127.0.0.1:5004".parse().unwrap());
        assert_eq!(t.rtcp_addr().port(), 5005);
    }

    #[test]
    fn vp8_keyframes_are_recognised() {
        // X=1 S=1, I=1 with a 15-bit picture id, then a keyframe tag (bit 0 = 0).
        assert!(starts_keyframe("video/VP8", &[0x90, 0x80, 0x80, 0x01, 0x10, 0x00, 0x00, 0x9d]));
        assert!(!starts_keyframe("video/VP8", &[0x90, 0x80, 0x80, 0x01, 0x11, 0x00, 0x00]));
        assert!(!starts_keyframe("video/VP8", &[0x80, 0x80, 0x80, 0x01, 0x10]), "not a partition start");
        assert!(!starts_keyframe("video/VP8", &[0x90]));
        assert!(!starts_keyframe("video/VP8", &[]));
        assert!(starts_keyframe("audio/opus", &[1, 2, 3]));
        assert!(starts_keyframe("video/H264", &[0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce]), "SPS and PPS in a STAP-A");
        assert!(!starts_keyframe("video/H264", &[0x41, 0x9a]));
    }
}
