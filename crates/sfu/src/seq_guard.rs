//! Keeps stray RTP packets away from str0m's receive state.
//!
//! str0m extends each 16-bit sequence number against the highest one it accepted and keeps a
//! replay window 100 packets deep behind it (`MAX_MISORDER`, `extend_u16`). One authentic
//! packet far ahead moves that maximum, so the packets after it fall behind the window and are
//! dropped as old; one far behind can be extended into another rollover counter and, once it
//! authenticates, lock the stream out. The RTP header is in clear under SRTP, so the worker reads
//! it first and asks the guard of that SSRC:
//!
//! - within 100 behind to 100 ahead of the highest accepted number: passed (a lone jump of up
//!   to 100 leaves every later packet inside str0m's window);
//! - more than 100 behind: dropped (str0m would drop it as old, or mis-extend it);
//! - more than 100 ahead: held; once [`CONFIRM`] packets close to each other agree, the held
//!   ones are released in arrival order and the stream moves there (a real jump, such as a
//!   sender restarting its numbering); a held packet that no others join is dropped after
//!   [`STALE_AFTER`] ordinary packets.
//!
//! The highest accepted number only moves on packets str0m authenticated ([`SeqGuard::accepted`]),
//! so forged headers cannot steer the guard.

/// How far behind the highest accepted number a packet still passes (str0m's window depth).
pub const BEHIND: i16 = 100;
/// How far ahead a packet passes without confirmation.
pub const AHEAD: i16 = 100;
/// Packets close to each other that make a jump real.
pub const CONFIRM: usize = 3;
/// Packets of a jump must lie this close to its first one.
const CLOSE: u16 = 32;
/// Ordinary packets after which an unconfirmed jump is forgotten.
pub const STALE_AFTER: u32 = 8;

/// What to do with one packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Hand it to str0m.
    Pass,
    /// Kept back until its jump is confirmed or forgotten.
    Held,
    /// Too far behind: drop it.
    Drop,
    /// A jump is confirmed: hand these held datagrams (sequence number, bytes; oldest first) to
    /// str0m, then this packet.
    Release(Vec<(u16, Vec<u8>)>),
}

/// The guard of one SSRC.
#[derive(Debug, Default)]
pub struct SeqGuard {
    /// Highest sequence number str0m accepted; `None` before the first.
    max: Option<u16>,
    held: Vec<(u16, Vec<u8>)>,
    ordinary_since_hold: u32,
}

impl SeqGuard {
    /// Decides on a packet with sequence number `seq` whose datagram is `data`. Every packet
    /// kept from str0m for good (dropped now, or a held one given up) is added to `kept_away`.
    pub fn admit(&mut self, seq: u16, data: &[u8], kept_away: &mut u64) -> Admit {
        let Some(max) = self.max else { return Admit::Pass };
        let delta = seq.wrapping_sub(max) as i16; // wrapping difference, as RFC 3550 appendix A.1
        if (-BEHIND..=AHEAD).contains(&delta) {
            if !self.held.is_empty() {
                self.ordinary_since_hold += 1;
                if self.ordinary_since_hold >= STALE_AFTER {
                    *kept_away += self.held.len() as u64;
                    self.held.clear();
                }
            }
            return Admit::Pass;
        }
        if delta < -BEHIND {
            *kept_away += 1;
            return Admit::Drop;
        }
        // unsigned_abs: 32,768 apart is as far as it gets (abs would overflow there).
        let joins = self.held.first().is_some_and(|(first, _)| (seq.wrapping_sub(*first) as i16).unsigned_abs() <= CLOSE);
        if !joins {
            *kept_away += self.held.len() as u64;
            self.held.clear();
            self.ordinary_since_hold = 0;
        }
        if self.held.len() + 1 >= CONFIRM {
            return Admit::Release(std::mem::take(&mut self.held));
        }
        self.held.push((seq, data.to_vec()));
        Admit::Held
    }

    /// str0m authenticated and accepted a packet with sequence number `seq`.
    pub fn accepted(&mut self, seq: u16) {
        match self.max {
            Some(max) if (seq.wrapping_sub(max) as i16) <= 0 => {}
            _ => self.max = Some(seq),
        }
    }
}

impl SeqGuard {
    /// How many datagrams are held back now (at most [`CONFIRM`] - 1).
    pub fn held_len(&self) -> usize {
        self.held.len()
    }
}

