//! Join storm: N subscribers start joining the rooms already set up (round robin) within a short
//! spread (1 s by default), each through the whole client sequence (login, HTTP join, WebSocket,
//! transport, consume every producer, resume), all at once on the server. Figures: how long the
//! signaling took and join-to-first-packet (from the start of the login to the first media
//! packet decrypted), p50 / p99 / max, and the server's CPU during the storm.
use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::media::{Control, PeerReport};
use crate::plan::{Plan, RoomRef};
use crate::report::{percentile, split_line};
use crate::{atome, janus};

/// How long the storm's subscribers may take, after the last of them is signaled, to receive a
/// first packet.
const MEDIA_DEADLINE: Duration = Duration::from_secs(15);

/// What one storm subscriber went through.
#[derive(Debug, Default, Clone)]
pub struct StormPeer {
    /// From the start of its login to its last `resumeConsumer` answer.
    pub signaled: Option<Duration>,
    /// From the start of its login to its first media packet.
    pub first_packet: Option<Duration>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StormFigures {
    pub target: String,
    pub peers: usize,
    pub spread_ms: u64,
    pub rooms: usize,
    pub publishers_per_room: usize,
    /// Subscribers already in each room before the storm.
    pub subscribers_per_room_before: usize,
    pub joined: usize,
    pub failed: usize,
    pub without_media: usize,
    pub signaling_p50_ms: f64,
    pub signaling_p99_ms: f64,
    pub join_to_first_packet_p50_ms: f64,
    pub join_to_first_packet_p99_ms: f64,
    pub join_to_first_packet_max_ms: f64,
    /// From the first join to the last first packet (or the deadline).
    pub seconds: f64,
    pub server_cpu_seconds: f64,
    pub server_cpu_percent_per_core: f64,
    pub server_cores: usize,
    /// Where the server's CPU went during the storm: seconds per `process/thread` name.
    pub server_cpu_split: Vec<(String, f64)>,
    pub client_cpu_percent: f64,
    pub first_error: Option<String>,
}

fn millis(d: &[Duration]) -> Vec<u32> {
    let mut v: Vec<u32> = d.iter().map(|d| d.as_micros().min(u128::from(u32::MAX)) as u32).collect();
    v.sort_unstable();
    v
}

/// Readings of the server and of this tool over the storm.
pub struct StormReadings {
    pub seconds: f64,
    pub server_cpu_seconds: f64,
    pub client_cpu_seconds: f64,
    pub cores: usize,
    pub cpu_split: Vec<(String, f64)>,
}

pub fn aggregate(target: &str, plan: &Plan, spread: Duration, peers: &[StormPeer], r: &StormReadings) -> StormFigures {
    let signaled: Vec<Duration> = peers.iter().filter_map(|p| p.signaled).collect();
    let first: Vec<Duration> = peers.iter().filter_map(|p| p.first_packet).collect();
    let (signaled, first) = (millis(&signaled), millis(&first));
    let failed = peers.iter().filter(|p| p.error.is_some()).count();
    StormFigures {
        target: target.to_string(),
        peers: peers.len(),
        spread_ms: spread.as_millis() as u64,
        rooms: plan.rooms,
        publishers_per_room: plan.publishers,
        subscribers_per_room_before: plan.subscribers,
        joined: peers.len() - failed,
        failed,
        without_media: peers.iter().filter(|p| p.error.is_none() && p.first_packet.is_none()).count(),
        signaling_p50_ms: percentile(&signaled, 0.50) / 1000.0,
        signaling_p99_ms: percentile(&signaled, 0.99) / 1000.0,
        join_to_first_packet_p50_ms: percentile(&first, 0.50) / 1000.0,
        join_to_first_packet_p99_ms: percentile(&first, 0.99) / 1000.0,
        join_to_first_packet_max_ms: percentile(&first, 1.0) / 1000.0,
        seconds: r.seconds,
        server_cpu_seconds: r.server_cpu_seconds,
        server_cpu_percent_per_core: 100.0 * r.server_cpu_seconds / r.seconds.max(1e-9) / r.cores.max(1) as f64,
        server_cores: r.cores,
        server_cpu_split: r.cpu_split.clone(),
        client_cpu_percent: 100.0 * r.client_cpu_seconds / r.seconds.max(1e-9),
        first_error: peers.iter().find_map(|p| p.error.clone()),
    }
}

impl StormFigures {
    pub fn print(&self) {
        println!(
            "== {} join storm: {} subscribers within {} ms into {} rooms of {} publishers (+ {} subscribers before)",
            self.target, self.peers, self.spread_ms, self.rooms, self.publishers_per_room, self.subscribers_per_room_before
        );
        println!(
            "  join->1st packet  p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} joined, {} failed, {} without media)",
            self.join_to_first_packet_p50_ms,
            self.join_to_first_packet_p99_ms,
            self.join_to_first_packet_max_ms,
            self.joined,
            self.failed,
            self.without_media
        );
        println!(
            "  signaling         p50 {:.0} ms, p99 {:.0} ms (login -> every consumer resumed)",
            self.signaling_p50_ms, self.signaling_p99_ms
        );
        println!(
            "  server CPU        {:>6.1} % of {} core(s) over the {:.1} s of the storm; load tool {:.1} % of one core",
            self.server_cpu_percent_per_core, self.server_cores, self.seconds, self.client_cpu_percent
        );
        if !self.server_cpu_split.is_empty() {
            println!("  server CPU split  {}", split_line(&self.server_cpu_split, self.server_cpu_seconds, 5));
        }
        if let Some(e) = &self.first_error {
            println!("  first error       {e}");
        }
    }

