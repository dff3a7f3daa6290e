//! The media side of one simulated peer: a str0m `Rtc` on its own UDP socket, driven from a
//! tokio task. Publishers write synthetic video and audio whose payload ends with the send time;
//! subscribers count packets per stream, gaps (loss) and latency. Nothing here knows the server,
//! except that mediasoup's probing stream is not media.
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::link::Link;
use crate::simulcast::{layer_of, SimulcastSource};

/// Shared clock origin: publishers stamp payloads with nanoseconds since it, subscribers subtract.
static EPOCH: OnceLock<Instant> = OnceLock::new();

pub fn now_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_nanos() as u64
}

/// Bytes at the end of every payload holding the send time.
pub const STAMP_LEN: usize = 8;

/// Switches shared by every peer task of one run.
#[derive(Default)]
pub struct Control {
    /// Count packets (set after the warm-up, cleared at the end of the window).
    pub measuring: AtomicBool,
    pub stop: AtomicBool,
    /// Peers whose ICE and DTLS are up.
    pub connected: AtomicUsize,
    /// Peers that received a first media packet.
    pub with_media: AtomicUsize,
}

/// mediasoup's bandwidth-probing stream, added to every transport that sends to a client
/// (mid `probator`, SSRC 1234): not media, so neither counted as a stream nor as a first packet.
/// str0m 0.25 in RTP mode already drops it (no media is declared under mid `probator`, so the
/// SSRC maps to nothing); the filter keeps the figures right should a client map it.
pub const MEDIASOUP_PROBATOR_SSRC: u32 = 1234;
pub const MEDIASOUP_PROBATOR_MID: &str = "probator";

/// Whether a received packet belongs to mediasoup's probing stream. A consumer drawing SSRC 1234
/// at random (one chance in 2^32) would be left out too; a stream whose mid is `probator` is
/// the probe whatever its SSRC.
pub fn is_probe(ssrc: u32, mid: Option<&str>) -> bool {
    ssrc == MEDIASOUP_PROBATOR_SSRC || mid == Some(MEDIASOUP_PROBATOR_MID)
}

/// What a track sends: synthetic VP8-like video or Opus-like audio at a set bitrate.
#[derive(Debug, Clone, Copy)]
pub struct SourceSpec {
    pub kind: MediaKind,
    pub kbps: u32,
    pub packet_bytes: usize,
    pub fps: u32,
    pub keyframe_every: Duration,
}

/// One sending track of a publisher.
pub struct Source {
    spec: SourceSpec,
    mid: Mid,
    pt: Pt,
    seq: u64,
    frame: u32,
    pub next_at: Instant,
    force_keyframe: bool,
}

impl Source {
    pub fn new(spec: SourceSpec, mid: Mid, pt: Pt) -> Source {
        Source { spec, mid, pt, seq: u64::from(fastrand::u16(..)), frame: 0, next_at: Instant::now(), force_keyframe: false }
    }

    fn interval(&self) -> Duration {
        match self.spec.kind {
            MediaKind::Audio => Duration::from_millis(20),
            MediaKind::Video => Duration::from_secs(1) / self.spec.fps.max(1),
        }
    }

    /// Payload sizes of the next frame: the bitrate spread over frames, cut into packets.
    fn frame_sizes(&self) -> Vec<usize> {
        let per_second = self.spec.kbps as usize * 1000 / 8;
        match self.spec.kind {
            MediaKind::Audio => vec![(per_second / 50).max(STAMP_LEN + 4)],
            MediaKind::Video => {
                let frame = (per_second / self.spec.fps.max(1) as usize).max(STAMP_LEN + 16);
                let max = self.spec.packet_bytes.max(STAMP_LEN + 16);
                let n = frame.div_ceil(max);
                let each = frame.div_ceil(n);
                vec![each; n]
            }
        }
    }

