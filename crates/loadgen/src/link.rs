//! A capped downlink for one simulated subscriber: datagrams arriving from the server go through
//! a bottleneck of `kbps` with a queue of at most `max_delay` (a tail-drop FIFO, as `tc`'s token
//! bucket with a latency limit), and reach the subscriber's str0m when they leave it. The
//! server's downlink estimation sees the queueing delay and the losses in its transport-cc
//! feedback, as it would behind a slow link.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Bytes a datagram takes on the link beyond its UDP payload (UDP and IPv4 headers).
const HEADERS: u64 = 28;

#[derive(Debug)]
pub struct Link {
    bits_per_second: u64,
    max_delay: Duration,
    /// When the link has sent everything queued so far.
    free_at: Option<Instant>,
    queue: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    pub dropped: u64,
}

impl Link {
    pub fn new(kbps: u32, max_delay: Duration) -> Link {
        Link { bits_per_second: u64::from(kbps.max(1)) * 1000, max_delay, free_at: None, queue: VecDeque::new(), dropped: 0 }
    }

    /// A datagram arrives at the bottleneck at `now`: queued, or dropped when the queue holds
    /// more than `max_delay` of traffic.
    pub fn offer(&mut self, now: Instant, src: SocketAddr, data: &[u8]) {
        let start = self.free_at.map_or(now, |f| f.max(now));
        if start.saturating_duration_since(now) > self.max_delay {
            self.dropped += 1;
            return;
        }
        let bits = (data.len() as u64 + HEADERS) * 8;
        let leaves = start + Duration::from_nanos(bits * 1_000_000_000 / self.bits_per_second);
        self.free_at = Some(leaves);
        self.queue.push_back((leaves, src, data.to_vec()));
    }

    /// When the next datagram leaves the link, if one is queued.
    pub fn next_release(&self) -> Option<Instant> {
        self.queue.front().map(|(at, _, _)| *at)
    }

    /// The next datagram that has left the link by `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        if self.next_release()? > now {
            return None;
        }
        self.queue.pop_front().map(|(_, src, data)| (src, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_paces_datagrams_and_drops_beyond_its_queue() {
        let src: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // 100 kbit/s: a 97-byte datagram (125 bytes with headers) takes 10 ms.
        let mut link = Link::new(100, Duration::from_millis(25));
        let t0 = Instant::now();
        for _ in 0..5 {
            link.offer(t0, src, &[0u8; 97]);
        }
        assert_eq!(link.dropped, 2, "the fourth and fifth would wait 30 ms in a 25-ms queue");
        assert_eq!(link.next_release(), Some(t0 + Duration::from_millis(10)));
        assert!(link.pop_due(t0 + Duration::from_millis(9)).is_none());
        assert!(link.pop_due(t0 + Duration::from_millis(20)).is_some());
        assert!(link.pop_due(t0 + Duration::from_millis(20)).is_some());
        assert!(link.pop_due(t0 + Duration::from_millis(20)).is_none());
        assert_eq!(link.next_release(), Some(t0 + Duration::from_millis(30)));
        // Idle since: a datagram much later goes through after its own transmission time.
        let later = t0 + Duration::from_secs(1);
        link.pop_due(later);
        link.pop_due(later);
        link.offer(later, src, &[0u8; 97]);
        assert_eq!(link.next_release(), Some(later + Duration::from_millis(10)));
    }
}
