//! A WebRTC transport's RTP streams: a producer's incoming ones (declared to str0m, guarded by
//! a [`SeqGuard`] each and by the transport-cc guard) and a consumer's outgoing ones (written,
//! keyframe requests sent).
use std::time::Duration;

use str0m::media::{KeyframeRequestKind, MediaKind as StrMediaKind, Mid, Rid};
use str0m::rtp::{RtpWrite, Ssrc};

use super::WebRtcTransport;
use crate::ortc::{self, EncodingPlan};
use crate::rtp_parameters::MediaKind;
use crate::seq_guard::{transport_cc, Admit, SeqGuard};

impl WebRtcTransport {
    /// A producer's incoming streams, one per encoding: announced SSRCs (media and RTX) are
    /// expected and guarded by a [`SeqGuard`] each; rid streams are mapped by str0m from the
    /// mid and rid header extensions of their first packets (then [`Self::guard`] their SSRC).
    pub fn expect_incoming(&mut self, mid: &str, kind: MediaKind, encodings: &[EncodingPlan]) {
        let mut api = self.rtc.direct_api();
        let media = api.declare_media(mid.into(), str_kind(kind));
        for rid in encodings.iter().filter_map(|e| e.rid.as_deref()) {
            media.expect_rid_rx(rid.into());
        }
        for (i, e) in encodings.iter().enumerate() {
            let Some(ssrc) = e.ssrc else { continue };
            // str0m tells a media's streams apart by (mid, rid): SSRC-only simulcast streams get
            // a rid of their own there ('~' is not allowed in a client's rid, so none clashes).
            let rid = match (&e.rid, encodings.len()) {
                (Some(rid), _) => Some(Rid::from(rid.as_str())),
                (None, 1) => None,
                (None, _) => Some(Rid::from(format!("~{i}").as_str())),
            };
            api.expect_stream_rx(Ssrc::from(ssrc), e.rtx_ssrc.map(Ssrc::from), mid.into(), rid);
        }
        for ssrc in encodings.iter().filter_map(|e| e.ssrc) {
            self.quality.meter(mid.into(), ssrc);
        }
        for s in encodings.iter().flat_map(|e| e.ssrc.into_iter().chain(e.rtx_ssrc)) {
            self.guard(s);
        }
    }

    /// A rid stream of `mid` showed its SSRC: guarded and its upstream loss metered from now on.
    pub fn learned_stream(&mut self, mid: Mid, ssrc: u32) {
        self.guard(ssrc);
        self.quality.meter(mid, ssrc);
    }

    /// Guards the RTP of `ssrc` from now on (a [`SeqGuard`]; idempotent).
    pub fn guard(&mut self, ssrc: u32) {
        if !self.guards.iter().any(|(g, _)| *g == ssrc) {
            self.guards.push((ssrc, SeqGuard::default()));
        }
    }

    /// A consumer's outgoing stream; `rtx_cache` = (packets, age, share of the bitrate) kept to
    /// answer NACKs (none: nothing is kept).
    pub fn declare_outgoing(&mut self, mid: Mid, kind: MediaKind, ssrc: u32, rtx: Option<u32>, rtx_cache: Option<(usize, Duration, f32)>) {
        let mut api = self.rtc.direct_api();
        api.declare_media(mid, str_kind(kind));
        let tx = api.declare_stream_tx(Ssrc::from(ssrc), rtx.map(Ssrc::from), mid, None);
        if let Some((packets, age, ratio)) = rtx_cache {
            tx.set_rtx_cache(packets, age, Some(ratio));
        }
    }

    /// Queues one RTP packet on an outgoing stream; false if the stream is unknown.
    pub fn write_rtp(&mut self, ssrc: u32, packet: RtpWrite) -> bool {
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx(&Ssrc::from(ssrc)) else { return false };
        tx.write_rtp(packet);
        self.needs_tick = true;
        true
    }

    /// Sends a PLI for an incoming stream; false if the stream is unknown.
    pub fn request_keyframe(&mut self, ssrc: u32) -> bool {
        self.needs_tick = true;
        match self.rtc.direct_api().stream_rx(&Ssrc::from(ssrc)) {
            Some(rx) => {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                true
            }
            None => false,
        }
    }

    /// The guard's verdict on an RTP packet of `ssrc`; SSRCs not produced here pass (str0m
    /// drops what it cannot map).
    pub fn admit(&mut self, ssrc: u32, seq: u16, data: &[u8], kept_away: &mut u64) -> Admit {
        match self.guards.iter_mut().find(|(g, _)| *g == ssrc) {
            Some((_, guard)) => guard.admit(seq, data, kept_away),
            None => Admit::Pass,
        }
    }

    /// str0m accepted an RTP packet of `ssrc` with sequence number `seq` (its datagram `data`).
    pub fn accepted(&mut self, ssrc: u32, seq: u16, data: &[u8]) {
        if let Some((_, guard)) = self.guards.iter_mut().find(|(g, _)| *g == ssrc) {
            guard.accepted(seq);
        }
        self.quality.arrived(ssrc, seq);
        if let Some(v) = self.twcc_id().and_then(|id| transport_cc(data, id)) {
            self.twcc.accepted(v);
        }
    }

    /// The header-extension id str0m reads transport-cc numbers under (send transports).
    fn twcc_id(&self) -> Option<u8> {
        self.ext_ids.iter().find(|(_, uri)| uri == ortc::URI_TWCC).map(|(id, _)| *id)
    }

    /// Whether an RTP datagram's transport-cc number, if it has one, may go to str0m (see
    /// [`TwccGuard`]).
    pub fn twcc_admit(&self, data: &[u8]) -> bool {
        self.twcc_id().and_then(|id| transport_cc(data, id)).is_none_or(|v| self.twcc.admit(v))
    }
}

fn str_kind(kind: MediaKind) -> StrMediaKind {
    match kind {
        MediaKind::Audio => StrMediaKind::Audio,
        MediaKind::Video => StrMediaKind::Video,
    }
}
