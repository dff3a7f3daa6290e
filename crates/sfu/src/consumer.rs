//! Consumer: one outgoing copy of a producer's stream on a transport (mediasoup's Consumer),
//! with its own SSRC, the router's payload types and its own unbroken sequence numbers
//! ([`SeqRewriter`]). A consumer of a simulcast producer forwards one of its streams at a time
//! ([`LayerSelector`]); one of a VP9 SVC producer, the layers of its stream it chooses
//! ([`SvcSelector`]). Consumers start paused.
use std::time::Instant;

use str0m::media::Mid;

use crate::codec::VideoCodec;
use crate::ids::{ConsumerId, Key};
use crate::layers::Layers;
use crate::rtp_parameters::MediaKind;
use crate::seq::SeqRewriter;
use crate::simulcast::{LayerSelector, LayerVerdict};
use crate::svc::{SvcSelector, SvcVerdict};
use crate::transport::plain::{rtp_packet, starts_keyframe};

pub(crate) struct Consumer {
    id: ConsumerId,
    producer: Key,
    transport: Key,
    kind: MediaKind,
    ssrc: u32,
    /// Its media section on a WebRTC transport (keyframe requests name it).
    mid: Mid,
    /// The router payload types of its media codecs.
    pts: Vec<u8>,
    /// The codec's MIME type (to spot keyframes) for plain consumers.
    mime: String,
    paused: bool,
    seq: SeqRewriter,
    /// Plain consumers hold video back until a keyframe, so recordings start decodable.
    awaiting_keyframe: bool,
    /// Simulcast and SVC producers only: which stream and layers go out.
    layers: Option<Layers>,
    /// 1..=255: its share of the downlink against the transport's other consumers
    /// (mediasoup's `consumer.setPriority`; default 1).
    priority: u8,
    /// (score, producer score) last told; both start at 10 (mediasoup's), which is not told.
    reported_score: (u8, u8),
}

/// What a consumer makes of one producer packet, before its transport sends it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Selected {
    /// Send it with this RTP timestamp and marker bit (the payload may have been rewritten).
    Send { timestamp: u32, marker: bool },
    /// Not for this consumer.
    Drop,
    /// Not sent; stream `layer` of the producer should send a keyframe.
    WantKeyframe { layer: u8 },
}

/// One packet of a producer, as the forwarder hands it to a consumer with layers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming {
    /// The producer's stream (simulcast spatial layer; 0 for SVC).
    pub layer: u8,
    /// Its extended sequence number.
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
}

/// What a plain consumer makes of one producer packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PlainRtp {
    /// Not sent: the consumer waits for a keyframe (ask the producer for one).
    WantKeyframe,
    /// Not sent (empty payload, or from before a resync); nothing to do.
    Skip,
    /// The RTP datagram to send.
    Datagram(Vec<u8>),
}

