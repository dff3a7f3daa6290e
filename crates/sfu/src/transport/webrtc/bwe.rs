//! Downlink bandwidth estimation of a receive transport (what the engine may send to the
//! client): str0m's send-side estimator fed by the client's transport-cc feedback, and its
//! pacer. The estimate is what [`crate::allocator`] shares among the transport's consumers.
//!
//! Turned on per engine ([`crate::EngineConfig::downlink_bwe`]), for the receive transports whose
//! client offers transport-cc (`WebRtcTransport::new`); it costs str0m's send history
//! (transport-wide sequence numbers), the client's feedback every ~100 ms and the pacer's
//! wake-ups.
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};

use super::WebRtcTransport;

/// Where the estimate starts (mediasoup's `initialAvailableOutgoingBitrate` default).
pub(crate) const INITIAL_ESTIMATE_BPS: u64 = 600_000;
/// An estimate that has not moved for this long while consumers want more is restarted from
/// where it is (str0m's estimator can stay put after a congested spell: no probe, no change).
const STALLED_AFTER: Duration = Duration::from_secs(8);

/// What a receive transport knows of its downlink.
#[derive(Debug, Default)]
pub(crate) struct Downlink {
    /// The latest estimate, bit/s, and when it last changed.
    estimate: Option<u64>,
    changed_at: Option<Instant>,
    /// What the last allocation gave the consumers, and the demand given to str0m, bit/s.
    allocated: u64,
    desired: u64,
}

impl WebRtcTransport {
    /// Whether this transport estimates its downlink (a receive transport with estimation on).
    pub fn estimates_downlink(&self) -> bool {
        self.downlink.is_some()
    }

    /// str0m's new estimate (transport-cc) or the client's REMB; whether it fell below what the
    /// last allocation gave out (the consumers should be shared out again now, not at the next
    /// round).
    pub fn estimate_changed(&mut self, kind: &BweKind, now: Instant) -> bool {
        let bps = match kind {
            BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. } => estimate.as_u64(),
            _ => return false, // a kind str0m may add later: ignored
        };
        let Some(d) = self.downlink.as_mut() else { return false };
        (d.estimate, d.changed_at) = (Some(bps), Some(now));
        bps < d.allocated
    }

    /// The downlink estimate in bit/s (mediasoup's `availableOutgoingBitrate`), once there is one.
    pub fn available_outgoing_bitrate(&self) -> Option<u64> {
        self.downlink.as_ref()?.estimate
    }

    /// After an allocation that gave out `allocated` bit/s, tells the estimator what the
    /// consumers would use (`desired`, bit/s). str0m probes when the desired bitrate rises above
    /// its estimate (an allocation probe, at most twice the estimate): while some consumer gets
    /// less than it would use, the figure given rises by at least 1 bit/s a round so the probes
    /// go on and the estimate can double each round; once everyone has what it wants it is
    /// given as it is. An estimate stalled for [`STALLED_AFTER`] below the demand is restarted
    /// from where it is. No minimum is kept up with padding.
    pub fn set_desired_bitrate(&mut self, desired: u64, allocated: u64, now: Instant) {
        let Some(d) = self.downlink.as_mut() else { return };
        d.allocated = allocated;
        let stalled = d.changed_at.is_some_and(|at| now.saturating_duration_since(at) >= STALLED_AFTER);
        if let (true, true, Some(estimate)) = (stalled, allocated < desired, d.estimate) {
            // Restarting makes str0m probe at 3 and 6 times the estimate at once.
            tracing::debug!(estimate, desired, "downlink estimate stalled below the demand; restarting it");
            self.rtc.bwe().reset(Bitrate::bps(estimate));
            d.changed_at = Some(now);
        }
        d.desired = if allocated < desired { desired.max(d.desired.saturating_add(1)) } else { desired };
        self.rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps(d.desired));
        self.needs_tick = true;
    }
}