    /// Writes the frame that is due (if any); returns the packets written.
    fn send_due(&mut self, rtc: &mut Rtc, now: Instant) -> u64 {
        if now < self.next_at {
            return 0;
        }
        let key_every = (self.spec.keyframe_every.as_millis() as u32 / self.interval().as_millis().max(1) as u32).max(1);
        let keyframe =
            self.spec.kind == MediaKind::Video && (self.frame.is_multiple_of(key_every) || std::mem::take(&mut self.force_keyframe));
        // RTP timestamp step per frame: 20 ms at 48 kHz, 1/fps at 90 kHz.
        let step = match self.spec.kind {
            MediaKind::Audio => 960u32,
            MediaKind::Video => 90_000 / self.spec.fps.max(1),
        };
        let sizes = self.frame_sizes();
        let count = sizes.len();
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(self.mid, None) else { return 0 };
        for (i, size) in sizes.into_iter().enumerate() {
            let mut payload = Vec::with_capacity(size);
            match self.spec.kind {
                MediaKind::Video => {
                    let pic = (self.frame & 0x7fff) as u16;
                    payload.extend_from_slice(&[if i == 0 { 0x90 } else { 0x80 }, 0x80, 0x80 | (pic >> 8) as u8, pic as u8]);
                    if i == 0 {
                        // VP8 frame tag: bit 0 clear on a keyframe, show_frame set; a keyframe carries
                        // the start code and 640x480.
                        payload.extend_from_slice(&[u8::from(!keyframe) | 0x10, 0x02, 0x00]);
                        if keyframe {
                            payload.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
                        }
                    }
                }
                MediaKind::Audio => payload.extend_from_slice(&[0xfc, 0xff, 0xfe]),
            }
            payload.resize(size - STAMP_LEN, (self.frame % 251) as u8);
            payload.extend_from_slice(&now_ns().to_be_bytes());
            tx.write_rtp(
                RtpWrite::new(self.pt, SeqNo::from(self.seq), self.frame.wrapping_mul(step), now, payload)
                    .marker(i + 1 == count)
                    .nackable(self.spec.kind == MediaKind::Video),
            );
            self.seq += 1;
        }
        self.frame += 1;
        self.next_at += self.interval();
        if self.next_at < now {
            self.next_at = now + self.interval(); // fell behind: do not burst to catch up
        }
        count as u64
    }
}

/// What a publisher sends on one media section: one stream, or a simulcast track.
pub enum Track {
    Single(Source),
    Simulcast(SimulcastSource),
}

impl Track {
    fn next_at(&self) -> Instant {
        match self {
            Track::Single(s) => s.next_at,
            Track::Simulcast(s) => s.next_at,
        }
    }

    /// Writes what is due; returns the packets a subscriber of this track gets (the top stream
    /// of a simulcast track) and the packets written.
    fn send_due(&mut self, rtc: &mut Rtc, now: Instant) -> (u64, u64) {
        match self {
            Track::Single(s) => {
                let n = s.send_due(rtc, now);
                (n, n)
            }
            Track::Simulcast(s) => s.send_due(rtc, now),
        }
    }

    fn keyframe_requested(&mut self, rid: Option<&str>) {
        match self {
            Track::Single(s) if s.spec.kind == MediaKind::Video => s.force_keyframe = true,
            Track::Single(_) => {}
            Track::Simulcast(s) => s.keyframe_requested(rid),
        }
    }
}

/// Sequence numbers seen on one stream within the window.
#[derive(Debug, Default, Clone)]
pub struct SeqTrack {
    base: Option<u64>,
    max: u64,
    bits: Vec<u64>,
    pub distinct: u64,
}

impl SeqTrack {
    pub fn see(&mut self, seq: u64) {
        let base = *self.base.get_or_insert(seq);
        if seq < base {
            return; // reordered from before the window
        }
        let i = (seq - base) as usize;
        if i >= self.bits.len() * 64 {
            self.bits.resize(i / 64 + 1, 0);
        }
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.bits[word] & bit == 0 {
            self.bits[word] |= bit;
            self.distinct += 1;
        }
        self.max = self.max.max(seq);
    }

