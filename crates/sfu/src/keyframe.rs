//! Keyframes: spotting one at the start of an RTP payload (per codec) and throttling the
//! requests for one that reach a producer.
use std::time::{Duration, Instant};

/// Keyframe requests reach a producer at most this often.
pub const KEYFRAME_THROTTLE: Duration = Duration::from_secs(1);

/// Whether an RTP payload starts a keyframe, for VP8, VP9 and H264. Other codecs (and audio)
/// count as yes: nothing is held back for them. Never panics on short or garbled payloads.
pub fn starts_keyframe(mime: &str, payload: &[u8]) -> bool {
    let codec = mime.rsplit('/').next().unwrap_or("");
    if codec.eq_ignore_ascii_case("vp8") {
        vp8_keyframe(payload)
    } else if codec.eq_ignore_ascii_case("vp9") {
        vp9_keyframe(payload)
    } else if codec.eq_ignore_ascii_case("h264") {
        h264_keyframe(payload)
    } else {
        true
    }
}

/// RFC 7741: skip the payload descriptor (X, I, L, T/K), then the frame tag's P bit (0 = key)
/// at the start of partition 0.
fn vp8_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else { return false };
    let start_of_partition = first & 0x10 != 0 && first & 0x07 == 0;
    let mut i = 1;
    if first & 0x80 != 0 {
        let Some(&x) = payload.get(1) else { return false };
        i = 2;
        if x & 0x80 != 0 {
            let Some(&pic) = payload.get(i) else { return false };
            i += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    start_of_partition && payload.get(i).is_some_and(|b| b & 0x01 == 0)
}

/// RFC 9628 descriptor: |I|P|L|F|B|E|V|Z|. A keyframe starts with P=0 and B=1, on spatial
/// layer 0 when layer indices are present.
fn vp9_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else { return false };
    let (i, p, l, f, b) = (first & 0x80 != 0, first & 0x40 != 0, first & 0x20 != 0, first & 0x10 != 0, first & 0x08 != 0);
    if p || !b {
        return false;
    }
    if !l {
        return true;
    }
    let mut at = 1;
    if i {
        let Some(&pic) = payload.get(at) else { return false };
        at += if pic & 0x80 != 0 { 2 } else { 1 };
    }
    let Some(&layer) = payload.get(at) else { return false };
    let _ = f; // flexible mode changes what follows the layer byte, not the layer byte itself
    (layer >> 1) & 0x07 == 0
}

