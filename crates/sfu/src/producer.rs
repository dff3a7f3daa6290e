//! Producer: what one track of a send transport sends (mediasoup's Producer): one RTP stream,
//! or one per simulcast encoding (its spatial layers, lowest first). Its plan (the validated
//! parameters, see [`crate::ortc::producer_plan`]) maps the client's payload types to the
//! router's and is what its consumers are built from.
use std::time::{Duration, Instant};

use crate::codec::VideoCodec;
use crate::error::ProduceError;
use crate::ids::{Key, ProducerId};
use crate::ortc::ProducerPlan;
use crate::rate::RateMeter;
use crate::repair::RepairWatch;
use crate::rtp_parameters::MediaKind;

/// Keyframe requests reach a producer's stream at most this often (unless forced, e.g. by a
/// resume); one asked for within it is sent when it ends, unless a keyframe came meanwhile
/// (mediasoup's KeyFrameRequestManager sends again after a second without the keyframe too).
pub(crate) const KEYFRAME_THROTTLE: Duration = Duration::from_secs(1);
/// A simulcast stream that sent nothing for this long is not chosen for consumers (the browser
/// stopped sending it: CPU, bandwidth, or a smaller capture than the layer needs).
pub(crate) const STREAM_INACTIVE_AFTER: Duration = Duration::from_millis(1500);

