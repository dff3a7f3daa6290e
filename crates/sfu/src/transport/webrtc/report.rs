//! What a WebRTC transport reports: mediasoup's `WebRtcTransport.getStats()` and the statistics
//! rounds str0m gives (with the bytes sent as counted here).
use str0m::net::Protocol;

use super::WebRtcTransport;
use crate::ids::TransportId;
use crate::stats::{TransportStats, Tuple};

impl WebRtcTransport {
    /// A statistics round: what str0m says of the peer, with the bytes sent as counted here.
    pub fn peer_stats(&mut self, mut s: str0m::stats::PeerStats) {
        s.bytes_tx = self.bytes_sent;
        self.quality.peer_stats(s);
    }

    /// `WebRtcTransport.getStats()` as mediasoup gives it (see [`TransportStats`]).
    pub fn stats(&self, id: TransportId, timestamp: u64) -> TransportStats {
        use str0m::IceConnectionState as S;
        let ice_state = match self.ice_state {
            S::New | S::Checking => "new",
            S::Connected => "connected",
            S::Completed => "completed",
            S::Disconnected => "disconnected",
        };
        let dtls_state = match (self.dtls_connected, self.remote_fp.is_some()) {
            (true, _) => "connected",
            (false, true) => "connecting",
            (false, false) => "new",
        };
        let ice_selected_tuple = self.path.current().map(|(proto, remote)| Tuple {
            local_ip: self.candidate_addr.ip().to_string(),
            local_port: self.candidate_addr.port(),
            remote_ip: remote.ip().to_string(),
            remote_port: remote.port(),
            protocol: if proto == Protocol::Tcp { "tcp" } else { "udp" },
        });
        let (recv_bitrate, send_bitrate) = self.quality.rates();
        let peer = self.quality.peer.as_ref();
        TransportStats {
            kind: "webrtc-transport",
            transport_id: id,
            timestamp,
            ice_role: "controlled",
            ice_state,
            dtls_state,
            ice_selected_tuple,
            bytes_received: peer.map_or(0, |p| p.bytes_rx),
            bytes_sent: peer.map_or(0, |p| p.bytes_tx),
            recv_bitrate,
            send_bitrate,
            rtt: self.quality.rtt_ms(),
            available_outgoing_bitrate: self.available_outgoing_bitrate(),
        }
    }
}