/// RFC 6184: an IDR slice (5) or a sequence parameter set (7) alone, in a STAP-A, or at the
/// start of an FU-A.
fn h264_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else { return false };
    let key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    match first & 0x1f {
        24 => {
            let mut at = 1;
            while at + 2 < payload.len() {
                let size = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
                let Some(&nal) = payload.get(at + 2) else { return false };
                if size == 0 {
                    return false;
                }
                if key(nal & 0x1f) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        28 => payload.get(1).is_some_and(|&h| h & 0x80 != 0 && key(h & 0x1f)),
        t => key(t),
    }
}

/// At most one keyframe request per [`KEYFRAME_THROTTLE`]; a request inside the window is not
/// lost but deferred to its end (a consumer that joins right after another still gets its
/// keyframe within a second).
#[derive(Debug, Clone, Default)]
pub struct KeyframeThrottle {
    last: Option<Instant>,
    pending: bool,
}

impl KeyframeThrottle {
    /// Whether to send a request now; if not, one is remembered for [`due_at`](Self::due_at).
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < KEYFRAME_THROTTLE => {
                self.pending = true;
                false
            }
            _ => {
                self.last = Some(now);
                self.pending = false;
                true
            }
        }
    }

    /// When the deferred request may go, if there is one.
    pub fn due_at(&self) -> Option<Instant> {
        match (self.pending, self.last) {
            (true, Some(last)) => Some(last + KEYFRAME_THROTTLE),
            _ => None,
        }
    }

    /// Whether the deferred request is due now (it then counts as sent).
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.due_at().is_some_and(|at| now >= at) {
            self.last = Some(now);
            self.pending = false;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes_are_recognised() {
        // X=1 S=1, I=1 with a 15-bit picture id, then a keyframe tag (bit 0 = 0).
        assert!(starts_keyframe("video/VP8", &[0x90, 0x80, 0x80, 0x01, 0x10, 0x00, 0x00, 0x9d]));
        assert!(!starts_keyframe("video/VP8", &[0x90, 0x80, 0x80, 0x01, 0x11, 0x00, 0x00]));
        assert!(!starts_keyframe("video/VP8", &[0x80, 0x80, 0x80, 0x01, 0x10]), "not a partition start");
        assert!(starts_keyframe("video/vp8", &[0x10, 0x00]), "no extensions");
        assert!(!starts_keyframe("video/VP8", &[0x90]));
        assert!(!starts_keyframe("video/VP8", &[]));
        assert!(starts_keyframe("audio/opus", &[1, 2, 3]));
        assert!(starts_keyframe("video/AV1", &[]), "unknown codecs are never held back");
    }

    #[test]
    fn vp9_keyframes_are_recognised() {
        assert!(starts_keyframe("video/VP9", &[0x08, 0, 0]), "B=1, P=0");
        assert!(!starts_keyframe("video/VP9", &[0x48, 0, 0]), "inter-predicted");
        assert!(!starts_keyframe("video/VP9", &[0x00, 0, 0]), "not the start of a frame");
        // I=1 (7-bit picture id), L=1, spatial layer 1 then 0.
        assert!(!starts_keyframe("video/VP9", &[0xa8, 0x05, 0b0000_0010]));
        assert!(starts_keyframe("video/VP9", &[0xa8, 0x05, 0b0010_0000]));
        assert!(!starts_keyframe("video/VP9", &[0xa8]), "truncated");
    }

    #[test]
    fn h264_keyframes_are_recognised() {
        assert!(starts_keyframe("video/H264", &[0x65, 1, 2]), "IDR");
        assert!(starts_keyframe("video/H264", &[0x67, 1, 2]), "SPS");
        assert!(!starts_keyframe("video/H264", &[0x41, 1, 2]), "non-IDR slice");
        assert!(starts_keyframe("video/H264", &[0x78, 0, 2, 0x09, 0xf0, 0, 2, 0x67, 0]), "STAP-A with SPS");
        assert!(!starts_keyframe("video/H264", &[0x78, 0, 2, 0x09, 0xf0, 0, 200]), "STAP-A truncated");
        assert!(!starts_keyframe("video/H264", &[0x78, 0, 0, 0x67]), "zero-size NAL");
        assert!(starts_keyframe("video/H264", &[0x7c, 0x85, 1]), "FU-A start of IDR");
        assert!(!starts_keyframe("video/H264", &[0x7c, 0x05, 1]), "FU-A continuation");
        assert!(!starts_keyframe("video/H264", &[0x7c]));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..24);
            let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            for mime in ["video/VP8", "video/VP9", "video/H264"] {
                let _ = starts_keyframe(mime, &data);
            }
        }
    }

    #[test]
    fn throttle_defers_instead_of_dropping() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        assert!(k.request(t0));
        assert_eq!(k.due_at(), None);
        assert!(!k.request(t0 + Duration::from_millis(300)), "inside the window");
        assert!(!k.request(t0 + Duration::from_millis(600)), "still one deferred request");
        assert_eq!(k.due_at(), Some(t0 + KEYFRAME_THROTTLE));
        assert!(!k.poll(t0 + Duration::from_millis(999)));
        assert!(k.poll(t0 + Duration::from_millis(1000)));
        assert!(!k.poll(t0 + Duration::from_millis(1001)), "sent once");
        assert_eq!(k.due_at(), None);
        assert!(!k.request(t0 + Duration::from_millis(1500)));
        assert!(k.request(t0 + Duration::from_millis(2100)), "a new window: sent at once");
        assert_eq!(k.due_at(), None, "the deferred request went with it");
    }
}
