//! A synthetic VP9 SVC publisher, as Chrome sends with one encoding of `scalabilityMode: 'L3T3'`:
//! one RTP stream whose pictures hold three spatial layers (SID 0..=2, each referring to the one
//! below: full SVC) of three temporal layers (TIDs 0, 2, 1, 2, ...), one packet per layer frame
//! (B and E set), non-flexible VP9 payload descriptors (picture id, TL0PICIDX), the RTP marker on
//! the last packet of each picture. A keyframe when asked (and every 10 s).
//!
//! Each payload says where it came from ([`svc_origin`]): spatial layer and frame number.
use std::time::{Duration, Instant};

use serde_json::json;
use sfu::ortc::{URI_MID, URI_TWCC};
use sfu::rtp_parameters::RtpParameters;
use str0m::media::{MediaKind as StrKind, Mid, Pt};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};

use crate::{video_produce_parameters, ClientTransport, VideoCodec, VP9_PT, VP9_RTX_PT};

const MAGIC: u8 = 0xb9;
const TIDS: [u8; 4] = [0, 2, 1, 2];
pub const SPATIAL_LAYERS: u8 = 3;

pub struct SvcTrack {
    pub mid: String,
    pub ssrc: u32,
    seq: u64,
    picture_id: u16,
    tl0: u8,
    frame: u32,
    next_at: Instant,
    pub force_keyframe: bool,
}

/// What a payload of [`SvcTrack`] says of itself (and its descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvcOrigin {
    pub sid: u8,
    pub tid: u8,
    pub frame: u32,
    pub keyframe: bool,
    pub end_of_frame: bool,
}

/// Reads back a payload of [`SvcTrack`]; None for anything else.
pub fn svc_origin(payload: &[u8]) -> Option<SvcOrigin> {
    let d = sfu::vp9::parse(payload).ok()?;
    let b = payload.get(d.header_len..d.header_len + 6)?;
    (b[0] == MAGIC).then(|| SvcOrigin {
        sid: d.sid,
        tid: d.tid,
        frame: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
        keyframe: d.keyframe(),
        end_of_frame: d.end_of_frame,
    })
}

impl SvcTrack {
    pub fn new(mid: &str) -> SvcTrack {
        SvcTrack {
            mid: mid.into(),
            ssrc: fastrand::u32(10_000..1_000_000_000) & !1,
            seq: u64::from(fastrand::u16(..)),
            picture_id: fastrand::u16(..0x7fff),
            tl0: fastrand::u8(..),
            frame: 0,
            next_at: Instant::now(),
            force_keyframe: true,
        }
    }

    /// The rtpParameters mediasoup-client sends: VP9 with RTX, one encoding `L3T3`.
    pub fn produce_parameters(&self) -> RtpParameters {
        let codec = VideoCodec { mime: "video/VP9", pt: VP9_PT, rtx_pt: VP9_RTX_PT, parameters: json!({"profile-id": 0}) };
        let extensions = json!([{"uri": URI_MID, "id": 9}, {"uri": URI_TWCC, "id": 4}]);
        let encodings = json!([{"ssrc": self.ssrc, "rtx": {"ssrc": self.ssrc + 1}, "scalabilityMode": "L3T3", "maxBitrate": 900_000}]);
        video_produce_parameters(&self.mid, codec, extensions, encodings)
    }

    /// Declares the stream on the client's send Rtc (after `produce` succeeded).
    pub fn declare(&self, t: &mut ClientTransport) {
        let mid: Mid = self.mid.as_str().into();
        let mut api = t.rtc.direct_api();
        api.declare_media(mid, StrKind::Video);
        api.declare_stream_tx(Ssrc::from(self.ssrc), Some(Ssrc::from(self.ssrc + 1)), mid, None);
    }

    /// Writes the next picture if due (every 33 ms): one packet per spatial layer.
    pub fn tick_at(&mut self, t: &mut ClientTransport, now: Instant) {
        if now < self.next_at || !t.rtc.is_connected() {
            return;
        }
        let key = std::mem::take(&mut self.force_keyframe) || self.frame.is_multiple_of(300);
        let tid = if key { 0 } else { TIDS[self.frame as usize % TIDS.len()] };
        if tid == 0 {
            self.tl0 = self.tl0.wrapping_add(1);
        }
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        let [hi, lo] = self.picture_id.to_be_bytes();
        let mut api = t.rtc.direct_api();
        let Some(tx) = api.stream_tx(&Ssrc::from(self.ssrc)) else { return };
        for sid in 0..SPATIAL_LAYERS {
            // I, P (not on a keyframe), L, B, E; TID, U (on TID > 0), SID, D (above layer 0).
            let first = 0x80 | (u8::from(!key) << 6) | 0x20 | 0x08 | 0x04;
            let layer = (tid << 5) | (u8::from(tid > 0) << 4) | (sid << 1) | u8::from(sid > 0);
            let mut payload = vec![first, 0x80 | hi, lo, layer, self.tl0, MAGIC, sid];
            payload.extend_from_slice(&self.frame.to_be_bytes());
            payload.resize(100 + 200 * usize::from(sid), 0x55);
            let ts = self.frame.wrapping_mul(3000);
            let last = sid + 1 == SPATIAL_LAYERS;
            tx.write_rtp(RtpWrite::new(Pt::from(VP9_PT), SeqNo::from(self.seq), ts, now, payload).marker(last).nackable(true));
            self.seq += 1;
        }
        self.frame += 1;
        self.next_at = now + Duration::from_millis(33);
    }
}
