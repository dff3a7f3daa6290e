//! Watch over the repair of a publisher's video stream: packets missing upstream that NACKs
//! did not bring back make every subscriber's decoder wait for a keyframe, which a browser asks
//! for itself only after about 3 s without a decodable frame (libwebrtc's wait for a frame).
//! Like mediasoup's NackGenerator ("key frame required" once a packet has used its NACK retries,
//! or the list overflows), the engine asks the publisher for a keyframe as soon as a missing
//! packet is given up.
//!
//! str0m NACKs a missing packet up to 5 times, one round trip (+5 ms) apart, within the last
//! 100 packets of the stream: [`GIVE_UP`] covers two or three rounds at the round trips seen on
//! real paths; a later repair still arrives and is forwarded, the keyframe costs one extra
//! request at most (requests are throttled per stream, see `producer.rs`).
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a packet may be missing before the stream needs a keyframe.
pub(crate) const GIVE_UP: Duration = Duration::from_millis(600);
/// Most packets watched at once; a longer gap is not repaired (str0m NACKs within its last
/// 100 packets) and needs a keyframe at once.
pub(crate) const MAX_MISSING: usize = 100;

/// The missing packets of one stream, by extended sequence number.
#[derive(Debug, Default, Clone)]
pub(crate) struct RepairWatch {
    highest: Option<u64>,
    /// Missing sequence numbers, ascending, each with when its gap was seen (so ascending too).
    missing: VecDeque<(u64, Instant)>,
}

impl RepairWatch {
    /// A packet with extended sequence number `seq` arrived (first sent or repaired). Returns
    /// whether the stream needs a keyframe now: a missing packet waited [`GIVE_UP`], or a gap
    /// longer than [`MAX_MISSING`] opened. Those packets are then no longer watched.
    pub fn arrived(&mut self, seq: u64, now: Instant) -> bool {
        match self.highest {
            None => self.highest = Some(seq),
            Some(high) if seq > high => {
                self.highest = Some(seq);
                let gap = usize::try_from(seq - high - 1).unwrap_or(usize::MAX);
                if gap.saturating_add(self.missing.len()) > MAX_MISSING {
                    self.missing.clear();
                    return true;
                }
                self.missing.extend((high + 1..seq).map(|s| (s, now)));
            }
            Some(_) => {
                // A repair (or a late packet): no longer missing.
                if let Ok(i) = self.missing.binary_search_by_key(&seq, |(s, _)| *s) {
                    self.missing.remove(i);
                }
            }
        }
        let given_up = self.missing.front().is_some_and(|(_, at)| now.saturating_duration_since(*at) >= GIVE_UP);
        if given_up {
            // The keyframe asked for replaces every packet missing so far.
            self.missing.clear();
        }
        given_up
    }

    /// A keyframe starts at `seq`: packets before it are no longer needed.
    pub fn keyframe(&mut self, seq: u64) {
        while self.missing.front().is_some_and(|(s, _)| *s < seq) {
            self.missing.pop_front();
        }
    }

    /// Whether a packet is missing (then keyframes are looked for).
    pub fn waiting(&self) -> bool {
        !self.missing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn a_repaired_packet_needs_no_keyframe() {
        let t0 = Instant::now();
        let mut w = RepairWatch::default();
        assert!(!w.arrived(10, t0));
        assert!(!w.arrived(12, ms(t0, 5)));
        assert!(w.waiting());
        assert!(!w.arrived(11, ms(t0, 120)), "the retransmission of 11");
        assert!(!w.waiting());
        for (i, seq) in (13..100).enumerate() {
            assert!(!w.arrived(seq, ms(t0, 130 + 10 * i as u64)));
        }
    }

    #[test]
    fn a_packet_missing_for_the_give_up_time_asks_for_one_keyframe() {
        let t0 = Instant::now();
        let mut w = RepairWatch::default();
        w.arrived(1, t0);
        assert!(!w.arrived(3, t0));
        assert!(!w.arrived(4, ms(t0, 599)));
        assert!(w.arrived(5, ms(t0, 600)), "2 was given up");
        assert!(!w.waiting());
        assert!(!w.arrived(2, ms(t0, 700)), "a very late repair is not missing any more");
        assert!(!w.arrived(6, ms(t0, 1400)), "nothing else missing: no second request");
    }

    #[test]
    fn a_keyframe_makes_earlier_missing_packets_unneeded() {
        let t0 = Instant::now();
        let mut w = RepairWatch::default();
        w.arrived(100, t0);
        w.arrived(105, t0); // 101..=104 missing
        w.keyframe(103);
        w.arrived(103, ms(t0, 40));
        w.arrived(104, ms(t0, 50));
        assert!(!w.waiting(), "101 and 102 are before the keyframe, 104 came");
        assert!(!w.arrived(106, ms(t0, 2000)));
    }

    #[test]
    fn a_gap_too_long_to_repair_asks_at_once() {
        let t0 = Instant::now();
        let mut w = RepairWatch::default();
        w.arrived(0, t0);
        assert!(!w.arrived(1 + MAX_MISSING as u64, t0), "a gap of exactly the most watched");
        assert!(w.arrived(3 + MAX_MISSING as u64, ms(t0, 1)), "one more overflows");
        assert!(!w.waiting());
        assert!(w.arrived(u64::MAX / 2, ms(t0, 2)), "any jump, however far");
        assert!(!w.waiting());
    }

    #[test]
    fn duplicates_and_old_packets_change_nothing() {
        let t0 = Instant::now();
        let mut w = RepairWatch::default();
        w.arrived(50, t0);
        w.arrived(50, t0);
        w.arrived(40, t0);
        assert!(!w.waiting());
        assert!(!w.arrived(51, ms(t0, 5000)));
    }
}
