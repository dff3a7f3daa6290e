//! The bitrate of a stream over its last second (mediasoup's `RateCalculator` with a one-second
//! window), from two half-second buckets: cheap enough to run per packet.
use std::time::{Duration, Instant};

const BUCKET: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Default)]
pub(crate) struct RateMeter {
    /// When the current bucket started.
    start: Option<Instant>,
    current: u64,
    previous: u64,
}

impl RateMeter {
    /// `bytes` arrived at `now`.
    pub fn add(&mut self, bytes: usize, now: Instant) {
        self.roll(now);
        self.current = self.current.saturating_add(bytes as u64);
    }

    /// Bit/s over the last full bucket and the current one (0 when nothing arrived for a second).
    pub fn bps(&self, now: Instant) -> u64 {
        let Some(start) = self.start else { return 0 };
        let age = now.saturating_duration_since(start);
        let (bytes, span) = match age {
            a if a < BUCKET => (self.previous + self.current, BUCKET + a),
            a if a < BUCKET * 2 => (self.current, a),
            _ => return 0,
        };
        let micros = span.as_micros().max(1) as u64;
        bytes.saturating_mul(8_000_000) / micros
    }

    fn roll(&mut self, now: Instant) {
        let Some(start) = self.start else {
            self.start = Some(now);
            return;
        };
        let age = now.saturating_duration_since(start);
        if age < BUCKET {
            return;
        }
        self.previous = if age < BUCKET * 2 { self.current } else { 0 };
        self.current = 0;
        self.start = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_reads_its_bitrate() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        assert_eq!(m.bps(t0), 0);
        // 1,000 bytes every 10 ms: 800 kbit/s.
        for i in 0..300 {
            m.add(1000, t0 + Duration::from_millis(10 * i));
        }
        let bps = m.bps(t0 + Duration::from_millis(2990));
        assert!((760_000..=840_000).contains(&bps), "{bps}");
        assert_eq!(m.bps(t0 + Duration::from_secs(5)), 0, "silent for two seconds");
    }

    #[test]
    fn a_pause_restarts_the_window() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        m.add(100_000, t0);
        m.add(10, t0 + Duration::from_secs(10));
        assert!(m.bps(t0 + Duration::from_secs(10)) < 1_000, "the old burst is forgotten");
    }
}
