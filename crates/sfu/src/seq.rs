//! Per-consumer sequence-number rewriting: the consumer's stream starts at its own base and
//! continues without gaps across pauses, so the receiver sees one unbroken stream.

/// Skipped inputs remembered since the last resync; older ones are folded into the offset (and
/// inputs at or below them refused).
const MAX_SKIPPED: usize = 64;

/// Maps the producer's extended sequence numbers to the consumer's. Distinct inputs get
/// distinct outputs between two resyncs, whatever their order.
#[derive(Debug, Clone)]
pub struct SeqRewriter {
    /// out = in + offset - (skipped inputs below in), in i128 to keep it simple and exact.
    offset: Option<i128>,
    /// First output number.
    next_out: u64,
    /// Inputs below this were sent before the last resync (or folded skips) and are dropped.
    floor_in: u64,
    max_out: Option<u64>,
    resync: bool,
    /// Inputs skipped since the last resync, ascending: each moves the outputs of the inputs
    /// above it down by one, and only those (a late packet from before a skip keeps its place).
    skipped: Vec<u64>,
}

impl SeqRewriter {
    /// `base` must be below 65536 so the receiver's first sequence number is a plain u16.
    pub fn new(base: u16) -> SeqRewriter {
        SeqRewriter { offset: None, next_out: u64::from(base), floor_in: 0, max_out: None, resync: true, skipped: Vec::new() }
    }

    /// Call when forwarding stops (pause): the next packet continues right after the last one.
    pub fn pause(&mut self) {
        self.resync = true;
    }

    /// The output number for input `seq`, or None if the packet belongs before a resync (or is
    /// a skipped one again).
    pub fn rewrite(&mut self, seq: u64) -> Option<u64> {
        if self.resync {
            let next = match self.max_out {
                Some(m) => m.checked_add(1)?, // numbers used up: nothing more is sent
                None => self.next_out,
            };
            self.offset = Some(i128::from(next) - i128::from(seq));
            self.floor_in = seq;
            self.skipped.clear();
            self.resync = false;
        }
        if seq < self.floor_in || self.skipped.binary_search(&seq).is_ok() {
            return None;
        }
        self.map(seq)
    }

    /// Forget an input without a gap in the output (e.g. a padding-only packet that is dropped).
    /// Only the newest packet can be skipped this way.
    pub fn skip(&mut self, seq: u64) {
        let (Some(offset), Some(max)) = (self.offset, self.max_out) else {
            self.floor_in = self.floor_in.max(seq.saturating_add(1));
            return;
        };
        let at = self.skipped.partition_point(|s| *s < seq);
        if self.skipped.get(at) == Some(&seq) || self.output(seq, offset) != i128::from(max) + 1 {
            return;
        }
        self.skipped.insert(at, seq);
        if self.skipped.len() > MAX_SKIPPED {
            let oldest = self.skipped.remove(0);
            self.offset = Some(offset - 1);
            self.floor_in = self.floor_in.max(oldest.saturating_add(1));
        }
    }

    fn output(&self, seq: u64, offset: i128) -> i128 {
        let below = self.skipped.partition_point(|s| *s < seq);
        i128::from(seq) + offset - below as i128
    }

    fn map(&mut self, seq: u64) -> Option<u64> {
        let out = u64::try_from(self.output(seq, self.offset?)).ok()?;
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
    fn a_late_packet_from_before_a_skip_keeps_its_own_number() {
        // fuzz/regressions/headers/seq-rewriter-skip-collision: 70001 came back as 4096, the
        // number 70000 had, once 70002 was skipped.
        let mut r = SeqRewriter::new(4096);
        assert_eq!(r.rewrite(70_000), Some(4096));
        assert_eq!(r.rewrite(70_001), Some(4097));
        r.skip(70_002);
        assert_eq!(r.rewrite(131_072), Some(131_072 - 70_000 + 4096 - 1));
        assert_eq!(r.rewrite(70_001), Some(4097), "late (or again): the same number as before");
        assert_eq!(r.rewrite(70_002), None, "the skipped packet again is not sent");
        assert_eq!(r.rewrite(70_003), Some(4098));
        let mut r = SeqRewriter::new(0);
        assert_eq!(r.rewrite(10), Some(0));
        r.skip(11);
        assert_eq!(r.rewrite(13), Some(2));
        assert_eq!(r.rewrite(12), Some(1), "reordered around a skip");
    }

    #[test]
    fn skips_past_the_limit_fold_and_refuse_what_is_older() {
        let mut r = SeqRewriter::new(0);
        assert_eq!(r.rewrite(0), Some(0));
        for i in 1..=(MAX_SKIPPED as u64 + 1) {
            r.skip(i);
        }
        let next = MAX_SKIPPED as u64 + 2;
        assert_eq!(r.rewrite(next), Some(1), "every skip left no gap");
        assert_eq!(r.rewrite(1), None, "older than the folded skip: refused, not renumbered");
    }

    #[test]
    fn numbers_near_the_end_of_u64_do_not_overflow() {
        let mut r = SeqRewriter::new(5);
        r.skip(u64::MAX);
        assert_eq!(r.rewrite(u64::MAX), Some(5), "the first packet starts the stream");
        let mut r = SeqRewriter::new(5);
        assert_eq!(r.rewrite(0), Some(5));
        assert_eq!(r.rewrite(u64::MAX), None, "past the last output number");
        assert_eq!(r.rewrite(u64::MAX - 5), Some(u64::MAX));
        r.skip(u64::MAX - 4);
        r.pause();
        assert_eq!(r.rewrite(7), None, "numbers used up");
    }

    #[test]
    fn packets_before_the_first_are_dropped() {
        let mut r = SeqRewriter::new(5);
        assert_eq!(r.rewrite(1000), Some(5));
        assert_eq!(r.rewrite(990), None);
    }
}
