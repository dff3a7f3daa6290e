//! Writes the seed corpora (fuzz/seeds/<target>/) from real traffic: a world's call (STUN,
//! DTLS, SRTP and SRTCP the str0m clients sent, decrypted with the known keys where the target
//! encrypts itself) and the JSON a mediasoup-client session exchanges.
//!
//!     cargo run --release --example seeds -- fuzz/seeds
use std::path::{Path, PathBuf};

use atome_fuzz::datagram::{encode, From, Op, Who};
use atome_fuzz::srtp::{is_rtcp, Srtp};
use atome_fuzz::world::World;
use sfu::rtp_parameters::MediaKind;

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).expect("seed directory");
    std::fs::write(dir.join(name), data).expect("seed file");
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "seeds".into()));
    let w = World::build(true);
    let publisher = w.publisher.addr;
    let who = |from| if from == publisher { From::Publisher } else { From::Subscriber };
    let mut left = Srtp::new(true);

    // Sort what the clients sent: STUN, DTLS, and after the key switch SRTP and SRTCP.
    let (mut stun, mut dtls, mut srtp, mut srtcp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, (from, d)) in w.captured.iter().enumerate() {
        match d.first() {
            Some(0..=3) => stun.push((*from, d.clone())),
            Some(20..=63) => dtls.push((*from, d.clone())),
            Some(128..=191) if i >= w.keys_from => {
                if is_rtcp(d) {
                    srtcp.push((*from, d.clone()))
                } else {
                    srtp.push((*from, d.clone()))
                }
            }
            _ => {}
        }
    }
    eprintln!("captured {} stun, {} dtls, {} srtp, {} srtcp", stun.len(), dtls.len(), srtp.len(), srtcp.len());

    // datagram: raw datagrams as sent, plain RTP/RTCP for the target to encrypt, STUN built by
    // the target, replays, and the newcomer's handshake.
    let dir = root.join("datagram");
    for (n, (from, d)) in stun.iter().take(2).enumerate() {
        write(&dir, &format!("stun-raw-{n}"), &encode(&[Op::Raw { from: who(*from), data: d.clone() }]));
    }
    let hello = dtls.iter().find(|(from, _)| *from == publisher).map(|(_, d)| d.clone()).expect("a ClientHello");
    write(
        &dir,
        "newcomer-handshake",
        &encode(&[
            Op::Stun { to: 2, from: From::Newcomer, flags: 0x1d, priority: 1_853_817_087 },
            Op::Raw { from: From::Newcomer, data: hello.clone() },
            Op::Steps { n: 3 },
            Op::Raw { from: From::Newcomer, data: hello },
        ]),
    );
    for (n, (from, d)) in dtls.iter().take(4).enumerate() {
        write(&dir, &format!("dtls-raw-{n}"), &encode(&[Op::Raw { from: who(*from), data: d.clone() }]));
    }
    let mut plain_rtp = Vec::new();
    for (from, d) in &srtp {
        if *from != publisher {
            continue;
        }
        if let Some(p) = left.unprotect_rtp(d, 0) {
            plain_rtp.push(p);
        }
    }
    eprintln!("{} publisher RTP packets decrypted", plain_rtp.len());
    let pick = |pt: u8, key: Option<bool>| {
        plain_rtp.iter().find(|p| {
            let h = atome_fuzz::srtp::rtp_header_len(p).unwrap_or(12);
            p[1] & 0x7f == pt && key.is_none_or(|k| p.get(h + 4).is_some_and(|b| (b & 1 == 0) == k) && p[h] & 0x10 != 0)
        })
    };
    for (name, packet) in [
        ("rtp-opus", pick(testpeer::OPUS_PT, None)),
        ("rtp-vp8-keyframe", pick(testpeer::VP8_PT, Some(true))),
        ("rtp-vp8-delta", pick(testpeer::VP8_PT, Some(false))),
        ("rtp-vp8-rtx", pick(testpeer::VP8_RTX_PT, None)),
    ] {
        if let Some(p) = packet {
            write(&dir, name, &encode(&[Op::Rtp { who: Who::Publisher, roc: 0, data: p.clone() }]));
        }
    }
    if let Some(burst) =
        Some(plain_rtp.iter().take(12).map(|p| Op::Rtp { who: Who::Publisher, roc: 0, data: p.clone() }).collect::<Vec<_>>())
    {
        write(&dir, "rtp-burst", &encode(&burst));
    }
    let mut kinds = std::collections::BTreeSet::new();
    for (from, d) in &srtcp {
        let Some(p) = left.unprotect_rtcp(d) else { continue };
        let peer = who(*from);
        let kind = (peer == From::Publisher, p[1], p.get(4 * (usize::from(u16::from_be_bytes([p[2], p[3]])) + 1) + 1).copied());
        if kinds.insert(kind) {
            let w = if peer == From::Publisher { Who::Publisher } else { Who::Subscriber };
            write(
                &dir,
                &format!("rtcp-{}-{}-{}", if kind.0 { "pub" } else { "sub" }, kind.1, kind.2.unwrap_or(0)),
                &encode(&[Op::Rtcp { who: w, data: p }]),
            );
        }
    }
    // Hand-made RTCP a receiver sends: PLI, FIR, NACK (for the video consumer), REMB.
    let video = w.consumers.iter().find(|c| c.2 == MediaKind::Video).map(|c| c.1).expect("a video consumer");
    let v = video.to_be_bytes();
    let mut pli = vec![0x81, 206, 0, 2, 0, 0, 0, 1];
    pli.extend_from_slice(&v);
    let mut fir = vec![0x84, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0];
    fir.extend_from_slice(&v);
    fir.extend_from_slice(&[1, 0, 0, 0]);
    let mut nack = vec![0x81, 205, 0, 3, 0, 0, 0, 1];
    nack.extend_from_slice(&v);
    nack.extend_from_slice(&[0x00, 0x10, 0xff, 0xff]);
    let remb = vec![0x8f, 206, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, b'R', b'E', b'M', b'B', 1, 0x0a, 0xb0, 0x00, v[0], v[1], v[2], v[3]];
    for (name, p) in [("rtcp-sub-pli", pli), ("rtcp-sub-fir", fir), ("rtcp-sub-nack", nack), ("rtcp-sub-remb", remb)] {
        write(&dir, name, &encode(&[Op::Steps { n: 2 }, Op::Rtcp { who: Who::Subscriber, data: p }]));
    }
    for (n, (from, d)) in srtp.iter().take(2).chain(srtcp.iter().take(2)).enumerate() {
        write(&dir, &format!("srtp-raw-{n}"), &encode(&[Op::Raw { from: who(*from), data: d.clone() }]));
    }
    write(
        &dir,
        "stun-built",
        &encode(&[
            Op::Stun { to: 0, from: From::Publisher, flags: 0x19, priority: 1_853_817_087 },
            Op::Stun { to: 1, from: From::Spoofed(7), flags: 0x11, priority: 1 },
            Op::Stun { to: 3, from: From::Stranger, flags: 0x02, priority: 0 },
        ]),
    );
    write(&dir, "replay", &encode(&[Op::Replay { index: 7, flips: vec![] }, Op::Replay { index: 150, flips: vec![(20, 0x40)] }]));
    write(
        &dir,
        "control",
        &encode(&[
            Op::Control { what: 0, which: 1 },
            Op::Steps { n: 40 },
            Op::Control { what: 1, which: 1 },
            Op::Control { what: 2, which: 0 },
            Op::Advance { ms: 1500 },
            Op::Control { what: 3, which: 0 },
            Op::Control { what: 4, which: 1 },
            Op::Control { what: 6, which: 1 },
            Op::Control { what: 7, which: 1 },
        ]),
    );
    write(&dir, "time", &encode(&[Op::Advance { ms: 2000 }, Op::Steps { n: 63 }]));

    // ortc: the JSON of a mediasoup-client session (`#`, one value per line).
    let dir = root.join("ortc");
    let caps = w.worker.rtp_capabilities().clone();
    let json = |v: &dyn ToJson| v.json();
    let lines = |ls: &[String]| format!("#{}", ls.join("\n"));
    let audio = testpeer::produce_parameters(MediaKind::Audio, "0", 1111);
    let video = testpeer::produce_parameters(MediaKind::Video, "1", 2222);
    let send_caps = testpeer::send_rtp_capabilities(&caps);
    let dtls = sfu::rtp_parameters::DtlsParameters {
        role: Some(sfu::rtp_parameters::DtlsRole::Client),
        fingerprints: vec![sfu::rtp_parameters::DtlsFingerprint {
            algorithm: "sha-256".into(),
            value: (0..32).map(|i| format!("{:02X}", i * 5)).collect::<Vec<_>>().join(":"),
        }],
    };
    write(&dir, "produce-audio", lines(&[json(&audio)]).as_bytes());
    write(&dir, "produce-video", lines(&[json(&video)]).as_bytes());
    write(&dir, "produce-both-consume", lines(&[json(&audio), json(&video), json(&caps)]).as_bytes());
    write(&dir, "send-caps", lines(&[json(&send_caps)]).as_bytes());
    write(&dir, "router-caps", lines(&[json(&caps)]).as_bytes());
    write(&dir, "dtls", lines(&[json(&dtls)]).as_bytes());
    let op = |o: atome_fuzz::ortc::Op| serde_json::to_string(&o).expect("ops serialise");
    use atome_fuzz::ortc::Op as O;
    write(
        &dir,
        "session",
        lines(&[
            op(O::CreateRouter),
            op(O::CreateSendTransport { router: 0, caps: None }),
            op(O::CreateRecvTransport { router: 0 }),
            op(O::Connect { transport: 1, dtls: dtls.clone() }),
            op(O::Produce { transport: 0, kind: MediaKind::Video, params: video.clone() }),
            op(O::Produce { transport: 0, kind: MediaKind::Audio, params: audio.clone() }),
            op(O::Consume { transport: 1, producer: 0, caps: caps.clone() }),
            op(O::PauseConsumer { consumer: 0, paused: false }),
            op(O::PauseProducer { producer: 1, paused: true }),
            op(O::RequestKeyframe { producer: 0 }),
            op(O::CloseProducer { producer: 0 }),
            op(O::CloseTransport { transport: 1 }),
            op(O::Forged { kind: 1, id: "w0-t2-00000000".into() }),
        ])
        .as_bytes(),
    );
    let h264 = serde_json::json!({
        "mid": "2",
        "codecs": [{"mimeType": "video/H264", "payloadType": 102, "clockRate": 90000,
                    "parameters": {"level-asymmetry-allowed": 1, "packetization-mode": 1, "profile-level-id": "42e01f"},
                    "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]},
                   {"mimeType": "video/rtx", "payloadType": 103, "clockRate": 90000, "parameters": {"apt": 102}}],
        "headerExtensions": [{"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4}],
        "encodings": [{"ssrc": 3333, "rtx": {"ssrc": 3334}, "scalabilityMode": "L1T3", "maxBitrate": 500000}],
        "rtcp": {"cname": "x", "reducedSize": true}
    });
    write(&dir, "produce-h264", format!("#{h264}").as_bytes());
    let simulcast = serde_json::json!({
        "mid": "3", "codecs": [{"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000}],
        "encodings": [{"rid": "r0", "scalabilityMode": "L1T3"}, {"rid": "r1"}, {"rid": "r2"}]
    });
    write(&dir, "produce-simulcast", format!("#{simulcast}").as_bytes());

    // headers: one per function (first byte), from the call's own packets.
    let dir = root.join("headers");
    if let Some(p) = plain_rtp.first() {
        write(&dir, "rtp-header", &[&[0u8][..], p].concat());
    }
    let mut guard = vec![1u8];
    for (seq, flags) in [(100u16, 3u8), (101, 3), (102, 3), (5000, 1), (5001, 1), (5002, 5), (103, 3), (1, 1), (104, 3)] {
        guard.extend_from_slice(&seq.to_be_bytes());
        guard.push(flags);
    }
    write(&dir, "seq-guard-jump", &guard);
    let mut rewriter = vec![2u8, 0x10];
    for (op, seq) in [(0u8, 70_000u64), (0, 70_001), (2, 70_002), (0, 70_003), (3, 0), (0, 90_000), (0, 65_000)] {
        rewriter.push(op);
        rewriter.extend_from_slice(&seq.to_be_bytes());
    }
    write(&dir, "seq-rewriter", &rewriter);
    write(&dir, "vp8-keyframe", &[&[3u8, 0][..], &testpeer::vp8_frame(0, true)[..64]].concat());
    write(&dir, "vp8-delta", &[&[3u8, 0][..], &testpeer::vp8_frame(1, false)[..64]].concat());
    if let Some((_, s)) = stun.first() {
        write(&dir, "stun", &[&[4u8][..], s].concat());
    }
    write(&dir, "rtcp-bye", &[5u8, 0, 0, 0x10, 0x01, 0xde, 0xad, 0xbe, 0xef]);
    write(&dir, "rtp-built", &[6u8, 0x80 | 101, 0x12, 0x34, 0, 0, 0x0b, 0xb8, 1, 2, 3, 4, 0x90, 0x80, 0x80, 1]);
    write(&dir, "profile-level-id", b"\x0742e01f");
    eprintln!("seeds written to {}", root.display());
}

/// JSON of anything serialisable (one line).
trait ToJson {
    fn json(&self) -> String;
}

impl<T: serde::Serialize> ToJson for T {
    fn json(&self) -> String {
        serde_json::to_string(self).expect("serialises")
    }
}
