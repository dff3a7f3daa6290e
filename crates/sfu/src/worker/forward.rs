//! Forwarding: one producer packet fanned out to its consumers (the stream it belongs to, layer
//! selection, sequence numbers, payload rewriting per consumer) and queued on their transports,
//! which the flush then polls ([`super::media`]).
use std::time::Instant;

use str0m::media::Pt;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};

use super::Worker;
use crate::codec::VideoCodec;
use crate::consumer::{Incoming, PlainRtp, Selected};
use crate::ids::Key;
use crate::ortc::encodings::MAX_ENCODINGS;
use crate::rtp_parameters::MediaKind;
use crate::EngineEvent;

/// Bytes a forwarded packet takes on the wire besides its payload: RTP header and extensions
/// (~32), SRTP tag (16), UDP and IPv4 (28).
const WIRE_OVERHEAD: usize = 76;

impl Worker {
    /// Fan-out of one producer packet to its consumers (SSRC, PT and sequence rewritten; for
    /// simulcast, the stream each consumer forwards and its VP8 fields and timestamps). The
    /// consumers' Rtcs only queue it: their transports are polled by the flush.
    pub(super) fn forward(&mut self, tkey: Key, packet: RtpPacket, now: Instant) {
        let Some((pkey, layer)) = self.producer_stream(tkey, &packet) else { return };
        let Worker { transports, producers, consumers, routers, stats, dirty, out, current, events, .. } = self;
        let Some(producer) = producers.get_mut(&pkey) else { return };
        // Counted as on the wire, by temporal layer for simulcast: what the downlink allocator
        // weighs against the estimate.
        let layered = producer.stream_count() > 1 || producer.codec() == VideoCodec::Vp9;
        let tid = if layered { producer.codec().temporal_layer(&packet.payload) } else { 0 };
        let unrepaired = producer.heard_rtp(layer, *packet.seq_no, tid, packet.payload.len() + WIRE_OVERHEAD, &packet.payload, now);
        let producer = &*producer;
        if producer.is_paused() {
            return;
        }
        let Some(router_pt) = producer.router_pt(*packet.header.payload_type) else { return };
        let video = producer.kind() == MediaKind::Video;
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let (seq, h) = (*packet.seq_no, &packet.header);
        let layer = layer as u8; // at most MAX_ENCODINGS streams
        let active = |l: u8| producer.stream_active(usize::from(l), now);
        let mut want_keyframe = [false; MAX_ENCODINGS];
        if let Some(w) = want_keyframe.get_mut(usize::from(layer)) {
            *w = unrepaired;
        }
        for ckey in producer.consumers() {
            let Some(c) = consumers.get_mut(ckey) else { continue };
            if !c.wants(router_pt) {
                continue;
            }
            let Some(transport) = transports.get_mut(&c.transport()) else { continue };
            *current = Some(c.transport()); // a panic in its str0m closes that transport
            if transport.webrtc().is_some_and(|t| !t.is_connected()) {
                continue; // do not burn sequence numbers before SRTP is up
            }
            // Shared with str0m (it keeps it for retransmissions); a simulcast consumer rewrites
            // VP8 fields, so it gets a copy of its own, made once and rewritten in place.
            let mut payload = packet.payload.clone();
            let (mut timestamp, mut marker) = (h.timestamp, h.marker);
            let incoming = Incoming { layer, seq, timestamp, marker };
            if c.is_svc() {
                // An SVC consumer forwards the producer's payloads unchanged.
                match c.select_svc(incoming, &packet.payload) {
                    Selected::Send { marker: m, .. } => {
                        marker = m;
                        // Throttled per producer stream (one request a second reaches it).
                        want_keyframe[0] |= c.layers().is_some_and(|l| l.wants_keyframe());
                    }
                    Selected::Drop => continue,
                    Selected::WantKeyframe { .. } => {
                        want_keyframe[0] = true;
                        continue;
                    }
                }
            } else if c.layers().is_some() {
                let mut own: std::sync::Arc<[u8]> = std::sync::Arc::from(&packet.payload[..]);
                // Just made: no other reference to it exists yet.
                let Some(buf) = std::sync::Arc::get_mut(&mut own) else { continue };
                match c.select(incoming, active, buf, now) {
                    Selected::Send { timestamp: t, .. } => (timestamp, payload) = (t, own),
                    Selected::Drop => continue,
                    Selected::WantKeyframe { layer } => {
                        if let Some(w) = want_keyframe.get_mut(usize::from(layer)) {
                            *w = true;
                        }
                        continue;
                    }
                }
            } else if layer != 0 {
                continue;
            }
            if let Some((spatial, temporal)) = c.layers_mut().and_then(|l| l.take_layers_changed()) {
                tracing::debug!(consumer = %c.id(), spatial, temporal, "consumer layers changed");
                if let Some(router) = routers.get(&transport.router()).map(|r| r.id().clone()) {
                    events.push_back(EngineEvent::ConsumerLayersChanged { router, consumer: c.id().clone(), spatial, temporal });
                }
            }
            if let Some(p) = transport.plain() {
                match c.plain_rtp(router_pt, seq, timestamp, marker, &payload) {
                    PlainRtp::WantKeyframe => want_keyframe[usize::from(layer)] = true,
                    PlainRtp::Skip => {}
                    PlainRtp::Datagram(d) => {
                        stats.rtp_forwarded += 1;
                        out.push(p.rtp_addr(), d);
                    }
                }
                continue;
            }
            let Some(t) = transport.webrtc_mut() else { continue };
            let Some(out_seq) = c.next_seq(seq, payload.is_empty()) else { continue };
            let write = RtpWrite::new(Pt::from(router_pt), out_seq.into(), timestamp, packet.timestamp, payload)
                .marker(marker)
                .ext_vals(ext.clone())
                .nackable(video);
            if t.write_rtp(c.ssrc(), write) {
                stats.rtp_forwarded += 1;
                dirty.push(c.transport());
            }
        }
        *current = Some(tkey);
        for (l, _) in want_keyframe.iter().enumerate().filter(|(_, w)| **w) {
            self.request_keyframe_layer(pkey, l, false, now);
        }
    }

    /// The producer and stream (spatial layer) an RTP packet of transport `tkey` belongs to:
    /// by SSRC, or, for an SSRC not known yet, by the mid and rid header extensions of a rid
    /// stream's first packets (its SSRC is learned and guarded from then on).
    fn producer_stream(&mut self, tkey: Key, packet: &RtpPacket) -> Option<(Key, usize)> {
        let t = self.transports.get_mut(&tkey)?;
        let ssrc = *packet.header.ssrc;
        for p in t.producers() {
            if let Some(layer) = self.producers.get(p).and_then(|p| p.layer_of(ssrc)) {
                return Some((*p, layer));
            }
        }
        let (mid, rid) = (packet.header.ext_vals.mid?, packet.header.ext_vals.rid?);
        let pkey = t.producers().iter().copied().find(|p| self.producers.get(p).is_some_and(|p| p.plan().mid == *mid))?;
        let layer = self.producers.get_mut(&pkey)?.learn_stream(ssrc, &rid)?;
        tracing::debug!(ssrc, rid = %rid, layer, pt = *packet.header.payload_type, rrid = ?packet.header.ext_vals.rid_repair, "simulcast stream learned");
        if let Some(w) = t.webrtc_mut() {
            w.learned_stream(mid, ssrc);
        }
        Some((pkey, layer))
    }
}
