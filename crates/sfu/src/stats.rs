//! What the engine says about its transports and streams: mediasoup's `getStats()` shapes
//! (`WebRtcTransport.getStats()`, `Producer.getStats()`, `Consumer.getStats()`, in camelCase as
//! mediasoup's JSON), and [`TransportQuality`], one line per transport for metrics.
//!
//! Figures come from str0m's statistics (one round per second per transport) and the RTCP the
//! peer sends: loss `up` is what the engine measures on the peer's upstream before NACK
//! recovery (the fraction lost of its own receiver reports), loss `down` and jitter what the
//! peer's receiver reports about the engine's streams (RTCP RR), RTT from those reports.
use serde::Serialize;

use crate::ids::TransportId;
use crate::rtp_parameters::MediaKind;

/// `WebRtcTransport.getStats()[0]` (mediasoup's `WebRtcTransportStat`, the fields the engine
/// knows), plus `rtt` (ms, from the peer's receiver reports; mediasoup has none here).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TransportStats {
    /// `"webrtc-transport"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub transport_id: TransportId,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// `"controlled"` (ICE-lite).
    pub ice_role: &'static str,
    /// `"new"`, `"connected"`, `"completed"` or `"disconnected"` (mediasoup's names).
    pub ice_state: &'static str,
    /// `"new"`, `"connecting"` or `"connected"`.
    pub dtls_state: &'static str,
    pub ice_selected_tuple: Option<Tuple>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Bits per second over the last second.
    pub recv_bitrate: u64,
    pub send_bitrate: u64,
    /// Milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt: Option<f64>,
    /// The downlink estimate, bit/s (receive transports with estimation on, once estimated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_outgoing_bitrate: Option<u64>,
}

/// mediasoup's `TransportTuple`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tuple {
    pub local_ip: String,
    pub local_port: u16,
    pub remote_ip: String,
    pub remote_port: u16,
    /// `"udp"` or `"tcp"`.
    pub protocol: &'static str,
}

/// One RTP stream of `Producer.getStats()` (`"inbound-rtp"`) or `Consumer.getStats()`
/// (`"outbound-rtp"`): mediasoup's `RtpStreamRecvStats` / `RtpStreamSendStats`, the fields the
/// engine knows.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RtpStreamStats {
    #[serde(rename = "type")]
    pub kind_of_stat: &'static str,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    pub ssrc: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtx_ssrc: Option<u32>,
    pub kind: MediaKind,
    pub mime_type: String,
    /// Packets lost (inbound: as the engine counts them; outbound: as the peer reports them).
    pub packets_lost: u64,
    /// 0..=255 of the last report interval, as RTCP's fraction lost (mediasoup's unit).
    pub fraction_lost: u8,
    pub packet_count: u64,
    pub byte_count: u64,
    /// Bits per second over the last second.
    pub bitrate: u64,
    pub nack_count: u64,
    pub pli_count: u64,
    pub fir_count: u64,
    /// 0..=10: mediasoup's RtpStream score, round(delivered^4 x 10) with delivered = 1 - the
    /// fraction lost (before repair: mediasoup weighs repaired packets in).
    pub score: u8,
    /// Milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trip_time: Option<f64>,
    /// RTP timestamp units, as in RTCP.
    pub jitter: u32,
}

/// One entry of mediasoup's `producer.score`: `[{encodingIdx, ssrc, rid?, score}]`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EncodingScore {
    pub encoding_idx: u32,
    pub ssrc: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    pub score: u8,
}

/// mediasoup's score from a fraction lost (0..1).
pub fn score(fraction_lost: f32) -> u8 {
    let lost = if fraction_lost.is_nan() { 0.0 } else { fraction_lost.clamp(0.0, 1.0) };
    let delivered = f64::from(1.0 - lost);
    (delivered.powi(4) * 10.0).round() as u8
}

/// One WebRTC transport's figures for metrics, directions seen from the peer: `up` is what it
/// sends (the engine receives), `down` what it receives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransportQuality {
    pub id: Option<TransportId>,
    /// Bits per second over the last second.
    pub bitrate_up: u64,
    pub bitrate_down: u64,
    /// Seconds, from the peer's receiver reports.
    pub rtt: Option<f64>,
    /// 0..1: the fraction of the peer's packets lost on the way in (every stream's packets
    /// together, before NACK recovery) in the last report interval.
    pub loss_up: Option<f32>,
    /// 0..1: the worst fraction lost the peer reports about a stream it receives.
    pub loss_down: Option<f32>,
    /// Seconds: the worst jitter the peer reports about what it receives.
    pub jitter_down: Option<f64>,
    /// NACKs, PLIs and FIRs the engine sent the peer (about its upstream), and the peer sent the engine.
    pub nacks_up: u64,
    pub nacks_down: u64,
    pub plis_up: u64,
    pub plis_down: u64,
    pub firs_up: u64,
    pub firs_down: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_mediasoup() {
        assert_eq!(score(0.0), 10);
        assert_eq!(score(0.05), 8); // 0.95^4 = 0.81
        assert_eq!(score(0.2), 4); // 0.8^4 = 0.41
        assert_eq!(score(1.0), 0);
        assert_eq!(score(-1.0), 10, "clamped");
        assert_eq!(score(f32::NAN), 10, "NaN clamps to 0 lost");
    }
}