    /// Packets expected between the first and the last one seen.
    pub fn expected(&self) -> u64 {
        self.base.map_or(0, |b| self.max - b + 1)
    }
}

/// What one peer task measured.
#[derive(Debug, Default)]
pub struct PeerReport {
    /// Packets sent that a subscriber gets (of a simulcast track, the top stream's).
    pub sent: u64,
    /// Every packet sent (all streams of a simulcast track).
    pub sent_all: u64,
    pub received: u64,
    /// Video packets received in the window per simulcast stream (lowest first).
    pub layers: [u64; 3],
    /// Whether its downlink was capped ([`Link`]), and the datagrams the cap dropped.
    pub capped: bool,
    pub link_dropped: u64,
    /// One entry per received packet in the window, in microseconds.
    pub latencies_us: Vec<u32>,
    pub streams: HashMap<u32, SeqTrack>,
    /// From the start of the join to the first media packet (subscribers).
    pub first_packet: Option<Duration>,
    pub connected: bool,
    pub keyframe_requests: u64,
    /// Packets of mediasoup's probing stream, left out of every figure.
    pub probe_packets: u64,
}

/// The loop of one peer until `ctl.stop`: feeds datagrams and timeouts, sends due frames.
/// With a `link`, datagrams from the server pass through it first (a capped downlink).
pub async fn run(
    mut rtc: Rtc,
    socket: StdUdpSocket,
    mut sources: Vec<Track>,
    mut link: Option<Link>,
    joined_at: Instant,
    ctl: Arc<Control>,
) -> PeerReport {
    let mut report = PeerReport { capped: link.is_some(), ..Default::default() };
    let socket = match socket.set_nonblocking(true).and_then(|_| UdpSocket::from_std(socket)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: socket: {e}");
            return report;
        }
    };
    let Ok(local) = socket.local_addr() else { return report };
    let mut buf = vec![0u8; 2048];
    while !ctl.stop.load(Ordering::Relaxed) {
        let timeout = drain(&mut rtc, &socket, &mut report, &mut sources, joined_at, &ctl).await;
        let now = Instant::now();
        let next_send = sources.iter().map(Track::next_at).min();
        let next_release = link.as_ref().and_then(Link::next_release);
        let wake = [next_send, next_release].into_iter().flatten().fold(timeout, Instant::min).min(now + Duration::from_millis(50));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, src)) = r {
                    // In RTP mode str0m holds one received packet until the next poll_output:
                    // every datagram is followed by a drain, or packets are overwritten.
                    let mut take = |src: SocketAddr, data: &[u8], rtc: &mut Rtc| match link.as_mut() {
                        Some(l) => {
                            l.offer(Instant::now(), src, data);
                            false
                        }
                        None => {
                            feed(rtc, local, src, data);
                            true
                        }
                    };
                    if take(src, &buf[..n], &mut rtc) {
                        drain(&mut rtc, &socket, &mut report, &mut sources, joined_at, &ctl).await;
                    }
                    for _ in 0..64 {
                        let Ok((n, src)) = socket.try_recv_from(&mut buf) else { break };
                        if take(src, &buf[..n], &mut rtc) {
                            drain(&mut rtc, &socket, &mut report, &mut sources, joined_at, &ctl).await;
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        if let Some(l) = link.as_mut() {
            while let Some((src, data)) = l.pop_due(Instant::now()) {
                feed(&mut rtc, local, src, &data);
                drain(&mut rtc, &socket, &mut report, &mut sources, joined_at, &ctl).await;
            }
        }
        let now = Instant::now();
        if rtc.is_connected() {
            for s in &mut sources {
                let (n, all) = s.send_due(&mut rtc, now);
                if ctl.measuring.load(Ordering::Relaxed) {
                    report.sent += n;
                    report.sent_all += all;
                }
            }
        }
        let _ = rtc.handle_input(Input::Timeout(now));
    }
    report.link_dropped = link.map_or(0, |l| l.dropped);
    report
}

fn feed(rtc: &mut Rtc, local: SocketAddr, src: SocketAddr, data: &[u8]) {
    if let Ok(r) = Receive::new(Protocol::Udp, src, local, data) {
        let _ = rtc.handle_input(Input::Receive(Instant::now(), r));
    }
}

/// Sends everything the Rtc has to send and handles its events; returns its next timeout.
async fn drain(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    report: &mut PeerReport,
    sources: &mut [Track],
    joined_at: Instant,
    ctl: &Control,
) -> Instant {
    loop {
        match rtc.poll_output() {
            Ok(Output::Timeout(at)) => return at,
            Ok(Output::Transmit(t)) => {
                if socket.try_send_to(&t.contents, t.destination).is_err() {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
            }
            Ok(Output::Event(e)) => on_event(e, report, sources, joined_at, ctl),
            Err(e) => {
                eprintln!("loadgen: rtc: {e}");
                return Instant::now() + Duration::from_millis(20);
            }
        }
    }
}

fn on_event(e: Event, report: &mut PeerReport, sources: &mut [Track], joined_at: Instant, ctl: &Control) {
    match e {
        Event::RtpPacket(p) => {
            if is_probe(*p.header.ssrc, p.header.ext_vals.mid.as_deref()) {
                report.probe_packets += 1;
                return;
            }
            if p.payload.len() < STAMP_LEN {
                return; // padding / probes
            }
            if report.first_packet.is_none() {
                report.first_packet = Some(joined_at.elapsed());
                ctl.with_media.fetch_add(1, Ordering::Relaxed);
            }
            if !ctl.measuring.load(Ordering::Relaxed) {
                return;
            }
            report.received += 1;
            let at = p.payload.len() - STAMP_LEN;
            let mut stamp = [0u8; STAMP_LEN];
            stamp.copy_from_slice(&p.payload[at..]);
            let sent = u64::from_be_bytes(stamp);
            let latency = now_ns().saturating_sub(sent) / 1000;
            report.latencies_us.push(latency.min(u64::from(u32::MAX)) as u32);
            report.streams.entry(*p.header.ssrc).or_default().see(*p.seq_no);
            if let Some(l) = layer_of(&p.payload) {
                report.layers[usize::from(l)] += 1; // layer_of checks the range
            }
        }
        Event::KeyframeRequest(r) => {
            report.keyframe_requests += 1;
            for s in sources.iter_mut() {
                s.keyframe_requested(r.rid.as_deref());
            }
        }
        Event::Connected => {
            if !report.connected {
                ctl.connected.fetch_add(1, Ordering::Relaxed);
            }
            report.connected = true;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_track_counts_gaps_and_duplicates() {
        let mut t = SeqTrack::default();
        for s in [100u64, 101, 103, 103, 104, 99, 200] {
            t.see(s);
        }
        assert_eq!(t.expected(), 101);
        assert_eq!(t.distinct, 5);
    }

    #[test]
    fn mediasoup_probe_stream_is_recognised_by_ssrc_or_mid() {
        assert!(is_probe(1234, Some("probator")));
        assert!(is_probe(1234, None));
        assert!(is_probe(77_000, Some("probator")));
        assert!(!is_probe(77_000, Some("0")));
        assert!(!is_probe(77_000, None));
    }

    #[test]
    fn video_frames_follow_the_bitrate() {
        let spec = SourceSpec { kind: MediaKind::Video, kbps: 1000, packet_bytes: 1100, fps: 30, keyframe_every: Duration::from_secs(2) };
        let s = Source::new(spec, Mid::from("0"), Pt::from(96));
        let sizes = s.frame_sizes();
        let bytes_per_second: usize = sizes.iter().sum::<usize>() * 30;
        assert!(sizes.iter().all(|&n| n <= 1100), "{sizes:?}");
        assert!((120_000..=130_000).contains(&bytes_per_second), "{bytes_per_second}");
        let audio = SourceSpec { kind: MediaKind::Audio, kbps: 40, ..spec };
        assert_eq!(Source::new(audio, Mid::from("1"), Pt::from(111)).frame_sizes(), vec![100]);
    }
}
