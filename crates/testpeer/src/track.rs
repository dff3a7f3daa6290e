//! Synthetic publishers: Opus and VP8 tracks (real VP8 payload descriptors, keyframe headers,
//! marker bits), or real VP8 frames from FFmpeg.
use std::time::{Duration, Instant};

use sfu::rtp_parameters::MediaKind;
use str0m::media::{MediaKind as StrKind, Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo, Ssrc};
use str0m::Event;

use crate::{ClientTransport, OPUS_PT, VP8_PT};

/// A synthetic publisher of one track.
pub struct Track {
    pub kind: MediaKind,
    pub ssrc: u32,
    pub mid: String,
    seq: u64,
    frame: u32,
    next_at: Instant,
    /// Every payload sent, in order.
    pub sent: Vec<Vec<u8>>,
    /// Packet interval override (load tests); None = the codec's natural pace.
    pub interval: Option<Duration>,
    /// Keep the sent payloads (tests compare them); off for load runs.
    pub record: bool,
    /// Make the next video frame a keyframe (set on a keyframe request, like an encoder).
    pub force_keyframe: bool,
    /// Real VP8 frames to send in a loop (frame 0 a keyframe) instead of synthetic ones.
    pub vp8_frames: Option<Vec<Vec<u8>>>,
    /// The frame count at which the loop of real frames last started over (a keyframe
    /// request starts it over; timestamps and picture ids keep counting up, as an encoder's).
    loop_start: u32,
}

impl Track {
    pub fn new(kind: MediaKind, mid: &str) -> Track {
        Track {
            kind,
            ssrc: fastrand::u32(10_000..1_000_000_000),
            mid: mid.into(),
            seq: u64::from(fastrand::u16(..)),
            frame: 0,
            next_at: Instant::now(),
            sent: Vec::new(),
            interval: None,
            record: true,
            force_keyframe: false,
            vp8_frames: None,
            loop_start: 0,
        }
    }

    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// Numbers the next packet `seq` (and those after it from there): tests of strays and jumps.
    pub fn set_next_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// Declares the stream on the client's send Rtc (after `produce` succeeded).
    pub fn declare(&self, t: &mut ClientTransport) {
        let mid: Mid = self.mid.as_str().into();
        let mut api = t.rtc.direct_api();
        let kind = if self.kind == MediaKind::Audio { StrKind::Audio } else { StrKind::Video };
        api.declare_media(mid, kind);
        let rtx = (self.kind == MediaKind::Video).then(|| Ssrc::from(self.ssrc + 1));
        api.declare_stream_tx(Ssrc::from(self.ssrc), rtx, mid, None);
    }

    /// Writes the next packet if it is due (Opus every 20 ms; one VP8 packet every 33 ms,
    /// ~1000 bytes, keyframe every 30 frames).
    pub fn tick(&mut self, t: &mut ClientTransport) {
        self.tick_at(t, Instant::now())
    }

    /// As [`Track::tick`], at `now` (a simulated clock for in-memory clients).
    pub fn tick_at(&mut self, t: &mut ClientTransport, now: Instant) {
        if now < self.next_at || !t.rtc.is_connected() {
            return;
        }
        if self.vp8_frames.is_some() {
            self.tick_real_vp8(t, now);
            return;
        }
        let (pt, interval, ts_step, payload) = match self.kind {
            MediaKind::Audio => {
                let mut p = vec![0xfc, 0xff, 0xfe];
                p.extend_from_slice(&self.frame.to_be_bytes());
                p.resize(80, 0x55);
                (OPUS_PT, Duration::from_millis(20), 960u32, p)
            }
            MediaKind::Video => {
                let key = self.frame.is_multiple_of(30) || std::mem::take(&mut self.force_keyframe);
                (VP8_PT, Duration::from_millis(33), 3000u32, vp8_frame(self.frame, key))
            }
        };
        let mut api = t.rtc.direct_api();
        let Some(tx) = api.stream_tx(&Ssrc::from(self.ssrc)) else { return };
        let ext = ExtensionValues { audio_level: (self.kind == MediaKind::Audio).then_some(-30), ..Default::default() };
        tx.write_rtp(
            RtpWrite::new(Pt::from(pt), SeqNo::from(self.seq), self.frame.wrapping_mul(ts_step), now, payload.clone())
                .marker(true)
                .ext_vals(ext)
                .nackable(self.kind == MediaKind::Video),
        );
        if self.record {
            self.sent.push(payload);
        }
        self.seq += 1;
        self.frame += 1;
        self.next_at = now + self.interval.unwrap_or(interval);
    }
}