impl Consumer {
    /// A paused consumer; `plain` ones hold video until a keyframe.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: ConsumerId,
        producer: Key,
        transport: Key,
        kind: MediaKind,
        ssrc: u32,
        mid: Mid,
        pts: Vec<u8>,
        mime: String,
        plain: bool,
    ) -> Consumer {
        Consumer {
            id,
            producer,
            transport,
            kind,
            ssrc,
            mid,
            pts,
            mime,
            paused: true,
            seq: SeqRewriter::new(fastrand::u16(1000..30000)),
            awaiting_keyframe: plain && kind == MediaKind::Video,
            layers: None,
            priority: 1,
            reported_score: (10, 10),
        }
    }

    /// Makes it a consumer of a simulcast producer with `streams` spatial layers of
    /// `temporal_layers` temporal layers in `codec` (see [`LayerSelector`]).
    pub fn with_layers(mut self, streams: u8, temporal_layers: u8, codec: VideoCodec) -> Consumer {
        self.layers = Some(Layers::Simulcast(LayerSelector::new(streams, temporal_layers, codec)));
        self
    }

    /// Makes it a consumer of a VP9 SVC producer of `spatial` x `temporal` layers (`ksvc`: a
    /// `_KEY` scalability mode; see [`SvcSelector`]).
    pub fn with_svc(mut self, spatial: u8, temporal: u8, ksvc: bool) -> Consumer {
        self.layers = Some(Layers::Svc(SvcSelector::new(spatial, temporal, ksvc)));
        self
    }

    pub fn layers(&self) -> Option<&Layers> {
        self.layers.as_ref()
    }

    pub fn layers_mut(&mut self) -> Option<&mut Layers> {
        self.layers.as_mut()
    }

    /// Whether its packets are chosen by [`Self::select_svc`] (no payload rewriting) rather
    /// than [`Self::select`].
    pub fn is_svc(&self) -> bool {
        matches!(self.layers, Some(Layers::Svc(_)))
    }

    /// For a consumer of a VP9 SVC producer: decides for one packet (the payload goes out as it
    /// is; the marker bit may be set). Dropped packets leave no gap in the sequence numbers.
    pub fn select_svc(&mut self, p: Incoming, payload: &[u8]) -> Selected {
        let Some(Layers::Svc(svc)) = self.layers.as_mut() else { return Selected::Drop };
        match svc.packet(payload, p.marker) {
            SvcVerdict::Forward { marker } => Selected::Send { timestamp: p.timestamp, marker },
            SvcVerdict::Drop { skip } => {
                if skip {
                    self.seq.skip(p.seq);
                }
                Selected::Drop
            }
            SvcVerdict::WantKeyframe => Selected::WantKeyframe { layer: 0 },
        }
    }

    /// For a consumer of a simulcast producer ([`Self::with_layers`]; the forwarder sends a
    /// single-stream producer's packets as they are): decides for one packet of the producer's
    /// stream `p.layer`; `payload` is this consumer's copy (rewritten in place). `active(l)`:
    /// whether stream `l` is sending.
    pub fn select(&mut self, p: Incoming, active: impl Fn(u8) -> bool, payload: &mut [u8], now: Instant) -> Selected {
        let Some(Layers::Simulcast(layers)) = self.layers.as_mut() else { return Selected::Drop };
        match layers.packet(p.layer, active, p.timestamp, payload, now) {
            LayerVerdict::Forward { timestamp, switched } => {
                if switched {
                    self.seq.pause(); // a new stream: the numbers go on from the last one sent
                }
                Selected::Send { timestamp, marker: p.marker }
            }
            LayerVerdict::Drop { skip } => {
                if skip {
                    self.seq.skip(p.seq);
                }
                Selected::Drop
            }
            LayerVerdict::WantKeyframe { layer } => Selected::WantKeyframe { layer },
        }
    }

    pub fn id(&self) -> &ConsumerId {
        &self.id
    }

    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// mediasoup's `consumer.setPriority`: 1..=255 (0 is taken as 1).
    pub fn set_priority(&mut self, priority: u8) {
        self.priority = priority.max(1);
    }

    /// Whether (score, producer score) differ from what was last told; if so they count as told.
    pub fn score_changed(&mut self, score: u8, producer_score: u8) -> bool {
        std::mem::replace(&mut self.reported_score, (score, producer_score)) != (score, producer_score)
    }

    pub fn producer(&self) -> Key {
        self.producer
    }

    pub fn transport(&self) -> Key {
        self.transport
    }

    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The MIME type of its first codec (`video/VP8`, `audio/opus`, ...).
    pub fn mime(&self) -> &str {
        &self.mime
    }

    pub fn mid(&self) -> Mid {
        self.mid
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Pauses or resumes; whether anything changed.
    pub fn set_paused(&mut self, paused: bool) -> bool {
        if self.paused == paused {
            return false;
        }
        self.paused = paused;
        if paused {
            self.seq.pause();
            if let Some(l) = self.layers.as_mut() {
                l.reset();
            }
        }
        true
    }

    /// Its producer paused or resumed: the stream continues from its last number (simulcast:
    /// from a keyframe).
    pub fn producer_paused(&mut self) {
        self.seq.pause();
        if let Some(l) = self.layers.as_mut() {
            l.reset();
        }
    }

    /// Whether a packet of router payload type `pt` goes to this consumer now.
    pub fn wants(&self, router_pt: u8) -> bool {
        !self.paused && self.pts.contains(&router_pt)
    }

    /// The consumer's sequence number for a producer packet, or None when the packet is not
    /// sent: an empty payload (padding; skipped without a gap) or one from before a resync.
    pub fn next_seq(&mut self, seq: u64, payload_empty: bool) -> Option<u64> {
        if payload_empty {
            self.seq.skip(seq);
            return None;
        }
        self.seq.rewrite(seq)
    }

    /// One packet for a plain (recording) consumer: raw RTP, video held until a keyframe.
    /// `seq` is the producer's extended sequence number, `timestamp` its RTP timestamp.
    pub fn plain_rtp(&mut self, router_pt: u8, seq: u64, timestamp: u32, marker: bool, payload: &[u8]) -> PlainRtp {
        if self.awaiting_keyframe {
            if !starts_keyframe(&self.mime, payload) {
                return PlainRtp::WantKeyframe;
            }
            self.awaiting_keyframe = false;
        }
        let Some(seq) = self.next_seq(seq, payload.is_empty()) else { return PlainRtp::Skip };
        let mut datagram = Vec::with_capacity(12 + payload.len());
        // The wire carries the extended number modulo 2^16 (RFC 3550).
        rtp_packet(router_pt, seq as u16, timestamp, self.ssrc, marker, payload, &mut datagram);
        PlainRtp::Datagram(datagram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(kind: MediaKind, plain: bool) -> Consumer {
        let key = Key::default().next();
        Consumer::new(ConsumerId::new(0, key), key, key, kind, 1234, Mid::from("0"), vec![101], "video/VP8".into(), plain)
    }

    #[test]
    fn a_consumer_starts_paused_and_takes_only_its_payload_types() {
        let mut c = consumer(MediaKind::Video, false);
        assert!(!c.wants(101), "paused at first");
        assert!(c.set_paused(false));
        assert!(!c.set_paused(false), "no change");
        assert!(c.wants(101));
        assert!(!c.wants(100));
    }

    #[test]
    fn the_stream_continues_without_gaps_across_pauses_and_padding() {
        let mut c = consumer(MediaKind::Video, false);
        c.set_paused(false);
        let a = c.next_seq(500, false).unwrap();
        assert_eq!(c.next_seq(501, false), Some(a + 1));
        assert_eq!(c.next_seq(502, true), None, "padding is skipped");
        assert_eq!(c.next_seq(503, false), Some(a + 2), "without a gap");
        c.set_paused(true);
        c.set_paused(false);
        assert_eq!(c.next_seq(9000, false), Some(a + 3), "after a pause the numbers go on");
        c.producer_paused();
        assert_eq!(c.next_seq(20, false), Some(a + 4), "and after the producer's");
    }

    #[test]
    fn priorities_are_at_least_one_and_scores_are_told_once() {
        let mut c = consumer(MediaKind::Video, false);
        assert_eq!(c.priority(), 1);
        c.set_priority(0);
        assert_eq!(c.priority(), 1);
        c.set_priority(200);
        assert_eq!(c.priority(), 200);
        assert!(!c.score_changed(10, 10), "both start at 10");
        assert!(c.score_changed(8, 10));
        assert!(!c.score_changed(8, 10), "told once");
        assert!(c.score_changed(8, 7), "the producer's score counts too");
    }

    #[test]
    fn a_plain_video_consumer_waits_for_a_keyframe() {
        let mut c = consumer(MediaKind::Video, true);
        c.set_paused(false);
        let delta = vec![0x90, 0x80, 0x80, 0x01, 0x11, 0, 0];
        let key = vec![0x90, 0x80, 0x80, 0x01, 0x10, 0, 0, 0x9d];
        assert_eq!(c.plain_rtp(101, 1, 0, true, &delta), PlainRtp::WantKeyframe);
        let PlainRtp::Datagram(d) = c.plain_rtp(101, 2, 0, true, &key) else { panic!("the keyframe goes out") };
        assert_eq!((d[1] & 0x7f, &d[8..12], &d[12..]), (101, &1234u32.to_be_bytes()[..], &key[..]));
        assert!(matches!(c.plain_rtp(101, 3, 0, true, &delta), PlainRtp::Datagram(_)), "then everything");
        assert_eq!(c.plain_rtp(101, 4, 0, true, &[]), PlainRtp::Skip);
    }
}
