//! Layer selection for one consumer of a VP9 SVC producer (mediasoup's SvcConsumer): the
//! producer sends one RTP stream whose pictures hold up to three spatial layers (SID) of up to
//! three temporal layers (TID), told by the VP9 payload descriptor ([`crate::vp9`]). The
//! consumer forwards the packets with SID at most its **current** spatial layer and TID at
//! most its current temporal layer; the current layers move towards the **target** ones (the
//! preferred layers, capped by what the downlink allows):
//! - it starts (and restarts after a pause) on a keyframe, at the target layers;
//! - spatial up on a keyframe, or on a layer-switch point: the start of a frame of a higher
//!   layer (up to the target) that is not inter-picture predicted;
//! - spatial down at the end of a frame of the target layer (full SVC: the lower layers were
//!   forwarded all along); with K-SVC (`L3T3_KEY`: upper layers refer to lower ones only on
//!   keyframes) on a keyframe. Unlike mediasoup, the lower layers of K-SVC's inter pictures are
//!   forwarded too: without them Chromium 156's receiver stalled after a switch down in 3 of 11
//!   runs of tests/e2e/vp9-svc.test.mjs (no frame for 2 s or more, once 7.6 s), with them it
//!   switched down within 0.5 s in 7 of 7; they cost their bitrate;
//! - temporal up at the start of a frame that is a switching up point (U) of a higher layer,
//!   down at the start of the next picture.
//!
//! The last packet of the highest spatial layer forwarded of each picture gets the marker bit
//! (the end of a layer frame, E, at the current layer), as the receiver's picture ends there.
//! The stream is the producer's: timestamps and picture ids go as they are; the caller skips
//! the sequence numbers of dropped packets without a gap.
use crate::vp9;

/// What to do with one packet of the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SvcVerdict {
    /// Not sent; `skip`: its sequence number is skipped without a gap.
    Drop { skip: bool },
    /// Not sent: the consumer waits for a keyframe.
    WantKeyframe,
    /// Sent with this marker bit.
    Forward { marker: bool },
}

#[derive(Debug)]
pub(crate) struct SvcSelector {
    spatial_layers: u8,
    temporal_layers: u8,
    /// K-SVC (`_KEY` modes).
    ksvc: bool,
    preferred_spatial: u8,
    preferred_temporal: u8,
    /// What the downlink allocation gave last ([`crate::allocator`]); None: no limit. Only its
    /// temporal layer is applied: the allocation prices an SVC stream by temporal layer (its
    /// spatial layers are not told apart in the producer's bitrates yet), as spatial layer 0.
    allowed: Option<(u8, u8)>,
    /// (spatial, temporal) forwarded; None until a keyframe.
    current: Option<(u8, u8)>,
    reported: Option<(u8, u8)>,
}

impl SvcSelector {
    /// A selector for a stream of `spatial_layers` x `temporal_layers` (`ksvc`: a `_KEY`
    /// mode); prefers the highest of both.
    pub fn new(spatial_layers: u8, temporal_layers: u8, ksvc: bool) -> SvcSelector {
        let (spatial_layers, temporal_layers) = (spatial_layers.clamp(1, 8), temporal_layers.clamp(1, 8));
        SvcSelector {
            spatial_layers,
            temporal_layers,
            ksvc,
            preferred_spatial: spatial_layers - 1,
            preferred_temporal: temporal_layers - 1,
            allowed: None,
            current: None,
            reported: None,
        }
    }

    /// mediasoup's `setPreferredLayers`, clamped to the layers there are (`temporal` None: the
    /// highest).
    pub fn set_preferred(&mut self, spatial: u8, temporal: Option<u8>) {
        self.preferred_spatial = spatial.min(self.spatial_layers - 1);
        self.preferred_temporal = temporal.unwrap_or(u8::MAX).min(self.temporal_layers - 1);
    }

    pub fn preferred(&self) -> (u8, u8) {
        (self.preferred_spatial, self.preferred_temporal)
    }

    pub fn set_allowed(&mut self, allowed: Option<(u8, u8)>) {
        self.allowed = allowed;
    }

    pub fn allowed(&self) -> Option<(u8, u8)> {
        self.allowed
    }

    /// Forget the current layers (the consumer or its producer paused): restart on a keyframe.
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// The (spatial, temporal) layers to aim for: the preferred ones, temporal capped by the
    /// downlink's allocation.
    pub fn target(&self) -> (u8, u8) {
        let allowed_temporal = self.allowed.map_or(u8::MAX, |(_, t)| t);
        (self.preferred_spatial, self.preferred_temporal.min(allowed_temporal))
    }

    /// One packet of the producer's stream with its RTP `marker`.
    pub fn packet(&mut self, payload: &[u8], marker: bool) -> SvcVerdict {
        let Ok(d) = vp9::parse(payload) else {
            // Undecodable: the receiver could not use it either.
            return SvcVerdict::Drop { skip: self.current.is_some() };
        };
        let (target_s, target_t) = self.target();
        let Some((mut s, mut t)) = self.current else {
            if !d.keyframe() {
                return SvcVerdict::WantKeyframe;
            }
            self.current = Some((target_s, target_t));
            return self.filter(&d, marker, (target_s, target_t));
        };
        if d.sid >= self.spatial_layers || d.tid >= self.temporal_layers {
            return SvcVerdict::Drop { skip: true };
        }
        if target_s > s {
            if d.keyframe() {
                (s, t) = (target_s, target_t);
            } else if d.start_of_frame && !d.inter_picture_predicted && d.sid > s && d.sid <= target_s {
                s = d.sid;
            }
        } else if target_s < s {
            let down = if self.ksvc { d.keyframe() } else { d.sid == target_s && d.end_of_frame };
            if down {
                s = target_s;
            }
        }
        if target_t > t {
            if d.start_of_frame && d.switching_up_point && d.tid > t && d.tid <= target_t {
                t = d.tid;
            }
        } else if target_t < t && d.start_of_frame && d.sid == 0 {
            t = target_t; // a new picture: its higher temporal layers are simply not sent
        }
        self.current = Some((s, t));
        self.filter(&d, marker, (s, t))
    }

    /// Forwards a packet within the current layers `(s, t)`; sets the marker at the end of a
    /// frame of layer `s`.
    fn filter(&self, d: &vp9::Vp9Descriptor, marker: bool, (s, t): (u8, u8)) -> SvcVerdict {
        if d.sid > s || d.tid > t {
            return SvcVerdict::Drop { skip: true };
        }
        SvcVerdict::Forward { marker: marker || (d.sid == s && d.end_of_frame) }
    }

    /// Whether the move to the target spatial layer waits for a keyframe (going up, or down in
    /// K-SVC): the producer should be asked for one (mediasoup's SvcConsumer asks when its
    /// target layer changes; the producer's throttle keeps it to one a second).
    pub fn wants_keyframe(&self) -> bool {
        let Some((s, _)) = self.current else { return false };
        let target = self.target().0;
        target > s || (self.ksvc && target < s)
    }

    /// (spatial, temporal) now forwarded, when it changed since the last call.
    pub fn take_layers_changed(&mut self) -> Option<(u8, u8)> {
        let now = self.current?;
        (self.reported != Some(now)).then(|| {
            self.reported = Some(now);
            now
        })
    }
}

#[cfg(test)]
#[path = "svc_tests.rs"]
mod tests;
