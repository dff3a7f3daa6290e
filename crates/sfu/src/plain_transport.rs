//! PlainTransport: plain RTP (no ICE, no DTLS, no SRTP) from the worker's socket to a local
//! address, e.g. an FFmpeg process recording a producer. Send-only; no RTCP yet (FFmpeg does
//! not need sender reports to write a file).
use std::net::{SocketAddr, UdpSocket};

use crate::ids::{ConsumerId, RouterId};
use crate::webrtc_transport::OutgoingRtp;

pub(crate) struct PlainTransport {
    pub router: RouterId,
    /// Where RTP goes (a recorder listens there; RTCP would be on port + 1).
    pub remote: SocketAddr,
    pub consumers: Vec<ConsumerId>,
    pub packets_out: u64,
    pub bytes_out: u64,
    scratch: Vec<u8>,
}

impl PlainTransport {
    pub fn new(router: RouterId, remote: SocketAddr) -> PlainTransport {
        PlainTransport { router, remote, consumers: Vec::new(), packets_out: 0, bytes_out: 0, scratch: Vec::with_capacity(1500) }
    }

    /// Sends one packet now; returns the bytes sent.
    pub fn send_rtp(&mut self, socket: &UdpSocket, p: &OutgoingRtp<'_>) -> Option<usize> {
        // RTP sequence numbers are 16 bits on the wire.
        rtp_packet(p.pt, p.seq as u16, p.timestamp, *p.ssrc, p.marker, p.payload, &mut self.scratch);
        match socket.send_to(&self.scratch, self.remote) {
            Ok(n) => {
                self.packets_out += 1;
                self.bytes_out += n as u64;
                Some(n)
            }
            Err(e) => {
                tracing::debug!(remote = %self.remote, "plain send: {e}");
                None
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_header_layout() {
        let mut out = Vec::new();
        rtp_packet(101, 0x1234, 0xdeadbeef, 0x01020304, true, &[9, 9], &mut out);
        assert_eq!(out, vec![0x80, 0x80 | 101, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 9, 9]);
    }
}
