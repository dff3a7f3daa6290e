//! Per-consumer sequence-number rewriting: the consumer's stream starts at its own base and
//! continues without gaps across pauses, so the receiver sees one unbroken stream.

/// Maps the producer's extended sequence numbers to the consumer's.
#[derive(Debug, Clone)]
pub struct SeqRewriter {
    /// out = in + offset (wrapping in u64 arithmetic on i128 to keep it simple and exact)
    offset: Option<i128>,
    /// First output number.
    next_out: u64,
    /// Inputs below this were sent before the last resync and are dropped.
    floor_in: u64,
    max_out: Option<u64>,
    resync: bool,
}

impl SeqRewriter {
    /// `base` must be below 65536 so the receiver's first sequence number is a plain u16.
    pub fn new(base: u16) -> SeqRewriter {
        SeqRewriter { offset: None, next_out: u64::from(base), floor_in: 0, max_out: None, resync: true }
    }

    /// Call when forwarding stops (pause): the next packet continues right after the last one.
    pub fn pause(&mut self) {
        self.resync = true;
    }

    /// The output number for input `seq`, or None if the packet belongs before a resync.
    pub fn rewrite(&mut self, seq: u64) -> Option<u64> {
        if self.resync {
            let next = self.max_out.map_or(self.next_out, |m| m + 1);
            self.offset = Some(i128::from(next) - i128::from(seq));
            self.floor_in = seq;
            self.resync = false;
        }
        if seq < self.floor_in {
            return None;
        }
        self.map(seq)
    }

    /// Forget an input without a gap in the output (e.g. a padding-only packet that is dropped).
    /// Only the newest packet can be skipped this way.
    pub fn skip(&mut self, seq: u64) {
        if let (Some(offset), Some(max)) = (self.offset, self.max_out) {
            let out = i128::from(seq) + offset;
            if out == i128::from(max) + 1 {
                self.offset = Some(offset - 1);
            }
        } else {
            self.floor_in = self.floor_in.max(seq + 1);
        }
    }

    fn map(&mut self, seq: u64) -> Option<u64> {
        let out = i128::from(seq) + self.offset?;
        if out < 0 {
            return None;
        }
        let out = out as u64;
        self.max_out = Some(self.max_out.map_or(out, |m| m.max(out)));
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_base_and_follows_input() {
        let mut r = SeqRewriter::new(1000);
        assert_eq!(r.rewrite(70_000), Some(1000));
        assert_eq!(r.rewrite(70_001), Some(1001));
        assert_eq!(r.rewrite(70_003), Some(1003), "a gap in the input stays a gap (lost packet)");
        assert_eq!(r.rewrite(70_002), Some(1002), "reordered packet keeps its place");
    }

    #[test]
    fn no_gap_across_a_pause() {
        let mut r = SeqRewriter::new(10);
        for i in 0..5 {
            assert_eq!(r.rewrite(500 + i), Some(10 + i));
        }
        r.pause();
        // 500..=504 sent, 505..=599 not forwarded while paused, resume at 600.
        assert_eq!(r.rewrite(600), Some(15));
        assert_eq!(r.rewrite(601), Some(16));
        assert_eq!(r.rewrite(550), None, "a packet from the paused span is dropped");
        assert_eq!(r.rewrite(503), None, "so is one from before the pause (the consumer's RTX cache serves NACKs)");
    }

    #[test]
    fn skipping_the_newest_packet_leaves_no_gap() {
        let mut r = SeqRewriter::new(0);
        assert_eq!(r.rewrite(100), Some(0));
        r.skip(101);
        assert_eq!(r.rewrite(102), Some(1));
        assert_eq!(r.rewrite(103), Some(2));
    }

    #[test]
    fn packets_before_the_first_are_dropped() {
        let mut r = SeqRewriter::new(5);
        assert_eq!(r.rewrite(1000), Some(5));
        assert_eq!(r.rewrite(990), None);
    }
}
