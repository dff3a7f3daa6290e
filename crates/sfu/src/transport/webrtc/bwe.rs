//! Downlink bandwidth estimation of a receive transport (what the engine may send to the
//! client): str0m's send-side estimator fed by the client's transport-cc feedback, and its
//! pacer. The estimate is what [`crate::allocator`] shares among the transport's consumers.
//!
//! Turned on per engine ([`crate::EngineConfig::downlink_bwe`]); it costs str0m's send history
//! (transport-wide sequence numbers), the client's feedback every ~100 ms and the pacer's
//! wake-ups.
use str0m::bwe::{Bitrate, BweKind};

use super::WebRtcTransport;
use crate::Direction;

/// Where the estimate starts (mediasoup's `initialAvailableOutgoingBitrate` default).
pub(crate) const INITIAL_ESTIMATE_BPS: u64 = 600_000;

impl WebRtcTransport {
    /// Whether this transport estimates its downlink (a receive transport with estimation on).
    pub fn estimates_downlink(&self) -> bool {
        self.downlink_bwe && self.direction == Direction::Recv
    }

    /// str0m's new estimate (transport-cc) or the client's REMB.
    pub fn estimate_changed(&mut self, kind: &BweKind) {
        let bps = match kind {
            BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. } => estimate.as_u64(),
            _ => return, // a kind str0m may add later: ignored
        };
        self.egress_estimate = Some(bps);
    }

    /// The downlink estimate in bit/s (mediasoup's `availableOutgoingBitrate`), once there is one.
    pub fn available_outgoing_bitrate(&self) -> Option<u64> {
        self.egress_estimate
    }

    /// Tells the estimator what the consumers would use: `minimum` is kept up with padding
    /// (capped by the estimate) so the next layer can be reached, `desired` is probed for.
    pub fn set_bwe_bitrates(&mut self, minimum: u64, desired: u64) {
        if !self.estimates_downlink() {
            return;
        }
        self.rtc.bwe().set_bitrate(Bitrate::bps(minimum.min(desired)), Bitrate::bps(desired));
        self.needs_tick = true;
    }
}
