//! A synthetic simulcast VP8 publisher, as Chrome sends with mediasoup-client's three default
//! encodings: one RTP stream per spatial layer (lowest first), each with three temporal layers
//! (`L1T3`: TIDs 0, 2, 1, 2, ... with layer sync on every TID 1 and 2 frame after a TID 0 one),
//! its own picture ids and TL0PICIDX, identified by `rid` (`r0`, `r1`, ...) or by SSRC.
//!
//! Each payload says where it came from ([`origin`]): layer, frame number, TID, keyframe.
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu::ortc::{URI_MID, URI_RID, URI_RRID, URI_TWCC};
use sfu::rtp_parameters::RtpParameters;
use str0m::media::{MediaKind as StrKind, Mid, Pt, Rid};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::Event;

use crate::{video_produce_parameters, ClientTransport, VideoCodec, VP8_PT, VP8_RTX_PT};

/// Marks the body of a payload written here.
const MAGIC: u8 = 0xa7;
/// The temporal layer of frame n (L1T3).
const TIDS: [u8; 4] = [0, 2, 1, 2];

/// One stream (spatial layer).
pub struct SimulcastStream {
    pub ssrc: u32,
    pub rid: String,
    seq: u64,
    picture_id: u16,
    tl0: u8,
    pub force_keyframe: bool,
    /// Packets sent.
    pub sent: u64,
}

pub struct SimulcastTrack {
    pub mid: String,
    pub by_rid: bool,
    pub streams: Vec<SimulcastStream>,
    frame: u32,
    next_at: Instant,
    /// Payload bytes of each stream's frames (one packet a frame), lowest layer first.
    frame_bytes: Vec<usize>,
}

/// What a payload written by [`SimulcastTrack`] says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub layer: u8,
    pub frame: u32,
    pub tid: u8,
    pub keyframe: bool,
    pub picture_id: u16,
    pub tl0: u8,
}

/// Reads back a payload of [`SimulcastTrack`] (as forwarded: picture id and TL0PICIDX may be
/// rewritten); None for anything else.
pub fn origin(payload: &[u8]) -> Option<Origin> {
    let d = sfu::vp8::parse(payload).ok()?;
    let body = payload.get(d.header_len..)?;
    let keyframe = body.first()? & 1 == 0;
    let at = if keyframe { 10 } else { 3 };
    let b = body.get(at..at + 6)?;
    (b[0] == MAGIC).then(|| Origin {
        layer: b[1],
        frame: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
        tid: d.tid.unwrap_or(0),
        keyframe,
        picture_id: d.picture_id.map_or(0, |p| p.value),
        tl0: d.tl0_pic_idx.unwrap_or(0),
    })
}

impl SimulcastTrack {
    /// `layers` streams; `by_rid`: identified by rid (Chrome, Firefox) rather than SSRC.
    pub fn new(mid: &str, layers: u8, by_rid: bool) -> SimulcastTrack {
        let streams = (0..layers)
            .map(|l| SimulcastStream {
                ssrc: fastrand::u32(10_000..1_000_000_000) & !1,
                rid: format!("r{l}"),
                seq: u64::from(fastrand::u16(..)),
                picture_id: fastrand::u16(..0x7fff),
                tl0: fastrand::u8(..),
                force_keyframe: true,
                sent: 0,
            })
            .collect();
        let frame_bytes = (0..usize::from(layers)).map(|l| 200 * (l + 1)).collect();
        SimulcastTrack { mid: mid.into(), by_rid, streams, frame: 0, next_at: Instant::now(), frame_bytes }
    }

    /// Sets the payload size of each stream's frames (30 a second; lowest layer first; at most
    /// 1,200 bytes: one packet a frame).
    pub fn with_frame_bytes(mut self, bytes: &[usize]) -> SimulcastTrack {
        self.frame_bytes = bytes.iter().map(|b| (*b).clamp(32, 1200)).collect();
        self
    }

