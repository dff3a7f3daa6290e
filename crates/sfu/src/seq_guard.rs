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
