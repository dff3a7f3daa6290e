//! Downlink allocation: every [`ALLOCATE_EVERY`], each receive transport that estimates its
//! downlink shares the estimate among its consumers ([`crate::allocator`]), caps the layers of
//! its simulcast consumers accordingly, and tells str0m's estimator what to probe for. mediasoup
//! redistributes on each new estimate of its transport-cc client; once a second (and at once
//! when the estimate falls) keeps layer switches, each waiting for a keyframe, at a sane pace.
use std::time::{Duration, Instant};

use super::Worker;
use crate::allocator::{allocate, Demand, Step};
use crate::ids::Key;
use crate::producer::Producer;
use crate::rtp_parameters::MediaKind;

/// How often each transport's downlink is shared out again.
pub(super) const ALLOCATE_EVERY: Duration = Duration::from_secs(1);

impl Worker {
    /// Runs the allocation of every transport that has an estimate, when due.
    pub(super) fn allocate_downlinks(&mut self, now: Instant) {
        if now < self.next_allocation {
            return;
        }
        self.next_allocation = now + ALLOCATE_EVERY;
        let due: Vec<Key> = self
            .transports
            .iter()
            .filter(|(_, t)| t.webrtc().is_some_and(|w| w.estimates_downlink() && !t.consumers().is_empty()))
            .map(|(k, _)| *k)
            .collect();
        for tkey in due {
            self.current = Some(tkey);
            self.allocate_transport(tkey, now);
        }
    }

    /// One transport's allocation (see the module's doc); also run at once when its estimate
    /// falls below what the last one gave out.
    pub(super) fn allocate_transport(&mut self, tkey: Key, now: Instant) {
        let Some(t) = self.transports.get(&tkey) else { return };
        let Some(available) = t.webrtc().and_then(|w| w.available_outgoing_bitrate()) else { return };
        let mut keys = Vec::with_capacity(t.consumers().len());
        let mut demands = Vec::with_capacity(t.consumers().len());
        for &ckey in t.consumers() {
            let Some(c) = self.consumers.get(&ckey) else { continue };
            let Some(p) = self.producers.get(&c.producer()) else { continue };
            if c.is_paused() || p.is_paused() {
                continue;
            }
            let demand = match c.layers() {
                Some(l) => {
                    let steps = ladder(p, l.preferred(), now);
                    let current = l.allowed().and_then(|(s, t)| steps.iter().position(|x| x.spatial == s && x.temporal == t));
                    Demand { priority: c.priority(), audio: false, simulcast: true, steps, current }
                }
                None => Demand {
                    priority: c.priority(),
                    audio: c.kind() == MediaKind::Audio,
                    simulcast: false,
                    steps: vec![Step { spatial: 0, temporal: 0, bps: p.stream_bitrate(0, now) }],
                    current: None,
                },
            };
            keys.push(ckey);
            demands.push(demand);
        }
        let allocation = allocate(available, &demands);
        // Probe for everything preferred. No padding is asked for (str0m keeps its own floor):
        // padding up to the next layer held a loopback browser's estimate back (its decoding
        // competes with the padding) and cost bandwidth; str0m's probes (on a rising demand, and
        // every 5 s while application-limited) find the room to climb.
        let desired: u64 = demands.iter().map(|d| d.steps.iter().map(|s| s.bps).max().unwrap_or(0)).sum();
        // Only simulcast consumers have layers (and only their demands are simulcast).
        for (ckey, layers) in keys.iter().zip(&allocation.layers) {
            if let Some(l) = self.consumers.get_mut(ckey).and_then(|c| c.layers_mut()) {
                l.set_allowed(*layers);
            }
        }
        if let Some(t) = self.transports.get(&tkey) {
            tracing::debug!(transport = %t.id(), available, used = allocation.used, desired, layers = ?allocation.layers, "downlink shared");
        }
        if let Some(w) = self.transports.get_mut(&tkey).and_then(|t| t.webrtc_mut()) {
            w.set_desired_bitrate(desired.max(allocation.used), allocation.used, now);
            self.dirty.push(tkey);
        }
    }
}

/// A simulcast consumer's ladder up to its `preferred` (spatial, temporal) layers: the temporal
/// layers of the lowest stream sending one by one, then each higher stream whole (up to the
/// preferred temporal layer); a stream not sending is listed at 0 bit/s.
fn ladder(p: &Producer, (spatial, temporal): (u8, u8), now: Instant) -> Vec<Step> {
    let active = |s: u8| p.stream_active(usize::from(s), now);
    let lowest = (0..=spatial).find(|s| active(*s));
    let mut steps = Vec::with_capacity(usize::from(spatial) + usize::from(temporal) + 1);
    for s in 0..=spatial {
        let bps = |t: u8| if active(s) { p.layer_bitrate(usize::from(s), t, now).max(1) } else { 0 };
        if Some(s) == lowest {
            steps.extend((0..=temporal).map(|t| Step { spatial: s, temporal: t, bps: bps(t) }));
        } else {
            steps.push(Step { spatial: s, temporal, bps: bps(temporal) });
        }
    }
    steps
}