/// Keeps transport-wide sequence numbers that str0m would extend below zero away from it.
///
/// str0m (0.25: `extend_u16` in `Session::handle_rtp`) extends each 16-bit transport-cc number
/// against the highest one it recorded. While that is below 32,768, a number more than 32,768
/// above it is taken for one behind zero and extended to nearly 2^64; the next transport-cc
/// feedback report (every 50 ms) then lists every number in between, one chunk per 8,192
/// (`TwccRecvRegister::build_interims`), until memory runs out: one authenticated RTP packet from
/// a peer took the server down. Such packets are dropped here: a sender counting up from a small
/// number never sends one. The highest number only moves on packets str0m accepted
/// ([`TwccGuard::accepted`]); str0m's own highest is never below it, so nothing dropped here
/// would have been safe and nothing passed can wrap.
#[derive(Debug, Default)]
pub struct TwccGuard {
    /// Highest extended transport-cc number of a packet str0m accepted.
    max: Option<u64>,
}

const HALF: u64 = 1 << 15;

impl TwccGuard {
    /// Whether a packet carrying transport-cc number `seq` may go to str0m.
    pub fn admit(&self, seq: u16) -> bool {
        let max = self.max.unwrap_or(0);
        max >= HALF || u64::from(seq) <= max + HALF
    }

    /// str0m accepted a packet carrying transport-cc number `seq`.
    pub fn accepted(&mut self, seq: u16) {
        let ext = extend_u16(self.max, seq);
        self.max = Some(self.max.map_or(ext, |m| m.max(ext)));
    }
}

/// str0m's extension of a 16-bit sequence number against the highest extended one so far, except
/// that it stops at zero instead of wrapping to nearly 2^64.
fn extend_u16(prev: Option<u64>, seq: u16) -> u64 {
    let seq = u64::from(seq);
    let Some(prev) = prev else { return seq };
    let (roc, prev_seq) = (prev >> 16, prev & 0xffff);
    let roc = if prev_seq < HALF {
        if seq > HALF + prev_seq {
            roc.saturating_sub(1)
        } else {
            roc
        }
    } else if prev_seq > seq + HALF {
        roc + 1
    } else {
        roc
    };
    roc << 16 | seq
}

/// The transport-cc number (header extension `id`) of an RTP datagram, read from its clear
/// header as str0m reads it (`RtpHeader::parse`, `ExtensionMap::parse`): a version-2 header with
/// its CSRCs, a one-byte (0xBEDE) or two-byte (0x100x) extension block that fits; zero bytes are
/// padding, id 15 ends a one-byte block, an element that does not fit ends the block, and every
/// element with the id and two bytes or more sets the value (the last one wins).
pub fn transport_cc(data: &[u8], id: u8) -> Option<u16> {
    if data.len() < 12 || data[0] >> 6 != 2 || data[0] & 0x10 == 0 {
        return None;
    }
    let rest = data.get(12 + 4 * usize::from(data[0] & 0x0f)..)?;
    let (head, rest) = (rest.get(..4)?, &rest[4..]);
    let profile = u16::from_be_bytes([head[0], head[1]]);
    let one_byte = match profile {
        0xbede => true,
        p if p & 0xfff0 == 0x1000 => false,
        _ => return None,
    };
    let mut block = rest.get(..4 * usize::from(u16::from_be_bytes([head[2], head[3]])))?;
    let mut value = None;
    while let Some(&first) = block.first() {
        if first == 0 {
            block = &block[1..];
            continue;
        }
        let (element, len) = if one_byte {
            if first >> 4 == 15 {
                break;
            }
            block = &block[1..];
            (first >> 4, usize::from(first & 0x0f) + 1)
        } else {
            let Some(&len) = block.get(1) else { break };
            block = &block[2..];
            (first, usize::from(len))
        };
        let Some(body) = block.get(..len) else { break };
        if element == id && len >= 2 {
            value = Some(u16::from_be_bytes([body[0], body[1]]));
        }
        block = &block[len..];
    }
    value
}

