//! A simulcast video track for the load tool: three VP8 streams (lowest first) as Chrome sends
//! with mediasoup-client's default encodings, each `L1T3` (TIDs 0, 2, 1, 2, ...) with real
//! payload descriptors (picture id, TL0PICIDX, TID and layer sync), split into packets by the
//! stream's bitrate, a keyframe per stream every two seconds and when asked (by rid). Each
//! payload ends with its stream's number and the send time, so subscribers can tell which
//! stream they receive ([`layer_of`]).
use std::time::{Duration, Instant};

use str0m::media::Pt;
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::Rtc;

use crate::media::{now_ns, STAMP_LEN};

/// Share of the top stream's bitrate each stream sends (Chrome's 150k / 500k / 1.7M for a
/// 1280x720 capture are near 1:3:10).
pub const LAYER_SHARE: [(u32, u32); 3] = [(1, 10), (3, 10), (1, 1)];
/// The temporal layer of frame n (L1T3).
const TIDS: [u8; 4] = [0, 2, 1, 2];
/// Two bytes before the stamp: `TAG` then the stream's number. Synthetic single-stream payloads
/// are filled with one byte value, so they never carry `TAG` followed by a different byte.
const TAG: u8 = b'S';
const TRAILER: usize = 2 + STAMP_LEN;
const FPS: u32 = 30;

/// One stream (spatial layer) of the track.
#[derive(Debug)]
struct Stream {
    ssrc: u32,
    rid: String,
    kbps: u32,
    seq: u64,
    picture_id: u16,
    tl0: u8,
    force_keyframe: bool,
}

#[derive(Debug)]
pub struct SimulcastSource {
    pt: Pt,
    packet_bytes: usize,
    streams: Vec<Stream>,
    frame: u32,
    pub next_at: Instant,
}

/// The stream a payload of [`SimulcastSource`] came from; None for any other payload.
pub fn layer_of(payload: &[u8]) -> Option<u8> {
    let at = payload.len().checked_sub(TRAILER)?;
    let (tag, layer) = (payload[at], payload[at + 1]); // at + 1 < len: TRAILER > 2
    (tag == TAG && layer != TAG && usize::from(layer) < LAYER_SHARE.len()).then_some(layer)
}

impl SimulcastSource {
    /// `streams`: (SSRC, rid) of each stream, lowest first; `top_kbps`: the top stream's bitrate.
    pub fn new(pt: Pt, streams: &[(u32, String)], top_kbps: u32, packet_bytes: usize) -> SimulcastSource {
        let streams = streams
            .iter()
            .zip(LAYER_SHARE)
            .map(|((ssrc, rid), (num, den))| Stream {
                ssrc: *ssrc,
                rid: rid.clone(),
                kbps: (top_kbps * num / den).max(8),
                seq: u64::from(fastrand::u16(..)),
                picture_id: fastrand::u16(..0x7fff),
                tl0: fastrand::u8(..),
                force_keyframe: true,
            })
            .collect();
        SimulcastSource { pt, packet_bytes: packet_bytes.max(64), streams, frame: 0, next_at: Instant::now() }
    }

    /// A keyframe request for `rid` (None: every stream).
    pub fn keyframe_requested(&mut self, rid: Option<&str>) {
        for s in &mut self.streams {
            if rid.is_none_or(|r| r == s.rid) {
                s.force_keyframe = true;
            }
        }
    }