impl Track {
    /// Sends the next real VP8 frame, split into packets of at most 1100 bytes (RFC 7741).
    fn tick_real_vp8(&mut self, t: &mut ClientTransport, now: Instant) {
        let Some(frames) = self.vp8_frames.as_ref().filter(|f| !f.is_empty()) else { return };
        if std::mem::take(&mut self.force_keyframe) {
            self.loop_start = self.frame; // back to the keyframe at index 0
        }
        let frame = &frames[self.frame.wrapping_sub(self.loop_start) as usize % frames.len()];
        let pic = (self.frame & 0x7fff) as u16;
        let chunks: Vec<&[u8]> = frame.chunks(1100).collect();
        let mut api = t.rtc.direct_api();
        let Some(tx) = api.stream_tx(&Ssrc::from(self.ssrc)) else { return };
        for (i, chunk) in chunks.iter().enumerate() {
            let first = if i == 0 { 0x90 } else { 0x80 };
            let mut payload = vec![first, 0x80, 0x80 | (pic >> 8) as u8, pic as u8];
            payload.extend_from_slice(chunk);
            tx.write_rtp(
                RtpWrite::new(Pt::from(VP8_PT), SeqNo::from(self.seq), self.frame.wrapping_mul(3000), now, payload.clone())
                    .marker(i + 1 == chunks.len())
                    .nackable(true),
            );
            self.seq += 1;
            if self.record {
                self.sent.push(payload);
            }
        }
        self.frame += 1;
        self.next_at = now + self.interval.unwrap_or(Duration::from_millis(33));
    }
}

/// Two seconds of real VP8 (320x240, 30 frames/s, keyframe every 30 frames) encoded by
/// FFmpeg's libvpx (FFmpeg must be installed).
pub fn real_vp8_frames() -> Result<Vec<Vec<u8>>, String> {
    let ivf = std::env::temp_dir().join(format!("testpeer-{}-{}.ivf", std::process::id(), fastrand::u64(..)));
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "2"])
        .args(["-c:v", "libvpx", "-g", "30", "-b:v", "300k", "-f", "ivf", "-y"])
        .arg(&ivf)
        .status()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    let data = std::fs::read(&ivf).map_err(|e| format!("ffmpeg wrote no file ({status}): {e}"));
    let _ = std::fs::remove_file(&ivf);
    read_ivf(&data?)
}

/// The frames of an IVF file (what `ffmpeg -c:v libvpx -f ivf` writes).
pub fn read_ivf(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if data.len() < 32 || &data[..4] != b"DKIF" {
        return Err("not an IVF file".into());
    }
    let header_len = u16::from_le_bytes([data[6], data[7]]) as usize;
    let mut at = header_len;
    let mut frames = Vec::new();
    while at + 12 <= data.len() {
        let size = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        at += 12;
        let end = at.checked_add(size).filter(|e| *e <= data.len()).ok_or("truncated IVF frame")?;
        frames.push(data[at..end].to_vec());
        at = end;
    }
    Ok(frames)
}

/// Publishes `tracks` on `transport` from a thread until `stop` is set; answers keyframe
/// requests with a keyframe. Returns the transport and tracks when joined.
pub fn publish_in_background(
    mut transport: ClientTransport,
    mut tracks: Vec<Track>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(ClientTransport, Vec<Track>)> {
    std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for t in &mut tracks {
                t.tick(&mut transport);
            }
            for e in transport.pump() {
                if let Event::KeyframeRequest(_) = e {
                    for t in tracks.iter_mut().filter(|t| t.kind == MediaKind::Video) {
                        t.force_keyframe = true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        (transport, tracks)
    })
}

/// A one-packet VP8 frame: payload descriptor with picture id, then a VP8 frame header
/// (a keyframe carries the start code and 640x480), then a counter and padding.
pub fn vp8_frame(n: u32, keyframe: bool) -> Vec<u8> {
    let pic = (n & 0x7fff) as u16;
    let mut p = vec![0x90, 0x80, 0x80 | (pic >> 8) as u8, pic as u8];
    let size = 1000u32;
    // frame tag: bit0 = 0 for a keyframe, version 0, show_frame 1, first partition size.
    let tag = (if keyframe { 0 } else { 1 }) | (1 << 4) | (size << 5);
    p.extend_from_slice(&[tag as u8, (tag >> 8) as u8, (tag >> 16) as u8]);
    if keyframe {
        p.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
    }
    p.extend_from_slice(&n.to_be_bytes());
    p.resize(1000, (n % 251) as u8);
    p
}

/// Whether a VP8 RTP payload starts a keyframe.
pub fn is_vp8_keyframe(payload: &[u8]) -> bool {
    payload.len() > 7 && payload[0] & 0x10 != 0 && payload[4] & 0x01 == 0
}
