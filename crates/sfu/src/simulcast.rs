//! Layer selection for one consumer of a simulcast producer (mediasoup's SimulcastConsumer).
//!
//! The producer sends one RTP stream per spatial layer (lowest first), each VP8 with temporal
//! layers. A consumer forwards one stream at a time:
//! - its **target** spatial layer is the highest one at or below its preferred layer whose
//!   stream is active; while the target differs from the
//!   **current** layer, the current stream goes on being forwarded, and the switch happens on
//!   the first keyframe of the target stream (the consumer asks for one).
//! - the stream switch keeps what the receiver sees continuous: the caller resyncs sequence
//!   numbers (the packet says `switched`), the RTP timestamp continues from the last one sent
//!   plus the wall-clock time since then, and VP8 picture ids and TL0PICIDX continue
//!   ([`Vp8Munger::switch_stream`]).
//! - temporal layers above the preferred one are dropped by the VP8 descriptor's TID; the
//!   sequence numbers of dropped packets are skipped without a gap.
//!
//! H264 simulcast works the same, without a payload descriptor: keyframes are told by their
//! NAL units ([`crate::h264`]), every packet of the forwarded stream goes out (one temporal
//! layer), and there are no picture ids to rewrite.
use std::time::Instant;

use crate::codec::VideoCodec;
use crate::vp8::{Vp8Munger, Vp8Verdict};

/// RTP clock of video (RFC 7741: VP8 uses 90 kHz).
const VIDEO_CLOCK_HZ: u64 = 90_000;

/// What to do with one packet of the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerVerdict {
    /// Not sent. `skip`: it belongs to the stream being forwarded, so its sequence number is
    /// skipped without a gap (a dropped temporal layer).
    Drop { skip: bool },
    /// Not sent, and stream `layer` should send a keyframe (the consumer waits for one).
    WantKeyframe { layer: u8 },
    /// Sent with this RTP timestamp (the payload was rewritten in place). `switched`: the first
    /// packet of a new stream: resync the sequence numbers before this one.
    Forward { timestamp: u32, switched: bool },
}

#[derive(Debug)]
pub(crate) struct LayerSelector {
    codec: VideoCodec,
    streams: u8,
    temporal_layers: u8,
    preferred_spatial: u8,
    preferred_temporal: u8,
    /// The highest (spatial, temporal) layers the transport's downlink allows (the allocator's
    /// say; the temporal limit holds on that spatial layer only); None: no limit.
    allowed: Option<(u8, u8)>,
    current_spatial: Option<u8>,
    munger: Vp8Munger,
    /// out timestamp = in + offset (wrapping) for the current stream.
    ts_offset: u32,
    /// The newest timestamp sent and when.
    last_sent: Option<(u32, Instant)>,
    /// (spatial, temporal) last reported, to tell changes.
    reported: Option<(u8, u8)>,
}

impl LayerSelector {
    /// A selector for `streams` spatial layers of `temporal_layers` temporal layers each (one
    /// for a codec whose temporal layers are not told apart: H264); prefers the highest of both
    /// (mediasoup's default).
    pub fn new(streams: u8, temporal_layers: u8, codec: VideoCodec) -> LayerSelector {
        let temporal_layers = if codec.has_temporal_layers() { temporal_layers } else { 1 };
        let (streams, temporal_layers) = (streams.max(1), temporal_layers.max(1));
        LayerSelector {
            codec,
            streams,
            temporal_layers,
            preferred_spatial: streams - 1,
            preferred_temporal: temporal_layers - 1,
            allowed: None,
            current_spatial: None,
            munger: Vp8Munger::new(),
            ts_offset: 0,
            last_sent: None,
            reported: None,
        }
    }

    /// mediasoup's `setPreferredLayers`: clamped to the layers there are; `temporal` None means
    /// the highest.
    pub fn set_preferred(&mut self, spatial: u8, temporal: Option<u8>) {
        self.preferred_spatial = spatial.min(self.streams - 1);
        self.preferred_temporal = temporal.unwrap_or(u8::MAX).min(self.temporal_layers - 1);
    }

    /// (spatial, temporal) preferred.
    pub fn preferred(&self) -> (u8, u8) {
        (self.preferred_spatial, self.preferred_temporal)
    }

    /// The spatial layer being forwarded, if any.
    pub fn current_spatial(&self) -> Option<u8> {
        self.current_spatial
    }

