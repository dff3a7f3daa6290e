//! The properties of the headers target that need only sfu's public API (see
//! [`crate::headers`]): also compiled into the stable test suite
//! (crates/sfu/tests/fuzz_regressions.rs includes this file), which replays the committed crash
//! inputs of those functions through the very same code.
use sfu::ortc::h264::ProfileLevelId;
use sfu::seq::SeqRewriter;
use sfu::seq_guard::{rtp_ssrc_seq, Admit, SeqGuard, CONFIRM};

/// Runs an input of the headers target if its function is one of this file's; false otherwise.
pub fn run(data: &[u8]) -> bool {
    let Some((&which, rest)) = data.split_first() else { return true };
    match which % 9 {
        0 => rtp_header(rest),
        1 => seq_guard(rest),
        2 => seq_rewriter(rest),
        7 => profile_level_id(rest),
        _ => return false,
    }
    true
}

pub fn rtp_header(data: &[u8]) {
    match rtp_ssrc_seq(data) {
        Some((ssrc, seq)) => {
            assert!(data.len() >= 12 && data[0] >> 6 == 2 && !(192..=223).contains(&data[1]));
            assert_eq!(seq, u16::from_be_bytes([data[2], data[3]]));
            assert_eq!(ssrc, u32::from_be_bytes([data[8], data[9], data[10], data[11]]));
        }
        None => assert!(data.len() < 12 || data[0] >> 6 != 2 || (192..=223).contains(&data[1])),
    }
}

/// Ops of 3 bytes: a sequence number and what to do with it (bit 0: admit, bit 1: str0m
/// accepts it, bit 2: str0m accepts what was released).
pub fn seq_guard(data: &[u8]) {
    let mut g = SeqGuard::default();
    let (mut admitted, mut passed, mut released, mut kept_away) = (0u64, 0u64, 0u64, 0u64);
    let mut started = false;
    for op in data.chunks_exact(3) {
        let seq = u16::from_be_bytes([op[0], op[1]]);
        let before = kept_away;
        if op[2] & 1 != 0 {
            admitted += 1;
            match g.admit(seq, &op[..2], &mut kept_away) {
                Admit::Pass => passed += 1,
                Admit::Held => assert!(started, "nothing is held before the first accepted packet"),
                Admit::Drop => assert!(started),
                Admit::Release(held) => {
                    assert!(!held.is_empty() && held.len() < CONFIRM, "released {}", held.len());
                    for (s, bytes) in &held {
                        assert_eq!(bytes[..], s.to_be_bytes(), "the bytes held are the packet's");
                        if op[2] & 4 != 0 {
                            g.accepted(*s);
                        }
                    }
                    released += held.len() as u64 + 1; // the held ones, then this one
                }
            }
            assert!(kept_away >= before);
        }
        if op[2] & 2 != 0 {
            g.accepted(seq);
            started = true;
        }
        assert!(g.held_len() < CONFIRM);
        assert_eq!(admitted, passed + released + kept_away + g.held_len() as u64, "a packet was lost or handed twice");
    }
}

/// Ops of 9 bytes: what (rewrite, skip, pause) and a 64-bit input number.
pub fn seq_rewriter(data: &[u8]) {
    let Some((&base, data)) = data.split_first() else { return };
    let mut r = SeqRewriter::new(u16::from(base) << 8);
    let mut max_out: Option<u64> = None;
    let mut epoch: Vec<(u64, u64)> = Vec::new(); // (in, out) since the last resync
    let mut resync = true;
    for op in data.chunks_exact(9) {
        let seq = u64::from_be_bytes(op[1..].try_into().expect("8 bytes"));
        match op[0] % 4 {
            0 | 1 => {
                let out = r.rewrite(seq);
                if let Some(out) = out {
                    if resync {
                        let expected = max_out.map_or(u64::from(base) << 8, |m| m.wrapping_add(1));
                        assert_eq!(out, expected, "after a resync the numbers go on without a gap");
                    }
                    for &(i, o) in &epoch {
                        assert_eq!(i == seq, o == out, "in {i} -> {o}, in {seq} -> {out}: not one to one");
                    }
                    epoch.push((seq, out));
                    max_out = Some(max_out.map_or(out, |m| m.max(out)));
                }
                resync &= out.is_none();
            }
            2 => {
                r.skip(seq);
            }
            _ => {
                r.pause();
                resync = true;
                epoch.clear();
            }
        }
        if epoch.len() > 64 {
            epoch.remove(0);
        }
    }
}

pub fn profile_level_id(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Some(p) = ProfileLevelId::parse(&text) else { return };
    if let Some(hex) = p.to_hex() {
        assert_eq!(ProfileLevelId::parse(&hex), Some(p), "{text:?} -> {hex:?}");
    }
}
