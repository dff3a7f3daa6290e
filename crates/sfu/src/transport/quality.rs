//! The latest statistics str0m gave for one WebRTC transport (a round per second, see
//! [`STATS_INTERVAL`]), kept until asked for by `getStats` or metrics.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::media::Mid;
use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};

use crate::stats::TransportQuality;

/// How often str0m reports a transport's statistics.
pub(crate) const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Byte counters at one report, for bitrates.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    bytes: u64,
}

/// Bits per second between two samples of a growing byte counter.
#[derive(Debug, Default)]
pub(crate) struct Rate {
    last: Option<Sample>,
    bps: u64,
}

impl Rate {
    pub fn update(&mut self, at: Instant, bytes: u64) {
        if let Some(prev) = self.last {
            let secs = at.saturating_duration_since(prev.at).as_secs_f64();
            if secs > 0.0 {
                self.bps = (bytes.saturating_sub(prev.bytes) as f64 * 8.0 / secs) as u64;
            }
        }
        self.last = Some(Sample { at, bytes });
    }

    pub fn bps(&self) -> u64 {
        self.bps
    }
}

/// The fraction of a stream's original packets (RTX apart) lost on the way in, per report
/// interval, before NACK recovery: RFC 3550 appendix A.3's `fraction lost`, counted by the engine
/// itself (str0m's receiver reports count repaired packets as received).
#[derive(Debug, Default)]
pub(crate) struct LossMeter {
    /// Highest extended sequence number seen, and the first one.
    max: Option<u64>,
    base: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// (expected, lost) in the last interval.
    last: Option<(u64, u64)>,
}

impl LossMeter {
    /// A packet with sequence number `seq` arrived (authenticated).
    pub fn record(&mut self, seq: u16) {
        let ext = match self.max {
            None => {
                self.base = u64::from(seq);
                u64::from(seq)
            }
            Some(max) => {
                // Extend against the highest seen (RFC 3550 A.1): the closest rollover.
                let delta = seq.wrapping_sub(max as u16) as i16;
                max.saturating_add_signed(i64::from(delta))
            }
        };
        if self.max.is_none_or(|m| ext > m) {
            self.max = Some(ext);
        }
        self.received += 1;
    }

    /// Closes a report interval: its fraction lost (none without packets expected).
    pub fn interval(&mut self) {
        let Some(max) = self.max else { return };
        let expected = max.saturating_sub(self.base) + 1;
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        self.last = (expected_interval > 0).then(|| (expected_interval, expected_interval.saturating_sub(received_interval)));
    }

    pub fn fraction(&self) -> Option<f32> {
        self.last.map(|(expected, lost)| lost as f32 / expected as f32)
    }

    /// (expected, lost) in the last interval.
    pub fn last_interval(&self) -> Option<(u64, u64)> {
        self.last
    }
}

/// One stream's report with the bitrate derived from it.
#[derive(Debug)]
pub(crate) struct Stream<S> {
    pub stats: S,
    pub rate: Rate,
}

#[derive(Debug, Default)]
pub(crate) struct Quality {
    pub peer: Option<PeerStats>,
    rx: Rate,
    tx: Rate,
    /// By mid (no simulcast yet: one stream per mid).
    pub ingress: HashMap<Mid, Stream<MediaIngressStats>>,
    pub egress: HashMap<Mid, Stream<MediaEgressStats>>,
    /// Last fraction lost each egress stream's receiver reported (str0m gives `None` for an
    /// interval without a report).
    egress_loss: HashMap<Mid, f32>,
    /// Upstream loss of each incoming stream (every simulcast stream), by its media SSRC.
    upstream: Vec<(u32, Mid, LossMeter)>,
}

impl Quality {
    /// Meters the upstream loss of `mid`'s media stream `ssrc` (one of its simulcast streams).
    pub fn meter(&mut self, mid: Mid, ssrc: u32) {
        self.upstream.retain(|(s, _, _)| *s != ssrc);
        self.upstream.push((ssrc, mid, LossMeter::default()));
    }

    /// An authenticated RTP packet of `ssrc` (media or RTX) arrived.
    pub fn arrived(&mut self, ssrc: u32, seq: u16) {
        if let Some((_, _, m)) = self.upstream.iter_mut().find(|(s, _, _)| *s == ssrc) {
            m.record(seq);
        }
    }

    /// The upstream fraction lost of `mid`'s streams (all simulcast streams together) in the
    /// last interval.
    pub fn upstream_loss(&self, mid: &Mid) -> Option<f32> {
        self.upstream_loss_of(|m| m == mid)
    }

    /// The fraction lost of the streams whose mid passes `which`, together (packets lost over
    /// packets expected: a low-rate stream weighs what it carries).
    fn upstream_loss_of(&self, which: impl Fn(&Mid) -> bool) -> Option<f32> {
        let (expected, lost) = self
            .upstream
            .iter()
            .filter(|(_, m, _)| which(m))
            .filter_map(|(_, _, l)| l.last_interval())
            .fold((0, 0), |(e, l), (e2, l2)| (e + e2, l + l2));
        (expected > 0).then(|| lost as f32 / expected as f32)
    }

    /// A report round (once per [`STATS_INTERVAL`]) closes the loss intervals too.
    pub fn peer_stats(&mut self, s: PeerStats) {
        for (_, _, m) in &mut self.upstream {
            m.interval();
        }
        self.rx.update(s.timestamp, s.bytes_rx);
        self.tx.update(s.timestamp, s.bytes_tx);
        self.peer = Some(s);
    }

    pub fn ingress(&mut self, s: MediaIngressStats) {
        let (at, bytes) = (s.timestamp, s.bytes);
        let entry = self.ingress.entry(s.mid).or_insert_with(|| Stream { stats: s.clone(), rate: Rate::default() });
        entry.rate.update(at, bytes);
        entry.stats = s;
    }