    /// The rtpParameters mediasoup-client sends for it: one encoding per stream (rid, or SSRC
    /// with RTX), `L1T3`, growing maxBitrate; the mid, rid and repaired-rid extensions.
    pub fn produce_parameters(&self) -> RtpParameters {
        let encodings: Vec<Value> = self
            .streams
            .iter()
            .enumerate()
            .map(|(l, s)| {
                let mut e = json!({"scalabilityMode": "L1T3", "maxBitrate": 100_000 * (l as u64 + 1) * 3});
                if self.by_rid {
                    e["rid"] = json!(s.rid);
                } else {
                    e["ssrc"] = json!(s.ssrc);
                    e["rtx"] = json!({"ssrc": s.ssrc + 1});
                }
                e
            })
            .collect();
        let mut exts = vec![json!({"uri": URI_MID, "id": 9}), json!({"uri": URI_TWCC, "id": 4})];
        if self.by_rid {
            exts.extend([json!({"uri": URI_RID, "id": 11}), json!({"uri": URI_RRID, "id": 12})]);
        }
        let codec = VideoCodec { mime: "video/VP8", pt: VP8_PT, rtx_pt: VP8_RTX_PT, parameters: json!({}) };
        video_produce_parameters(&self.mid, codec, json!(exts), json!(encodings))
    }

    /// Declares the streams on the client's send Rtc (after `produce` succeeded).
    pub fn declare(&self, t: &mut ClientTransport) {
        let mid: Mid = self.mid.as_str().into();
        let mut api = t.rtc.direct_api();
        api.declare_media(mid, StrKind::Video);
        for s in &self.streams {
            // str0m tells a media's send streams apart by rid: each has one here. Without rid
            // simulcast the server is not told the rid extension's id, so only SSRCs count.
            api.declare_stream_tx(Ssrc::from(s.ssrc), Some(Ssrc::from(s.ssrc + 1)), mid, Some(Rid::from(s.rid.as_str())));
        }
    }

    /// A keyframe request for `rid` (None: every stream).
    pub fn keyframe_requested(&mut self, rid: Option<&str>) {
        for s in &mut self.streams {
            if rid.is_none_or(|r| r == s.rid) {
                s.force_keyframe = true;
            }
        }
    }

    /// Answers the keyframe requests among a client's events, as an encoder does (by rid; all
    /// streams when the request names none). How many there were.
    pub fn answer_keyframe_requests(&mut self, events: &[Event]) -> usize {
        let mut n = 0;
        for e in events {
            if let Event::KeyframeRequest(r) = e {
                self.keyframe_requested(r.rid.as_deref());
                n += 1;
            }
        }
        n
    }

    /// Writes the next frame of every stream if due (every 33 ms, one packet each).
    pub fn tick_at(&mut self, t: &mut ClientTransport, now: Instant) {
        if now < self.next_at || !t.rtc.is_connected() {
            return;
        }
        let tid = TIDS[self.frame as usize % TIDS.len()];
        let mut api = t.rtc.direct_api();
        for (layer, s) in self.streams.iter_mut().enumerate() {
            // Keyframes when asked (and every 10 s): a switch waits for a request's answer.
            let key = std::mem::take(&mut s.force_keyframe) || self.frame.is_multiple_of(300);
            let tid = if key { 0 } else { tid };
            if tid == 0 {
                s.tl0 = s.tl0.wrapping_add(1);
            }
            s.picture_id = (s.picture_id + 1) & 0x7fff;
            let [hi, lo] = s.picture_id.to_be_bytes();
            let sync = tid > 0;
            let mut payload = vec![0x90, 0xe0, 0x80 | hi, lo, s.tl0, (tid << 6) | (u8::from(sync) << 5)];
            payload.extend_from_slice(&[u8::from(!key), 0, 0]);
            if key {
                payload.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
            }
            payload.extend_from_slice(&[MAGIC, layer as u8]);
            payload.extend_from_slice(&self.frame.to_be_bytes());
            payload.resize(self.frame_bytes.get(layer).copied().unwrap_or(200), 0x55);
            let Some(tx) = api.stream_tx(&Ssrc::from(s.ssrc)) else { continue };
            // Each encoder keeps its own RTP timestamp base, as libwebrtc's do.
            let ts = self.frame.wrapping_mul(3000).wrapping_add(s.ssrc);
            tx.write_rtp(RtpWrite::new(Pt::from(VP8_PT), SeqNo::from(s.seq), ts, now, payload).marker(true).nackable(true));
            s.seq += 1;
            s.sent += 1;
        }
        self.frame += 1;
        self.next_at = now + Duration::from_millis(33);
    }
}