/// One RTP stream of a producer (an encoding).
#[derive(Debug, Clone, Default)]
struct Stream {
    /// Announced, or learned from the first packet carrying the encoding's rid.
    ssrc: Option<u32>,
    last_keyframe_request: Option<Instant>,
    /// A request came within the throttle: sent when it ends, unless a keyframe came first.
    keyframe_deferred: bool,
    last_packet: Option<Instant>,
    /// Its bitrate by VP8 temporal layer (TID 0..=3; 0 without one), which the downlink
    /// allocator weighs.
    rates: [RateMeter; 4],
    /// Packets missing upstream, until repaired or given up (video).
    repair: RepairWatch,
}

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
    streams: Vec<Stream>,
    last_rtp: Instant,
    score: u8,
    /// Its first media codec, whose payloads tell keyframes and temporal layers.
    codec: VideoCodec,
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
            streams: plan.encodings.iter().map(|e| Stream { ssrc: e.ssrc, ..Stream::default() }).collect(),
            codec: VideoCodec::from_mime(plan.consumable_codecs.first().map_or("", |c| c.mime_type.as_str())),
            plan,
            consumers: Vec::new(),
            paused: false,
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

    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    pub fn plan(&self) -> &ProducerPlan {
        &self.plan
    }

    /// The media SSRC of its first stream (0 while a rid stream's SSRC is not known yet).
    pub fn ssrc(&self) -> u32 {
        self.stream_ssrc(0).unwrap_or_default()
    }

    /// Its streams (encodings): 1, or the simulcast spatial layers.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// The media SSRC of stream `layer`, once known.
    pub fn stream_ssrc(&self, layer: usize) -> Option<u32> {
        self.streams.get(layer)?.ssrc
    }

    /// The stream (spatial layer) a media SSRC belongs to.
    pub fn layer_of(&self, ssrc: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.ssrc == Some(ssrc))
    }

    /// The stream whose encoding has `rid`, if its SSRC is not known yet: it becomes `ssrc`.
    pub fn learn_stream(&mut self, ssrc: u32, rid: &str) -> Option<usize> {
        let layer = self.plan.encodings.iter().position(|e| e.rid.as_deref() == Some(rid))?;
        let stream = &mut self.streams[layer]; // same length as the encodings
        if stream.ssrc.is_some() {
            return None;
        }
        stream.ssrc = Some(ssrc);
        Some(layer)
    }

    /// Whether stream `layer` sent a packet within [`STREAM_INACTIVE_AFTER`].
    pub fn stream_active(&self, layer: usize, now: Instant) -> bool {
        let last = self.streams.get(layer).and_then(|s| s.last_packet);
        last.is_some_and(|t| now.saturating_duration_since(t) < STREAM_INACTIVE_AFTER)
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

    /// Its score (0..=10; 10 until its first report).
    pub fn score(&self) -> u8 {
        self.score
    }

    /// Sets its score (0..=10); whether it changed.
    pub fn set_score(&mut self, score: u8) -> bool {
        std::mem::replace(&mut self.score, score) != score
    }

    /// A packet of stream `layer` arrived: extended sequence number `seq`, temporal layer `tid`,
    /// `bytes` on the wire. Keyframes are looked for in `payload` while a request waits or a
    /// packet is missing (and for the debug log). Returns whether the stream needs a keyframe
    /// now: a packet missing upstream was given up (see [`crate::repair`]; video only).
    pub fn heard_rtp(&mut self, layer: usize, seq: u64, tid: u8, bytes: usize, payload: &[u8], now: Instant) -> bool {
        self.last_rtp = now;
        let video = self.kind == MediaKind::Video;
        let Some(s) = self.streams.get_mut(layer) else { return false };
        s.last_packet = Some(now);
        s.rates[usize::from(tid.min(3))].add(bytes, now);
        if !video {
            return false;
        }
        let given_up = s.repair.arrived(seq, now);
        let watch = given_up || s.keyframe_deferred || s.repair.waiting() || tracing::enabled!(tracing::Level::DEBUG);
        if watch && self.codec.starts_keyframe(payload) {
            tracing::debug!(layer, ssrc = ?s.ssrc, "keyframe from a publisher");
            // A deferred request for it is no longer needed, nor packets before it.
            s.keyframe_deferred = false;
            s.repair.keyframe(seq);
            return false;
        }
        if given_up {
            tracing::debug!(layer, ssrc = ?s.ssrc, seq, "a packet missing upstream was not repaired; asking for a keyframe");
        }
        given_up
    }

    /// Stream `layer`'s bitrate over the last second up to temporal layer `temporal` (bit/s;
    /// 0 for no such stream).
    pub fn layer_bitrate(&self, layer: usize, temporal: u8, now: Instant) -> u64 {
        let Some(s) = self.streams.get(layer) else { return 0 };
        s.rates.iter().take(usize::from(temporal.min(3)) + 1).map(|r| r.bps(now)).sum()
    }

    /// Stream `layer`'s whole bitrate over the last second (bit/s; 0 for no such stream).
    pub fn stream_bitrate(&self, layer: usize, now: Instant) -> u64 {
        self.layer_bitrate(layer, 3, now)
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// The router's payload type for a client payload type, if the producer carries it.
    pub fn router_pt(&self, client_pt: u8) -> Option<u8> {
        self.pt_map.iter().find(|(c, _)| *c == client_pt).map(|(_, r)| *r)
    }

    /// The SSRC a keyframe request for stream `layer` should go to now, if one should (video
    /// only, the stream's SSRC known, at most one per [`KEYFRAME_THROTTLE`] and stream unless
    /// `force`); if so it counts as sent. One within the throttle is deferred (see
    /// [`Self::take_deferred_keyframe_requests`]).
    pub fn take_keyframe_request(&mut self, layer: usize, now: Instant, force: bool) -> Option<u32> {
        if self.kind != MediaKind::Video {
            return None;
        }
        let s = self.streams.get_mut(layer)?;
        let ssrc = s.ssrc?;
        if !force && s.last_keyframe_request.is_some_and(|l| now.saturating_duration_since(l) < KEYFRAME_THROTTLE) {
            s.keyframe_deferred = true;
            return None;
        }
        s.last_keyframe_request = Some(now);
        s.keyframe_deferred = false;
        Some(ssrc)
    }

    /// When the earliest deferred keyframe request is due, if any.
    pub fn deferred_keyframe_due(&self) -> Option<Instant> {
        self.streams.iter().filter(|s| s.keyframe_deferred).filter_map(|s| s.last_keyframe_request).map(|l| l + KEYFRAME_THROTTLE).min()
    }

    /// The SSRCs of the deferred requests whose throttle has ended by `now` (they count as
    /// sent).
    pub fn take_deferred_keyframe_requests(&mut self, now: Instant) -> Vec<u32> {
        let mut due = Vec::new();
        for s in &mut self.streams {
            let ready = s.last_keyframe_request.is_none_or(|l| now.saturating_duration_since(l) >= KEYFRAME_THROTTLE);
            if let (true, true, Some(ssrc)) = (s.keyframe_deferred, ready, s.ssrc) {
                s.keyframe_deferred = false;
                s.last_keyframe_request = Some(now);
                due.push(ssrc);
            }
        }
        due
    }
}

/// mediasoup's RtpListener rules for a new producer on a transport: its SSRCs (media and RTX,
/// every encoding) and mid must not already be produced there (by another producer, or by
/// itself for the SSRCs).
pub(crate) fn check_unique<'a>(existing: impl Iterator<Item = &'a Producer>, plan: &ProducerPlan) -> Result<(), ProduceError> {
    let new: Vec<u32> = plan.announced_ssrcs().collect();
    if let Some((_, ssrc)) = new.iter().enumerate().find(|(i, s)| new[..*i].contains(s)) {
        return Err(ProduceError::DuplicateSsrc(*ssrc));
    }
    for p in existing {
        // A rid stream learned its SSRC: taken as well.
        let learned = p.streams.iter().filter_map(|s| s.ssrc);
        let taken: Vec<u32> = p.plan.announced_ssrcs().chain(learned).collect();
        if let Some(ssrc) = new.iter().find(|s| taken.contains(s)) {
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
    use crate::rtp_parameters::RtpCodecParameters;

    fn plan(ssrc: u32, rtx: Option<u32>, mid: &str) -> ProducerPlan {
        ProducerPlan {
            mapping: vec![crate::ortc::PtMapping { client_pt: 96, router_pt: 101, rtx: false }],
            encodings: vec![crate::ortc::EncodingPlan { ssrc: Some(ssrc), rtx_ssrc: rtx, ..Default::default() }],
            mid: mid.into(),
            consumable_codecs: Vec::new(),
            consumable_extensions: Vec::new(),
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
        assert_eq!(p.take_keyframe_request(0, t0, false), Some(1));
        assert_eq!(p.take_keyframe_request(0, t0 + Duration::from_millis(500), false), None, "within the throttle");
        assert_eq!(p.take_keyframe_request(0, t0 + Duration::from_millis(600), true), Some(1), "forced");
        assert_eq!(p.take_keyframe_request(0, t0 + Duration::from_millis(1500), false), None, "the forced one restarted the throttle");
        assert_eq!(p.take_keyframe_request(0, t0 + Duration::from_millis(1700), false), Some(1));
        // A request within the throttle is deferred to its end, unless a keyframe comes first.
        assert_eq!(p.take_keyframe_request(0, t0 + Duration::from_millis(1800), false), None);
        assert_eq!(p.deferred_keyframe_due(), Some(t0 + Duration::from_millis(2700)));
        assert!(p.take_deferred_keyframe_requests(t0 + Duration::from_millis(2600)).is_empty(), "not yet");
        assert_eq!(p.take_deferred_keyframe_requests(t0 + Duration::from_millis(2700)), vec![1]);
        assert_eq!(p.deferred_keyframe_due(), None, "sent once");
        assert_eq!(p.take_keyframe_request(0, t0 + Duration::from_millis(2800), false), None);
        assert!(p.deferred_keyframe_due().is_some());
        p.heard_rtp(0, 7, 0, 100, &[], t0); // "Other" codec: every payload counts as a keyframe
        assert_eq!(
            (p.deferred_keyframe_due(), p.take_deferred_keyframe_requests(t0 + Duration::from_secs(9))),
            (None, vec![]),
            "the keyframe came"
        );
        assert_eq!(p.take_keyframe_request(1, t0, true), None, "no such stream");
        let mut audio = producer(MediaKind::Audio, plan(2, None, "1"));
        assert_eq!(audio.take_keyframe_request(0, t0, true), None, "audio has no keyframes");
    }

    #[test]
    fn rid_streams_learn_their_ssrc_once_and_throttle_apart() {
        let t0 = Instant::now();
        let mut sim = plan(1, None, "0");
        sim.encodings =
            ["r0", "r1", "r2"].iter().map(|r| crate::ortc::EncodingPlan { rid: Some(r.to_string()), ..Default::default() }).collect();
        let mut p = producer(MediaKind::Video, sim);
        assert_eq!((p.stream_count(), p.ssrc(), p.layer_of(500)), (3, 0, None));
        assert_eq!(p.take_keyframe_request(1, t0, false), None, "no SSRC to ask yet");
        assert_eq!(p.learn_stream(500, "r1"), Some(1));
        assert_eq!(p.learn_stream(501, "r1"), None, "learned once");
        assert_eq!(p.learn_stream(502, "zz"), None, "no such rid");
        assert_eq!(p.learn_stream(502, "r2"), Some(2));
        assert_eq!((p.layer_of(500), p.layer_of(502), p.stream_ssrc(2)), (Some(1), Some(2), Some(502)));
        assert_eq!(p.take_keyframe_request(1, t0, false), Some(500));
        assert_eq!(p.take_keyframe_request(2, t0, false), Some(502), "each stream has its own throttle");
        assert!(!p.stream_active(1, t0));
        p.heard_rtp(1, 1, 0, 1000, &[], t0);
        p.heard_rtp(1, 2, 2, 500, &[], t0);
        assert_eq!(
            (p.layer_bitrate(1, 0, t0), p.layer_bitrate(1, 1, t0), p.stream_bitrate(1, t0)),
            (16_000, 16_000, 24_000),
            "by temporal layer, over the first 500 ms"
        );
        assert!(p.stream_active(1, t0 + Duration::from_millis(1000)));
        assert!(!p.stream_active(1, t0 + STREAM_INACTIVE_AFTER), "silent for too long");
        assert!(!p.stream_active(2, t0));
        let again = [p];
        let mut dup = plan(600, Some(502), "1");
        assert_eq!(check_unique(again.iter(), &dup).err().map(|e| e.to_string().contains("502")), Some(true), "a learned SSRC is taken");
        dup.encodings[0].rtx_ssrc = None;
        assert!(check_unique(again.iter(), &dup).is_ok());
    }

    #[test]
    fn a_packet_missing_upstream_and_not_repaired_asks_for_a_keyframe_once() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut vp8 = plan(1, None, "0");
        vp8.consumable_codecs = vec![RtpCodecParameters {
            mime_type: "video/VP8".into(),
            payload_type: 101,
            clock_rate: 90_000,
            channels: None,
            parameters: Default::default(),
            rtcp_feedback: Vec::new(),
        }];
        let (delta, key) = ([0x10u8, 0x01, 0, 0], [0x10u8, 0x00, 0, 0]); // VP8: S bit; P bit 1 / 0
        let mut p = producer(MediaKind::Video, vp8.clone());
        assert!(!p.heard_rtp(0, 10, 0, 100, &delta, t0));
        assert!(!p.heard_rtp(0, 12, 0, 100, &delta, ms(10)), "11 is missing");
        assert!(!p.heard_rtp(0, 13, 0, 100, &delta, ms(300)));
        assert!(p.heard_rtp(0, 14, 0, 100, &delta, ms(610)), "11 was given up");
        assert!(!p.heard_rtp(0, 15, 0, 100, &delta, ms(2000)), "once");
        // A keyframe after the gap makes the missing packet unneeded.
        assert!(!p.heard_rtp(0, 17, 0, 100, &key, ms(2010)));
        assert!(!p.heard_rtp(0, 18, 0, 100, &delta, ms(3000)));
        // Audio is not watched.
        let mut audio = producer(MediaKind::Audio, vp8);
        audio.heard_rtp(0, 1, 0, 100, &delta, t0);
        assert!(!audio.heard_rtp(0, 50, 0, 100, &delta, ms(5000)));
    }

    #[test]
    fn payload_types_map_to_the_routers() {
        let p = producer(MediaKind::Video, plan(1, None, "0"));
        assert_eq!(p.router_pt(96), Some(101));
        assert_eq!(p.router_pt(97), None);
    }
}