/// The SSRC and sequence number of an RTP datagram (not RTCP, not STUN or DTLS), from its clear
/// header (RFC 3550 section 5.1; RTCP packet types 192..=223 by RFC 5761 section 4).
pub fn rtp_ssrc_seq(data: &[u8]) -> Option<(u32, u16)> {
    if data.len() < 12 || data[0] >> 6 != 2 || (192..=223).contains(&data[1]) {
        return None;
    }
    let seq = u16::from_be_bytes([data[2], data[3]]);
    let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
    Some((ssrc, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `seqs` through a guard whose str0m accepts every packet handed to it; returns the
    /// sequence numbers handed over, in order.
    fn run(start: u16, seqs: impl IntoIterator<Item = u16>) -> Vec<u16> {
        let mut g = SeqGuard::default();
        g.accepted(start);
        let mut out = Vec::new();
        for seq in seqs {
            match g.admit(seq, &seq.to_be_bytes(), &mut 0) {
                Admit::Pass => out.push(seq),
                Admit::Release(held) => {
                    out.extend(held.iter().map(|(s, _)| *s));
                    out.push(seq);
                }
                Admit::Held | Admit::Drop => continue,
            }
            for s in out.iter().rev().take(CONFIRM) {
                g.accepted(*s);
            }
        }
        out
    }

    #[test]
    fn a_lone_jump_ahead_is_kept_away_and_the_stream_goes_on() {
        let mut seqs: Vec<u16> = (1..=40).collect();
        seqs.push(240);
        seqs.extend(41..=80);
        let out = run(0, seqs);
        assert!(!out.contains(&240));
        assert_eq!(out, (1..=80).collect::<Vec<_>>());
    }

    #[test]
    fn far_behind_is_dropped_near_and_wrapped_pass() {
        let out = run(1000, [1001, 1002, 1002u16.wrapping_sub(1100), 950, 1003]);
        assert_eq!(out, vec![1001, 1002, 950, 1003]);
        let out = run(65530, [65531, 65535, 0, 3, 2, 65534]);
        assert_eq!(out, vec![65531, 65535, 0, 3, 2, 65534], "wrap-around is ordinary");
        let out = run(20, [21, 20u16.wrapping_sub(1100), 22]);
        assert_eq!(out, vec![21, 22], "1,100 behind near the start of a stream");
    }

    #[test]
    fn a_real_jump_is_confirmed_and_nothing_held_is_lost() {
        let mut seqs: Vec<u16> = (1..=10).collect();
        seqs.extend([5001, 5003, 5002, 5004, 5005]);
        let out = run(0, seqs);
        assert_eq!(&out[10..], &[5001, 5003, 5002, 5004, 5005]);
    }

    #[test]
    fn reordering_up_to_the_window_passes() {
        let out = run(200, [300, 201, 250, 299]);
        assert_eq!(out, vec![300, 201, 250, 299]);
        let out = run(200, [300, 199]);
        assert_eq!(out, vec![300], "101 behind the highest");
    }

    #[test]
    fn a_stale_hold_is_forgotten() {
        let mut g = SeqGuard::default();
        let mut forgotten = 0;
        g.accepted(10);
        assert_eq!(g.admit(5000, b"x", &mut forgotten), Admit::Held);
        for s in 11..11 + STALE_AFTER as u16 {
            assert_eq!(g.admit(s, b"y", &mut forgotten), Admit::Pass);
            g.accepted(s);
        }
        assert_eq!(forgotten, 1);
        assert_eq!(g.admit(5001, b"z", &mut forgotten), Admit::Held, "5000 was forgotten: 5001 starts a new hold");
        assert_eq!(g.admit(5002, b"z", &mut forgotten), Admit::Held);
        assert!(matches!(g.admit(5003, b"z", &mut forgotten), Admit::Release(h) if h.len() == 2));
        assert_eq!(forgotten, 1);
    }

    #[test]
    fn a_packet_half_the_number_space_away_does_not_join_a_jump() {
        // fuzz/regressions/headers/seq-guard-half-space: 32,768 apart overflowed `abs` (a
        // panic with overflow checks, "close" without them).
        let mut g = SeqGuard::default();
        let mut kept = 0;
        g.accepted(100);
        assert_eq!(g.admit(5000, b"a", &mut kept), Admit::Held);
        g.accepted(30000); // the stream moved on while 5000 was held
        assert_eq!(g.admit(5000 + 32768, b"b", &mut kept), Admit::Held, "starts a hold of its own");
        assert_eq!(kept, 1, "the first hold is given up");
        assert_eq!(g.held_len(), 1);
    }

    /// An RTP header (PT 111, seq 1, SSRC 7) with a one-byte extension block holding `elements`.
    fn with_extensions(elements: &[u8]) -> Vec<u8> {
        let mut p = vec![0x90, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0xbe, 0xde];
        let words = elements.len().div_ceil(4);
        p.extend_from_slice(&(words as u16).to_be_bytes());
        p.extend_from_slice(elements);
        p.resize(16 + 4 * words, 0);
        p.extend_from_slice(b"payload");
        p
    }

    #[test]
    fn transport_cc_numbers_are_read_as_str0m_reads_them() {
        assert_eq!(transport_cc(&with_extensions(&[0x41, 0x12, 0x34]), 4), Some(0x1234));
        assert_eq!(transport_cc(&with_extensions(&[0x41, 0x12, 0x34]), 5), None, "another id");
        assert_eq!(transport_cc(&with_extensions(&[0, 0, 0x90, 1, 0x41, 0, 9]), 4), Some(9), "after padding and a mid");
        assert_eq!(transport_cc(&with_extensions(&[0x41, 0, 1, 0x41, 0, 2]), 4), Some(2), "the last one wins");
        assert_eq!(transport_cc(&with_extensions(&[0xf0, 0x41, 0, 1]), 4), None, "id 15 ends the block");
        assert_eq!(transport_cc(&with_extensions(&[0x40, 7]), 4), None, "one byte is not enough");
        assert_eq!(transport_cc(&with_extensions(&[0x43, 0, 5, 0, 0]), 4), Some(5), "longer is read from its start");
        let mut two_byte = vec![0x90, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0x10, 0x07, 0, 1, 4, 2, 0xab, 0xcd];
        assert_eq!(transport_cc(&two_byte, 4), Some(0xabcd));
        two_byte[15] = 2; // the block claims more than there is
        assert_eq!(transport_cc(&two_byte, 4), None);
        let mut no_x = with_extensions(&[0x41, 0, 1]);
        no_x[0] = 0x80;
        assert_eq!(transport_cc(&no_x, 4), None);
        assert_eq!(transport_cc(&[0x90; 15], 4), None);
    }

    #[test]
    fn a_transport_cc_number_str0m_would_extend_below_zero_is_kept_away() {
        // fuzz/regressions/datagram/twcc-below-zero: str0m extended such a number to nearly 2^64
        // and its next feedback report grew without bound.
        let mut g = TwccGuard::default();
        assert!(g.admit(1) && g.admit(32_768) && !g.admit(32_769), "before any: as if the highest were 0");
        for seq in 1..=300 {
            assert!(g.admit(seq));
            g.accepted(seq);
        }
        assert!(g.admit(300 + 32_768));
        assert!(!g.admit(301 + 32_768), "behind zero for str0m");
        assert!(g.admit(299) && g.admit(5000), "late and ahead are fine");
        for seq in (300..=40_000).step_by(1000) {
            g.accepted(seq);
        }
        assert!(g.admit(65_000) && g.admit(3), "past 32,768 nothing wraps below zero any more");
        g.accepted(65_535);
        g.accepted(3);
        assert_eq!(g.max, Some(65_536 + 3), "wraps forward as str0m does");
    }

    #[test]
    fn without_an_accepted_packet_everything_passes() {
        let mut g = SeqGuard::default();
        assert_eq!(g.admit(40000, b"", &mut 0), Admit::Pass);
        assert_eq!(g.admit(3, b"", &mut 0), Admit::Pass);
    }

    #[test]
    fn headers_are_read_safely() {
        assert_eq!(rtp_ssrc_seq(&[]), None);
        assert_eq!(rtp_ssrc_seq(&[0x80; 11]), None);
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[1] = 96;
        rtp[2..4].copy_from_slice(&513u16.to_be_bytes());
        rtp[8..12].copy_from_slice(&7001u32.to_be_bytes());
        assert_eq!(rtp_ssrc_seq(&rtp), Some((7001, 513)));
        rtp[1] = 200; // RTCP sender report
        assert_eq!(rtp_ssrc_seq(&rtp), None);
        rtp[0] = 0x00; // STUN
        rtp[1] = 1;
        assert_eq!(rtp_ssrc_seq(&rtp), None);
    }
}
