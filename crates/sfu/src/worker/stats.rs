//! mediasoup's `getStats()` of a worker's transports, producers and consumers, and one line of
//! figures per transport for metrics, from what str0m reports once a second (see
//! [`crate::stats`]).
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use str0m::media::Mid;

use super::Worker;
use crate::error::{ConsumerError, ProducerError, TransportError};
use crate::ids::{ConsumerId, Key, ProducerId, TransportId};
use crate::rtp_parameters::MediaKind;
use crate::stats::{score, EncodingScore, RtpStreamStats, TransportQuality, TransportStats};
use crate::transport::quality::Quality;
use crate::EngineEvent;

/// A producer (not paused) with no RTP for this long counts as silent.
pub const SILENT_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn clock_rate(kind: MediaKind) -> u32 {
    match kind {
        MediaKind::Audio => 48_000,
        MediaKind::Video => 90_000,
    }
}

/// RTCP's fraction lost (0..=255) from a fraction (0..1).
fn fraction_byte(loss: f32) -> u8 {
    (loss.clamp(0.0, 1.0) * 255.0).round() as u8
}

impl Worker {
    /// Hands a str0m statistics report to the transport it is about.
    pub(super) fn with_quality(&mut self, tkey: Key, f: impl FnOnce(&mut Quality)) {
        if let Some(t) = self.transports.get_mut(&tkey).and_then(|t| t.webrtc_mut()) {
            f(t.quality_mut());
        }
    }

    /// `WebRtcTransport.getStats()`.
    pub fn transport_stats(&self, id: &TransportId) -> Result<TransportStats, TransportError> {
        let key = self.transport_key(id).ok_or(TransportError::UnknownTransport)?;
        let t = self.transports.get(&key).and_then(|t| t.webrtc()).ok_or(TransportError::UnknownTransport)?;
        Ok(t.stats(id.clone(), now_ms()))
    }

    /// `Producer.getStats()`: its inbound stream.
    pub fn producer_stats(&self, id: &ProducerId) -> Result<Vec<RtpStreamStats>, ProducerError> {
        let key = self.producer_key(id).ok_or(ProducerError::UnknownProducer)?;
        Ok(self.inbound(key).into_iter().collect())
    }

    /// `Consumer.getStats()`: its outbound stream, then its producer's inbound one (as mediasoup).
    pub fn consumer_stats(&self, id: &ConsumerId) -> Result<Vec<RtpStreamStats>, ConsumerError> {
        let key = self.consumer_key(id).ok_or(ConsumerError::UnknownConsumer)?;
        let c = self.consumers.get(&key).ok_or(ConsumerError::UnknownConsumer)?;
        let q = self.transports.get(&c.transport()).and_then(|t| t.webrtc()).map(|t| t.quality());
        let e = q.and_then(|q| q.egress.get(&c.mid()));
        let loss = q.and_then(|q| q.egress_loss(&c.mid())).unwrap_or(0.0);
        let outbound = RtpStreamStats {
            kind_of_stat: "outbound-rtp",
            timestamp: now_ms(),
            ssrc: c.ssrc(),
            rtx_ssrc: None,
            kind: c.kind(),
            mime_type: c.mime().to_string(),
            packets_lost: e.and_then(|e| e.stats.remote.as_ref()).map_or(0, |r| r.packets_lost),
            fraction_lost: fraction_byte(loss),
            packet_count: e.map_or(0, |e| e.stats.packets),
            byte_count: e.map_or(0, |e| e.stats.bytes),
            bitrate: e.map_or(0, |e| e.rate.bps()),
            nack_count: e.map_or(0, |e| e.stats.nacks),
            pli_count: e.map_or(0, |e| e.stats.plis),
            fir_count: e.map_or(0, |e| e.stats.firs),
            score: score(loss),
            round_trip_time: e.and_then(|e| e.stats.rtt).map(|d| d.as_secs_f64() * 1000.0),
            jitter: e.and_then(|e| e.stats.remote.as_ref()).map_or(0, |r| r.jitter),
        };
        Ok(std::iter::once(outbound).chain(self.inbound(c.producer())).collect())
    }

