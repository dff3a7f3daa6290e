//! Writes the hand-made regression inputs of the datagram target: the smallest inputs that find
//! a bug alone on a fresh world, where the fuzzer's own input needed earlier inputs.
//!
//!     cargo run --release --example regressions -- regressions/datagram
use atome_fuzz::datagram::{encode, From, Op, Who};
use atome_fuzz::world::World;

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "regressions/datagram".into()));
    std::fs::create_dir_all(&dir).expect("a directory");

    // 40 binding requests for the subscriber's transport, signed with a wrong password, from 40
    // spoofed addresses (flags 2: a wrong MESSAGE-INTEGRITY).
    let ops: Vec<Op> = (0..40).map(|i| Op::Stun { to: 1, from: From::Spoofed(1000 + i), flags: 2, priority: 1 }).collect();
    std::fs::write(dir.join("stun-spoofed-addresses"), encode(&ops)).expect("written");

    // One Opus packet from the publisher, on its next sequence number, whose transport-cc number
    // (extension id 4, as testpeer's client sends it) is 40,000 while the real ones are a few
    // hundred: str0m extended it below zero. Then 200 ms, for the feedback report.
    atome_fuzz::dtls::install();
    let w = World::build(false);
    let (track, _) = &w.tracks[0];
    let seq = track.next_seq();
    let mut rtp = vec![0x90, testpeer::OPUS_PT];
    rtp.extend_from_slice(&(seq as u16).to_be_bytes());
    rtp.extend_from_slice(&[0, 0, 0x10, 0]);
    rtp.extend_from_slice(&track.ssrc.to_be_bytes());
    rtp.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x41]);
    rtp.extend_from_slice(&40_000u16.to_be_bytes());
    rtp.push(0);
    rtp.extend_from_slice(&[0xfc, 1, 2, 3, 4, 5, 6, 7]);
    let ops = [Op::Rtp { who: Who::Publisher, roc: (seq >> 16) as u8, data: rtp }, Op::Advance { ms: 200 }, Op::Steps { n: 5 }];
    std::fs::write(dir.join("twcc-below-zero"), encode(&ops)).expect("written");
    eprintln!("written to {}", dir.display());
}