    /// Forget the current stream (the consumer was paused): the next one starts on a keyframe.
    pub fn reset(&mut self) {
        self.current_spatial = None;
    }

    /// The highest (spatial, temporal) layers the downlink allows (None: no limit); the
    /// temporal limit holds on that spatial layer only (a lower one, forwarded because the
    /// allowed one is not sending, goes whole). See [`crate::allocator`].
    pub fn set_allowed(&mut self, allowed: Option<(u8, u8)>) {
        self.allowed = allowed;
    }

    /// What [`Self::set_allowed`] set last (None: no limit).
    pub fn allowed(&self) -> Option<(u8, u8)> {
        self.allowed
    }

    /// The layer to aim for: the highest active one at or below both the preferred and the
    /// allowed one; else the lowest active one; else the lowest.
    pub fn target(&self, active: impl Fn(u8) -> bool) -> u8 {
        let top = self.allowed.map_or(self.preferred_spatial, |(s, _)| self.preferred_spatial.min(s));
        (0..=top).rev().find(|l| active(*l)).or_else(|| (0..self.streams).find(|l| active(*l))).unwrap_or(0)
    }

    /// One packet of stream `layer` with RTP `timestamp`, arriving `now`; `payload` is this
    /// consumer's copy (VP8 fields rewritten in place when it is sent). `active(l)`: whether
    /// stream `l` is sending.
    pub fn packet(&mut self, layer: u8, active: impl Fn(u8) -> bool, timestamp: u32, payload: &mut [u8], now: Instant) -> LayerVerdict {
        let target = self.target(active);
        let mut switched = false;
        if Some(layer) != self.current_spatial {
            if layer != target {
                return LayerVerdict::Drop { skip: false };
            }
            if !self.codec.starts_keyframe(payload) {
                return LayerVerdict::WantKeyframe { layer };
            }
            self.switch_to(layer, timestamp, now);
            switched = true;
        }
        if self.codec == VideoCodec::Vp8 {
            if let Some(verdict) = self.vp8_layers(layer, payload, switched) {
                return verdict;
            }
        }
        let out = timestamp.wrapping_add(self.ts_offset);
        // Newer than the last sent (RFC 3550 timestamps wrap; half the space decides).
        if self.last_sent.is_none_or(|(last, _)| out.wrapping_sub(last) < 1 << 31) {
            self.last_sent = Some((out, now));
        }
        LayerVerdict::Forward { timestamp: out, switched }
    }

    /// VP8: drops the temporal layers above the one forwarded and rewrites picture ids and
    /// TL0PICIDX ([`Vp8Munger`]); Some(verdict) for a packet not sent.
    fn vp8_layers(&mut self, layer: u8, payload: &mut [u8], switched: bool) -> Option<LayerVerdict> {
        let max_temporal = match self.allowed {
            Some((s, t)) if s == layer => self.preferred_temporal.min(t),
            _ => self.preferred_temporal,
        };
        match self.munger.process(payload, max_temporal) {
            Ok((Vp8Verdict::Forward, _)) => None,
            // A packet of the stream being forwarded that is not sent: no gap for it. An
            // undecodable one is dropped the same way (the receiver could not use it).
            Ok((Vp8Verdict::Drop, _)) | Err(_) => Some(LayerVerdict::Drop { skip: !switched }),
        }
    }

    /// (spatial, temporal) now forwarded, when it changed since the last call.
    pub fn take_layers_changed(&mut self) -> Option<(u8, u8)> {
        let now = (self.current_spatial?, self.munger.current_temporal().unwrap_or(0));
        (self.reported != Some(now)).then(|| {
            self.reported = Some(now);
            now
        })
    }

    /// The first packet (a keyframe) of stream `layer`: its timestamps continue from the last
    /// one sent plus the time since it was sent (at least one tick).
    fn switch_to(&mut self, layer: u8, timestamp: u32, now: Instant) {
        let out = match self.last_sent {
            Some((last, at)) => {
                let elapsed = now.saturating_duration_since(at).as_micros() as u64 * VIDEO_CLOCK_HZ / 1_000_000;
                last.wrapping_add(elapsed.clamp(1, u64::from(u32::MAX >> 2)) as u32)
            }
            None => timestamp,
        };
        self.ts_offset = out.wrapping_sub(timestamp);
        self.munger.switch_stream();
        self.current_spatial = Some(layer);
    }
}

#[cfg(test)]
#[path = "simulcast_tests.rs"]
mod tests;