    /// A storm in which a subscriber could not join or got no media is a failed run.
    pub fn problem(&self) -> Option<String> {
        (self.failed > 0 || self.without_media > 0).then(|| {
            format!(
                "{} join storm: {} of {} subscribers failed to join, {} got no media{}",
                self.target,
                self.failed,
                self.peers,
                self.without_media,
                self.first_error.as_ref().map(|e| format!(" (first error: {e})")).unwrap_or_default()
            )
        })
    }
}

/// The delay of storm subscriber `k` of `n` from the start: evenly over `spread`.
pub fn start_offset(k: usize, n: usize, spread: Duration) -> Duration {
    if n <= 1 {
        return Duration::ZERO;
    }
    spread.mul_f64(k as f64 / n as f64)
}

/// One subscriber joins `room` the way its server expects.
async fn join(
    base: &str,
    room: &RoomRef,
    phone: &str,
    name: &str,
    joined_at: Instant,
    ctl: &Arc<Control>,
) -> Result<(JoinHandle<PeerReport>, Box<dyn Any + Send>), String> {
    match room {
        RoomRef::Signaling(id) => atome::subscriber(base, id, phone, name, joined_at, None, ctl).await,
        RoomRef::Janus { room, feeds } => janus::subscriber(base, janus::host_ip()?, *room, feeds, joined_at, ctl).await,
    }
}

/// Runs the storm: `n` subscribers over `rooms` within `spread`, then waits for their first
/// packets. Returns each peer's record and how long the storm lasted.
pub async fn run(base: &str, plan: &Plan, rooms: &[RoomRef], n: usize, spread: Duration) -> (Vec<StormPeer>, Duration) {
    let ctl = Arc::new(Control::default());
    let t0 = Instant::now();
    let mut joins = Vec::new();
    for k in 0..n {
        let (base, ctl) = (base.to_string(), ctl.clone());
        let r = k % rooms.len().max(1);
        let room = rooms.get(r).cloned();
        // Phone numbers after the room's publishers and subscribers.
        let phone = Plan::phone(r, plan.publishers + plan.subscribers + k / rooms.len().max(1));
        joins.push(tokio::spawn(async move {
            tokio::time::sleep_until((t0 + start_offset(k, n, spread)).into()).await;
            let joined_at = Instant::now();
            let Some(room) = room else { return (Err("no room to join".to_string()), joined_at, Duration::ZERO) };
            let r = join(&base, &room, &phone, &format!("storm{k}"), joined_at, &ctl).await;
            (r, joined_at, joined_at.elapsed())
        }));
    }
    let mut peers = vec![StormPeer::default(); n];
    let mut running = Vec::new();
    for (k, j) in joins.into_iter().enumerate() {
        match j.await {
            Ok((Ok((task, keep)), _, took)) => {
                peers[k].signaled = Some(took);
                running.push((k, task, keep));
            }
            Ok((Err(e), _, _)) => peers[k].error = Some(e),
            Err(e) => peers[k].error = Some(e.to_string()),
        }
    }
    let deadline = Instant::now() + MEDIA_DEADLINE;
    while ctl.with_media.load(Ordering::Relaxed) < running.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = t0.elapsed();
    ctl.stop.store(true, Ordering::Relaxed);
    for (k, task, keep) in running {
        peers[k].first_packet = task.await.unwrap_or_default().first_packet;
        drop(keep);
    }
    (peers, took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_are_spread_evenly_within_the_window() {
        let spread = Duration::from_secs(1);
        assert_eq!(start_offset(0, 100, spread), Duration::ZERO);
        assert_eq!(start_offset(50, 100, spread), Duration::from_millis(500));
        assert_eq!(start_offset(99, 100, spread), Duration::from_millis(990));
        assert_eq!(start_offset(0, 1, spread), Duration::ZERO);
    }

    #[test]
    fn storm_figures_count_failures_and_silent_peers_apart() {
        let ms = Duration::from_millis;
        let mut peers: Vec<StormPeer> =
            (1..=98).map(|i| StormPeer { signaled: Some(ms(10 + i)), first_packet: Some(ms(20 + i)), error: None }).collect();
        peers.push(StormPeer { signaled: Some(ms(50)), first_packet: None, error: None });
        peers.push(StormPeer { signaled: None, first_packet: None, error: Some("joinRoom: refused".into()) });
        let plan = Plan::new(10, 2, 0, 1000, 40, 1100);
        let r = StormReadings { seconds: 2.0, server_cpu_seconds: 0.5, client_cpu_seconds: 1.0, cores: 1, cpu_split: Vec::new() };
        let f = aggregate("atome", &plan, Duration::from_secs(1), &peers, &r);
        assert_eq!((f.peers, f.joined, f.failed, f.without_media), (100, 99, 1, 1));
        assert_eq!(f.join_to_first_packet_p50_ms, 70.0); // 98 values 21..=118 ms: index 48
        assert_eq!(f.join_to_first_packet_max_ms, 118.0);
        assert_eq!(f.join_to_first_packet_p99_ms, 117.0);
        assert_eq!(f.server_cpu_percent_per_core, 25.0);
        assert_eq!(f.first_error.as_deref(), Some("joinRoom: refused"));
        let problem = f.problem().unwrap();
        assert!(problem.contains("1 of 100 subscribers failed") && problem.contains("1 got no media"), "{problem}");
        let clean: Vec<StormPeer> = peers[..98].to_vec();
        assert!(aggregate("atome", &plan, Duration::from_secs(1), &clean, &r).problem().is_none());
    }
}
