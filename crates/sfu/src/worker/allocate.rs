//! Downlink allocation: every [`ALLOCATE_EVERY`], each receive transport that estimates its
//! downlink shares the estimate among its consumers ([`crate::allocator`]), caps the spatial
//! layer of its simulcast consumers accordingly, and tells str0m's estimator what to keep up
//! and what to probe for. mediasoup redistributes on each new estimate of its transport-cc
//! client; once a second keeps layer switches (each waits for a keyframe) at a sane pace.
use std::time::{Duration, Instant};

use super::Worker;
use crate::allocator::{allocate, Demand};
use crate::ids::Key;
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

    /// One transport's allocation (see the module's doc).
    fn allocate_transport(&mut self, tkey: Key, now: Instant) {
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
                Some(l) => Demand {
                    priority: c.priority(),
                    audio: false,
                    simulcast: true,
                    layers: (0..=usize::from(l.preferred().0))
                        .map(|s| if p.stream_active(s, now) { p.stream_bitrate(s, now).max(1) } else { 0 })
                        .collect(),
                },
                None => Demand {
                    priority: c.priority(),
                    audio: c.kind() == MediaKind::Audio,
                    simulcast: false,
                    layers: vec![p.stream_bitrate(0, now)],
                },
            };
            keys.push(ckey);
            demands.push(demand);
        }
        let allocation = allocate(available, &demands);
        // Probe for everything preferred; keep up what is used plus the cheapest next step.
        let desired: u64 = demands.iter().map(|d| d.layers.iter().copied().max().unwrap_or(0)).sum();
        let mut next_step = u64::MAX;
        for ((ckey, layer), d) in keys.iter().zip(&allocation.layers).zip(&demands) {
            if !d.simulcast {
                continue;
            }
            if let Some(l) = self.consumers.get_mut(ckey).and_then(|c| c.layers_mut()) {
                l.set_allowed(*layer);
            }
            let now_bps = layer.map_or(0, |l| d.layers[usize::from(l)]);
            let from = layer.map_or(0, |l| usize::from(l) + 1);
            if let Some(up) = d.layers[from.min(d.layers.len())..].iter().find(|b| **b > 0) {
                next_step = next_step.min(up.saturating_sub(now_bps));
            }
        }
        let minimum = allocation.used.saturating_add(if next_step == u64::MAX { 0 } else { next_step });
        if let Some(w) = self.transports.get_mut(&tkey).and_then(|t| t.webrtc_mut()) {
            w.set_bwe_bitrates(minimum, desired.max(allocation.used));
            self.dirty.push(tkey);
        }
    }
}