    /// A producer's inbound stream as the engine sees it.
    fn inbound(&self, key: Key) -> Option<RtpStreamStats> {
        let p = self.producers.get(&key)?;
        let q = self.transports.get(&p.transport()).and_then(|t| t.webrtc()).map(|t| t.quality());
        let mid = Mid::from(p.plan().mid.as_str());
        let i = q.and_then(|q| q.ingress.get(&mid));
        // Before NACK recovery (str0m's own figure counts repaired packets as received).
        let loss = q.and_then(|q| q.upstream_loss(&mid)).unwrap_or(0.0);
        Some(RtpStreamStats {
            kind_of_stat: "inbound-rtp",
            timestamp: now_ms(),
            ssrc: p.ssrc(),
            rtx_ssrc: p.plan().encodings.first().and_then(|e| e.rtx_ssrc),
            kind: p.kind(),
            mime_type: p.plan().consumable_codecs.first().map(|c| c.mime_type.clone()).unwrap_or_default(),
            packets_lost: 0,
            fraction_lost: fraction_byte(loss),
            packet_count: i.map_or(0, |i| i.stats.packets),
            byte_count: i.map_or(0, |i| i.stats.bytes),
            bitrate: i.map_or(0, |i| i.rate.bps()),
            nack_count: i.map_or(0, |i| i.stats.nacks),
            pli_count: i.map_or(0, |i| i.stats.plis),
            fir_count: i.map_or(0, |i| i.stats.firs),
            score: score(loss),
            round_trip_time: i.and_then(|i| i.stats.rtt).map(|d| d.as_secs_f64() * 1000.0),
            jitter: i.map_or(0, |i| i.stats.jitter),
        })
    }

    /// After a report round on `tkey`: the new score of each of its producers, told when it
    /// changed ([`EngineEvent::ProducerScore`]); then the scores of its consumers and of the
    /// consumers of those producers ([`EngineEvent::ConsumerScore`]).
    pub(super) fn update_scores(&mut self, tkey: Key) {
        let Some(t) = self.transports.get(&tkey) else { return };
        let Some(router) = self.routers.get(&t.router()).map(|r| r.id().clone()) else { return };
        let Some(q) = t.webrtc().map(|w| w.quality()) else { return };
        let mut consumers: Vec<Key> = t.consumers().to_vec();
        for &pkey in t.producers() {
            let Some(p) = self.producers.get_mut(&pkey) else { continue };
            let Some(loss) = q.upstream_loss(&Mid::from(p.plan().mid.as_str())) else { continue };
            let s = score(loss);
            if p.set_score(s) {
                let score = vec![EncodingScore { encoding_idx: 0, ssrc: p.ssrc(), rid: None, score: s }];
                self.events.push_back(EngineEvent::ProducerScore { router: router.clone(), producer: p.id().clone(), score });
                consumers.extend_from_slice(p.consumers());
            }
        }
        for ckey in consumers {
            self.update_consumer_score(ckey, &router);
        }
    }

    /// A consumer's score from its receiver's reports (10 until there is one), told when it or
    /// its producer's changed (not at first: both start at 10).
    fn update_consumer_score(&mut self, ckey: Key, router: &crate::RouterId) {
        let Some(c) = self.consumers.get_mut(&ckey) else { return };
        let Some(producer_score) = self.producers.get(&c.producer()).map(|p| p.score()) else { return };
        let q = self.transports.get(&c.transport()).and_then(|t| t.webrtc()).map(|t| t.quality());
        let loss = q.and_then(|q| q.egress_loss(&c.mid())).unwrap_or(0.0);
        let s = score(loss);
        if c.score_changed(s, producer_score) {
            self.events.push_back(EngineEvent::ConsumerScore {
                router: router.clone(),
                consumer: c.id().clone(),
                score: s,
                producer_score,
            });
        }
    }

    /// Every WebRTC transport's figures (metrics).
    pub fn transport_qualities(&self) -> Vec<TransportQuality> {
        let mut out = Vec::with_capacity(self.transports.len());
        for t in self.transports.values() {
            let Some(w) = t.webrtc() else { continue };
            let kind_of = |mid: &Mid| {
                t.consumers().iter().filter_map(|c| self.consumers.get(c)).find(|c| c.mid() == *mid).map(|c| clock_rate(c.kind()))
            };
            let mut q = w.quality().summary(kind_of);
            q.id = Some(t.id().clone());
            out.push(q);
        }
        out
    }

    /// Producers not paused that received no RTP for [`SILENT_AFTER`].
    pub(super) fn silent_producers(&self, now: Instant) -> usize {
        self.producers.values().filter(|p| !p.is_paused() && now.saturating_duration_since(p.last_rtp()) >= SILENT_AFTER).count()
    }
}
