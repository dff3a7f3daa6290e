//! Figures of one run, aggregated from every peer's report and the server's /proc readings.
use serde::Serialize;

use crate::media::PeerReport;
use crate::plan::Plan;

#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub target: String,
    pub rooms: usize,
    pub publishers_per_room: usize,
    pub subscribers_per_room: usize,
    pub consumers: usize,
    pub seconds: f64,
    /// Packets the publishers sent times the subscribers of their room, per second.
    pub expected_pps: f64,
    /// Packets the subscribers received (after decryption), per second.
    pub forwarded_pps: f64,
    pub server_cores: usize,
    pub server_cpu_seconds: f64,
    pub server_cpu_percent_per_core: f64,
    pub server_cpu_seconds_per_million_packets: f64,
    /// What one fully busy core would forward at this cost.
    pub packets_per_core_second: f64,
    pub loss_percent: f64,
    pub silent_streams: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub join_to_first_packet_p50_ms: f64,
    pub join_to_first_packet_p99_ms: f64,
    pub subscribers_without_media: usize,
    pub server_rss_idle_bytes: u64,
    /// With two rooms or more: resident memory once the first room has run for the warm-up.
    pub server_rss_first_room_bytes: Option<u64>,
    pub server_rss_load_bytes: u64,
    /// Growth per consumer beyond the first room (from idle with a single room).
    pub server_rss_per_consumer_bytes: f64,
    /// Growth per consumer from the idle server, one-time costs included.
    pub server_rss_per_consumer_from_idle_bytes: f64,
    pub server_threads: usize,
    /// This tool's own CPU use (all its peers on its cores): near 100% means the figures are
    /// bounded by the clients, not by the server.
    pub client_cpu_percent: f64,
}

/// Server-side readings taken around the window.
pub struct ServerReadings {
    pub cores: usize,
    pub cpu_seconds: f64,
    pub client_cpu_seconds: f64,
    pub rss_idle: u64,
    pub rss_first_room: Option<u64>,
    pub rss_load: u64,
    pub threads: usize,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)])
}

pub fn aggregate(
    target: &str,
    plan: &Plan,
    seconds: f64,
    publishers: &[PeerReport],
    subscribers: &[PeerReport],
    server: &ServerReadings,
) -> Figures {
    let sent: u64 = publishers.iter().map(|p| p.sent).sum();
    let received: u64 = subscribers.iter().map(|s| s.received).sum();
    let (mut distinct, mut expected, mut streams) = (0u64, 0u64, 0usize);
    for s in subscribers {
        for t in s.streams.values() {
            distinct += t.distinct;
            expected += t.expected();
            streams += 1;
        }
    }
    let mut latencies: Vec<u32> = subscribers.iter().flat_map(|s| s.latencies_us.iter().copied()).collect();
    latencies.sort_unstable();
    let mut joins: Vec<u32> =
        subscribers.iter().filter_map(|s| s.first_packet).map(|d| d.as_micros().min(u128::from(u32::MAX)) as u32).collect();
    joins.sort_unstable();
    let consumers = plan.consumers();
    let from_idle = server.rss_load.saturating_sub(server.rss_idle) as f64 / consumers.max(1) as f64;
    let per_million = if received > 0 { server.cpu_seconds / (received as f64 / 1e6) } else { f64::NAN };
    Figures {
        target: target.to_string(),
        rooms: plan.rooms,
        publishers_per_room: plan.publishers,
        subscribers_per_room: plan.subscribers,
        consumers,
        seconds,
        expected_pps: (sent * plan.subscribers as u64) as f64 / seconds,
        forwarded_pps: received as f64 / seconds,
        server_cores: server.cores,
        server_cpu_seconds: server.cpu_seconds,
        server_cpu_percent_per_core: 100.0 * server.cpu_seconds / seconds / server.cores.max(1) as f64,
        server_cpu_seconds_per_million_packets: per_million,
        packets_per_core_second: 1e6 / per_million,
        loss_percent: if expected > 0 { 100.0 * (expected - distinct.min(expected)) as f64 / expected as f64 } else { 100.0 },
        silent_streams: consumers.saturating_sub(streams),
        latency_p50_ms: percentile(&latencies, 0.50) / 1000.0,
        latency_p99_ms: percentile(&latencies, 0.99) / 1000.0,
        join_to_first_packet_p50_ms: percentile(&joins, 0.50) / 1000.0,
        join_to_first_packet_p99_ms: percentile(&joins, 0.99) / 1000.0,
        subscribers_without_media: subscribers.iter().filter(|s| s.first_packet.is_none()).count(),
        server_rss_idle_bytes: server.rss_idle,
        server_rss_first_room_bytes: server.rss_first_room,
        server_rss_load_bytes: server.rss_load,
        server_rss_per_consumer_bytes: match server.rss_first_room {
            Some(first) => server.rss_load.saturating_sub(first) as f64 / (consumers - consumers / plan.rooms).max(1) as f64,
            None => from_idle,
        },
        server_rss_per_consumer_from_idle_bytes: from_idle,
        server_threads: server.threads,
        client_cpu_percent: 100.0 * server.client_cpu_seconds / seconds,
    }
}

impl Figures {
    pub fn print(&self) {
        println!(
            "== {} : {} rooms x ({} publishers + {} subscribers), {} consumers, {:.1} s window",
            self.target, self.rooms, self.publishers_per_room, self.subscribers_per_room, self.consumers, self.seconds
        );
        println!("  forwarded         {:>10.0} pkt/s  (expected {:.0})", self.forwarded_pps, self.expected_pps);
        if self.server_cpu_seconds > 0.0 {
            println!(
                "  server CPU        {:>10.1} % of {} core(s), {:.3} s per million packets -> {:.0} pkt/s per core",
                self.server_cpu_percent_per_core,
                self.server_cores,
                self.server_cpu_seconds_per_million_packets,
                self.packets_per_core_second
            );
        } else {
            // /proc counts the process started: a wrapper script (e.g. a profiler) is not the server.
            println!("  server CPU        not measured (the started process used no CPU: is the server binary a wrapper?)");
        }
        println!("  loss              {:>10.3} %  ({} silent streams)", self.loss_percent, self.silent_streams);
        println!(
            "  latency           p50 {:.2} ms, p99 {:.2} ms (publisher write -> subscriber decrypt)",
            self.latency_p50_ms, self.latency_p99_ms
        );
        println!(
            "  join->1st packet  p50 {:.0} ms, p99 {:.0} ms ({} subscribers without media)",
            self.join_to_first_packet_p50_ms, self.join_to_first_packet_p99_ms, self.subscribers_without_media
        );
        println!("  load tool CPU     {:>10.1} % of one core", self.client_cpu_percent);
        let mib = |b: u64| b as f64 / 1048576.0;
        let first = self.server_rss_first_room_bytes.map(|b| format!("{:.1} MiB with one room, ", mib(b))).unwrap_or_default();
        println!(
            "  server memory     {:.1} MiB idle, {first}{:.1} MiB loaded, {} threads",
            mib(self.server_rss_idle_bytes),
            mib(self.server_rss_load_bytes),
            self.server_threads
        );
        println!(
            "  memory/consumer   {:>10.1} KiB ({}; {:.1} KiB counted from idle)",
            self.server_rss_per_consumer_bytes / 1024.0,
            if self.server_rss_first_room_bytes.is_some() { "growth beyond the first room" } else { "from idle" },
            self.server_rss_per_consumer_from_idle_bytes / 1024.0
        );
    }
}
