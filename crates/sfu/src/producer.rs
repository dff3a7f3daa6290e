//! Producer: one incoming stream of a send transport (mediasoup's Producer). Its plan (the
//! validated parameters, see [`crate::ortc::producer_plan`]) maps the client's payload types to
//! the router's and is what its consumers are built from.
use std::time::{Duration, Instant};

use crate::error::ProduceError;
use crate::ids::{Key, ProducerId};
use crate::ortc::ProducerPlan;
use crate::rtp_parameters::MediaKind;

/// Keyframe requests reach a producer at most this often (unless forced, e.g. by a resume).
pub(crate) const KEYFRAME_THROTTLE: Duration = Duration::from_secs(1);

pub(crate) struct Producer {
    id: ProducerId,
    transport: Key,
    router: Key,
    kind: MediaKind,
    cname: String,
    /// (client payload type, router payload type); a handful of entries, scanned per packet.
    pt_map: Vec<(u8, u8)>,
    plan: ProducerPlan,
    consumers: Vec<Key>,
    paused: bool,
    last_keyframe_request: Option<Instant>,
    last_rtp: Instant,
    score: u8,
}

impl Producer {
    pub fn new(id: ProducerId, transport: Key, router: Key, kind: MediaKind, cname: String, plan: ProducerPlan, now: Instant) -> Producer {
        Producer {
            id,
            transport,
            router,
            kind,
            cname,
            pt_map: plan.mapping.iter().map(|m| (m.client_pt, m.router_pt)).collect(),
            plan,
            consumers: Vec::new(),
            paused: false,
            last_keyframe_request: None,
            last_rtp: now,
            score: 10,
        }
    }

    pub fn id(&self) -> &ProducerId {
        &self.id
    }

    pub fn transport(&self) -> Key {
        self.transport
    }

    pub fn router(&self) -> Key {
        self.router
    }

    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    pub fn cname(&self) -> &str {
        &self.cname
    }

    pub fn plan(&self) -> &ProducerPlan {
        &self.plan
    }

    /// The media SSRC the client sends.
    pub fn ssrc(&self) -> u32 {
        self.plan.ssrc
    }

    pub fn consumers(&self) -> &[Key] {
        &self.consumers
    }

    pub fn add_consumer(&mut self, key: Key) {
        self.consumers.push(key);
    }

    pub fn remove_consumer(&mut self, key: Key) {
        self.consumers.retain(|k| *k != key);
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// When its last RTP packet arrived (its creation, before the first).
    pub fn last_rtp(&self) -> Instant {
        self.last_rtp
    }

    /// Sets its score (0..=10); whether it changed.
    pub fn set_score(&mut self, score: u8) -> bool {
        std::mem::replace(&mut self.score, score) != score
    }

    pub fn heard_rtp(&mut self, now: Instant) {
        self.last_rtp = now;
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// The router's payload type for a client payload type, if the producer carries it.
    pub fn router_pt(&self, client_pt: u8) -> Option<u8> {
        self.pt_map.iter().find(|(c, _)| *c == client_pt).map(|(_, r)| *r)
    }

    /// Whether a keyframe request should go out now (video only; at most one per
    /// [`KEYFRAME_THROTTLE`] unless `force`); if so it counts as sent.
    pub fn take_keyframe_request(&mut self, now: Instant, force: bool) -> bool {
        if self.kind != MediaKind::Video {
            return false;
        }
        if !force && self.last_keyframe_request.is_some_and(|l| now.saturating_duration_since(l) < KEYFRAME_THROTTLE) {
            return false;
        }
        self.last_keyframe_request = Some(now);
        true
    }
}

/// mediasoup's RtpListener rules for a new producer on a transport: its SSRC, RTX SSRC and mid
/// must not already be produced there (by another producer, or by itself for SSRC and RTX).
pub(crate) fn check_unique<'a>(existing: impl Iterator<Item = &'a Producer>, plan: &ProducerPlan) -> Result<(), ProduceError> {
    if plan.rtx_ssrc == Some(plan.ssrc) {
        return Err(ProduceError::DuplicateSsrc(plan.ssrc));
    }
    let new = [Some(plan.ssrc), plan.rtx_ssrc];
    for p in existing {
        let taken = [Some(p.plan.ssrc), p.plan.rtx_ssrc];
        if let Some(ssrc) = new.iter().flatten().find(|s| taken.contains(&Some(**s))) {
            return Err(ProduceError::DuplicateSsrc(*ssrc));
        }
        if p.plan.mid == plan.mid {
            return Err(ProduceError::DuplicateMid(plan.mid.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn plan(ssrc: u32, rtx: Option<u32>, mid: &str) -> ProducerPlan {
        ProducerPlan {
            mapping: vec![crate::ortc::PtMapping { client_pt: 96, router_pt: 101, rtx: false }],
            ssrc,
            rtx_ssrc: rtx,
            mid: mid.into(),
            consumable_codecs: Vec::new(),
            consumable_extensions: Vec::new(),
            scalability_mode: None,
            max_bitrate: None,
        }
    }

    fn producer(kind: MediaKind, p: ProducerPlan) -> Producer {
        let key = Key::default().next();
        Producer::new(ProducerId::new(0, key), key, key, kind, "cname".into(), p, Instant::now())
    }

    #[test]
    fn ssrcs_and_mids_are_unique_per_transport() {
        let existing = [producer(MediaKind::Video, plan(1000, Some(1001), "0"))];
        let code = |p| check_unique(existing.iter(), &p).err().map(|e| e.code());
        assert_eq!(code(plan(2000, Some(2001), "1")), None);
        assert_eq!(code(plan(1001, None, "1")), Some("duplicate_ssrc"), "another producer's RTX SSRC");
        assert_eq!(code(plan(2000, Some(1000), "1")), Some("duplicate_ssrc"));
        assert_eq!(code(plan(2000, None, "0")), Some("duplicate_mid"));
        assert_eq!(code(plan(3000, Some(3000), "2")), Some("duplicate_ssrc"), "RTX SSRC equal to its own media SSRC");
    }

    #[test]
    fn keyframe_requests_are_throttled_unless_forced() {
        let t0 = Instant::now();
        let mut p = producer(MediaKind::Video, plan(1, None, "0"));
        assert!(p.take_keyframe_request(t0, false));
        assert!(!p.take_keyframe_request(t0 + Duration::from_millis(500), false), "within the throttle");
        assert!(p.take_keyframe_request(t0 + Duration::from_millis(600), true), "forced");
        assert!(!p.take_keyframe_request(t0 + Duration::from_millis(1500), false), "the forced one restarted the throttle");
        assert!(p.take_keyframe_request(t0 + Duration::from_millis(1700), false));
        let mut audio = producer(MediaKind::Audio, plan(2, None, "1"));
        assert!(!audio.take_keyframe_request(t0, true), "audio has no keyframes");
    }

    #[test]
    fn payload_types_map_to_the_routers() {
        let p = producer(MediaKind::Video, plan(1, None, "0"));
        assert_eq!(p.router_pt(96), Some(101));
        assert_eq!(p.router_pt(97), None);
    }
}