    /// Writes the frame that is due on every stream (if any); returns the packets written of
    /// the top stream (what a subscriber receiving it gets) and of all streams.
    pub fn send_due(&mut self, rtc: &mut Rtc, now: Instant) -> (u64, u64) {
        if now < self.next_at {
            return (0, 0);
        }
        let (mut top, mut all) = (0, 0);
        let every_two_seconds = self.frame.is_multiple_of(2 * FPS);
        let tid = TIDS[self.frame as usize % TIDS.len()];
        let mut api = rtc.direct_api();
        let last = self.streams.len().saturating_sub(1);
        for (layer, s) in self.streams.iter_mut().enumerate() {
            let key = std::mem::take(&mut s.force_keyframe) || every_two_seconds;
            let tid = if key { 0 } else { tid };
            if tid == 0 {
                s.tl0 = s.tl0.wrapping_add(1);
            }
            s.picture_id = (s.picture_id + 1) & 0x7fff;
            let frame_bytes = (s.kbps as usize * 1000 / 8 / FPS as usize).max(TRAILER + 32);
            let count = frame_bytes.div_ceil(self.packet_bytes);
            let each = frame_bytes.div_ceil(count).max(TRAILER + 24);
            let Some(tx) = api.stream_tx(&Ssrc::from(s.ssrc)) else { continue };
            // Each encoder keeps its own RTP timestamp base, as libwebrtc's do.
            let ts = self.frame.wrapping_mul(90_000 / FPS).wrapping_add(s.ssrc);
            for i in 0..count {
                let payload = packet(s, layer as u8, tid, key, i == 0, each);
                tx.write_rtp(RtpWrite::new(self.pt, SeqNo::from(s.seq), ts, now, payload).marker(i + 1 == count).nackable(true));
                s.seq += 1;
            }
            all += count as u64;
            if layer == last {
                top += count as u64;
            }
        }
        self.frame += 1;
        self.next_at += Duration::from_secs(1) / FPS;
        if self.next_at < now {
            self.next_at = now + Duration::from_secs(1) / FPS; // fell behind: do not burst
        }
        (top, all)
    }
}

/// One packet of a frame: VP8 descriptor (X, S on the first packet; I with a 15-bit picture id,
/// L, T with the TID and layer sync), on the first packet the frame tag (a keyframe's with the
/// start code), filler, the stream's trailer and the send time.
fn packet(s: &Stream, layer: u8, tid: u8, key: bool, first: bool, size: usize) -> Vec<u8> {
    let [hi, lo] = s.picture_id.to_be_bytes();
    let sync = tid > 0;
    let mut p = Vec::with_capacity(size);
    p.extend_from_slice(&[if first { 0x90 } else { 0x80 }, 0xe0, 0x80 | hi, lo, s.tl0, (tid << 6) | (u8::from(sync) << 5)]);
    if first {
        p.extend_from_slice(&[u8::from(!key) | 0x10, 0x02, 0x00]);
        if key {
            p.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
        }
    }
    p.resize(size - TRAILER, 0x55);
    p.extend_from_slice(&[TAG, layer]);
    p.extend_from_slice(&now_ns().to_be_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Stream {
        Stream { ssrc: 1, rid: "r1".into(), kbps: 300, seq: 0, picture_id: 0x1234, tl0: 7, force_keyframe: false }
    }

    #[test]
    fn packets_carry_real_descriptors_and_their_stream() {
        let key = packet(&stream(), 1, 0, true, true, 400);
        let d = sfu::vp8::parse(&key).unwrap();
        assert!(d.keyframe);
        assert_eq!((d.picture_id.map(|p| p.value), d.tl0_pic_idx, d.tid), (Some(0x1234), Some(7), Some(0)));
        assert_eq!((key.len(), layer_of(&key)), (400, Some(1)));
        let rest = packet(&stream(), 2, 2, false, false, 300);
        let d = sfu::vp8::parse(&rest).unwrap();
        assert!(!d.keyframe && !d.start_of_partition && d.layer_sync);
        assert_eq!((d.tid, layer_of(&rest)), (Some(2), Some(2)));
    }

    #[test]
    fn other_payloads_have_no_stream() {
        assert_eq!(layer_of(&[]), None);
        assert_eq!(layer_of(&[TAG; 40]), None, "a filler of the tag's value");
        assert_eq!(layer_of(&[0x55; 40]), None);
    }
}