    pub fn egress(&mut self, s: MediaEgressStats) {
        if let Some(loss) = s.loss {
            self.egress_loss.insert(s.mid, loss);
        }
        let (at, bytes) = (s.timestamp, s.bytes);
        let entry = self.egress.entry(s.mid).or_insert_with(|| Stream { stats: s.clone(), rate: Rate::default() });
        entry.rate.update(at, bytes);
        entry.stats = s;
    }

    /// The last fraction lost the peer reported for the stream of `mid`.
    pub fn egress_loss(&self, mid: &Mid) -> Option<f32> {
        self.egress_loss.get(mid).copied()
    }

    /// A stream went away (its producer or consumer closed).
    pub fn forget(&mut self, mid: &Mid) {
        self.upstream.retain(|(_, m, _)| m != mid);
        self.ingress.remove(mid);
        self.egress.remove(mid);
        self.egress_loss.remove(mid);
    }

    pub fn rates(&self) -> (u64, u64) {
        (self.rx.bps(), self.tx.bps())
    }

    /// Milliseconds: the peer's reports, else str0m's own figure.
    pub fn rtt_ms(&self) -> Option<f64> {
        let from_reports = self.egress.values().filter_map(|e| e.stats.rtt).max();
        from_reports.or(self.peer.as_ref().and_then(|p| p.rtt)).map(|d| d.as_secs_f64() * 1000.0)
    }

    /// The metrics line; `clock_rate` gives each egress stream's RTP clock (for jitter).
    pub fn summary(&self, clock_rate: impl Fn(&Mid) -> Option<u32>) -> TransportQuality {
        let worst = |it: &mut dyn Iterator<Item = f32>| it.fold(None, |m: Option<f32>, x| Some(m.map_or(x, |m| m.max(x))));
        let jitter_down = self
            .egress
            .iter()
            .filter_map(|(mid, e)| Some(f64::from(e.stats.remote.as_ref()?.jitter) / f64::from(clock_rate(mid)?)))
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        let (bitrate_up, bitrate_down) = self.rates();
        TransportQuality {
            id: None,
            bitrate_up,
            bitrate_down,
            rtt: self.rtt_ms().map(|ms| ms / 1000.0),
            loss_up: self.upstream_loss_of(|_| true),
            loss_down: worst(&mut self.egress_loss.values().copied()),
            jitter_down,
            nacks_up: self.ingress.values().map(|i| i.stats.nacks).sum(),
            nacks_down: self.egress.values().map(|e| e.stats.nacks).sum(),
            plis_up: self.ingress.values().map(|i| i.stats.plis).sum(),
            plis_down: self.egress.values().map(|e| e.stats.plis).sum(),
            firs_up: self.ingress.values().map(|i| i.stats.firs).sum(),
            firs_down: self.egress.values().map(|e| e.stats.firs).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_bits_per_second_between_two_samples() {
        let t0 = Instant::now();
        let mut r = Rate::default();
        r.update(t0, 1000);
        assert_eq!(r.bps(), 0, "one sample is no rate");
        r.update(t0 + Duration::from_millis(500), 2000);
        assert_eq!(r.bps(), 16_000);
        r.update(t0 + Duration::from_millis(500), 9000);
        assert_eq!(r.bps(), 16_000, "no time passed: kept");
        r.update(t0 + Duration::from_millis(1500), 500);
        assert_eq!(r.bps(), 0, "a counter that went back (a rebuilt Rtc) is no negative rate");
    }

    #[test]
    fn the_upstream_loss_of_a_simulcast_producer_counts_every_stream() {
        let mut q = Quality::default();
        let mid = Mid::from("0");
        q.meter(mid, 1000); // stream 0: 50 packets, none lost
        q.meter(mid, 2000); // stream 1 (a rid stream learned later): 50 expected, 10 lost
        q.meter(Mid::from("1"), 3000);
        for i in 0..50u16 {
            q.arrived(1000, i);
            if i % 5 != 1 {
                q.arrived(2000, 100 + i);
            }
        }
        for (_, _, m) in &mut q.upstream {
            m.interval();
        }
        assert_eq!(q.upstream_loss(&mid), Some(0.1), "10 of 100");
        assert_eq!(q.upstream_loss(&Mid::from("1")), None, "nothing expected there");
        // The peer's upstream: every stream's packets together, not the worst stream (a stream
        // of a few packets a second would make a noisy maximum).
        for i in 0..300u16 {
            q.arrived(3000, i);
        }
        for (_, _, m) in &mut q.upstream {
            m.interval();
        }
        assert_eq!(q.summary(|_| None).loss_up, Some(0.0), "nothing arrived on 1000 and 2000 since: 300 expected, none lost");
    }

    #[test]
    fn upstream_loss_is_per_interval_and_survives_rollover_and_reordering() {
        let mut m = LossMeter::default();
        m.interval();
        assert_eq!(m.fraction(), None, "nothing expected yet");
        // 100 packets from 65500 across the rollover, every tenth missing, two out of order.
        let mut seqs: Vec<u16> = (0..100u16).filter(|i| i % 10 != 5).map(|i| 65500u16.wrapping_add(i)).collect();
        seqs.swap(3, 4);
        for s in seqs {
            m.record(s);
        }
        m.interval();
        assert_eq!(m.fraction(), Some(0.1));
        for i in 100..200u16 {
            m.record(65500u16.wrapping_add(i));
        }
        m.interval();
        assert_eq!(m.fraction(), Some(0.0), "the next interval lost nothing");
        m.record(65500u16.wrapping_add(150)); // a late duplicate: nothing new expected
        m.interval();
        assert_eq!(m.fraction(), None);
    }
}
