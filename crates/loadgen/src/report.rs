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
    /// Its user-space part: the server's own code, without system calls and the kernel's packet
    /// work (which on loopback includes delivery into the clients' sockets, the same for any
    /// server sending the same datagrams).
    pub server_user_cpu_seconds_per_million_packets: f64,
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
    /// Where the server's CPU went in the window: seconds per `process/thread` name, largest
    /// first.
    pub server_cpu_split: Vec<(String, f64)>,
    /// Processes the readings cover (the server and its descendants, e.g. node and its
    /// mediasoup workers).
    pub server_processes: usize,
    /// Packets of mediasoup's probing stream the subscribers received and left out.
    pub probe_packets: u64,
    /// Publishers sent simulcast video (`expected_pps` then counts the top stream only).
    pub simulcast: bool,
    /// Every packet the publishers sent per second (all simulcast streams).
    pub published_pps: f64,
    /// Video packets the uncapped subscribers received per simulcast stream (lowest first).
    pub uncapped_layer_packets: [u64; 3],
    /// The same for the capped subscribers (empty figures without a cap).
    pub capped_layer_packets: [u64; 3],
    pub capped_subscribers: usize,
    /// Datagrams the capped links dropped (their queue was full).
    pub capped_link_dropped: u64,
    /// This tool's own CPU use (all its peers on its cores): near 100% means the figures are
    /// bounded by the clients, not by the server.
    pub client_cpu_percent: f64,
}

/// Server-side readings taken around the window.
pub struct ServerReadings {
    pub cores: usize,
    pub cpu_seconds: f64,
    /// The user-space part of `cpu_seconds`.
    pub user_cpu_seconds: f64,
    pub client_cpu_seconds: f64,
    pub rss_idle: u64,
    pub rss_first_room: Option<u64>,
    pub rss_load: u64,
    pub threads: usize,
    pub processes: usize,
    pub cpu_split: Vec<(String, f64)>,
}

pub fn percentile(sorted: &[u32], p: f64) -> f64 {
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
    let layers = |capped: bool| {
        let mut sum = [0u64; 3];
        for s in subscribers.iter().filter(|s| s.capped == capped) {
            for (a, b) in sum.iter_mut().zip(s.layers) {
                *a += b;
            }
        }
        sum
    };
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
    let user_per_million = if received > 0 { server.user_cpu_seconds / (received as f64 / 1e6) } else { f64::NAN };
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
        server_user_cpu_seconds_per_million_packets: user_per_million,
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
        server_processes: server.processes,
        server_cpu_split: server.cpu_split.clone(),
        probe_packets: subscribers.iter().map(|s| s.probe_packets).sum(),
        simulcast: plan.simulcast,
        published_pps: publishers.iter().map(|p| p.sent_all).sum::<u64>() as f64 / seconds,
        uncapped_layer_packets: layers(false),
        capped_layer_packets: layers(true),
        capped_subscribers: subscribers.iter().filter(|s| s.capped).count(),
        capped_link_dropped: subscribers.iter().map(|s| s.link_dropped).sum(),
        client_cpu_percent: 100.0 * server.client_cpu_seconds / seconds,
    }
}

/// How another server compares with the base one (Atome) on the same load: each figure of the
/// other divided by the base's (above 1: the other costs more or is slower).
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub cpu_per_packet: f64,
    /// Of the user-space part alone.
    pub user_cpu_per_packet: f64,
    pub latency_p50: f64,
    pub latency_p99: f64,
    pub memory_per_consumer: f64,
    /// The other server's CPU use over the window, % of its cores.
    pub other_cpu_percent_per_core: f64,
    pub other_loss_percent: f64,
}

/// A server using this much of its cores is saturated: its cost per packet is then a floor, and
/// its latency and loss are those of a queue.
pub const SATURATED_PERCENT: f64 = 95.0;

pub fn ratios(base: &Figures, other: &Figures) -> Ratios {
    Ratios {
        cpu_per_packet: other.server_cpu_seconds_per_million_packets / base.server_cpu_seconds_per_million_packets,
        user_cpu_per_packet: other.server_user_cpu_seconds_per_million_packets / base.server_user_cpu_seconds_per_million_packets,
        latency_p50: other.latency_p50_ms / base.latency_p50_ms,
        latency_p99: other.latency_p99_ms / base.latency_p99_ms,
        memory_per_consumer: other.server_rss_per_consumer_bytes / base.server_rss_per_consumer_bytes,
        other_cpu_percent_per_core: other.server_cpu_percent_per_core,
        other_loss_percent: other.loss_percent,
    }
}

impl Ratios {
    /// One line: `== other / base: CPU per forwarded packet x.., latency p50 x.., p99 x..`, and
    /// what to keep in mind when the other server ran out of CPU.
    pub fn line(&self, other: &str, base: &str) -> String {
        let mut s = format!(
            "== {other} / {base}: CPU per forwarded packet x{:.2} (user space x{:.2}), latency p50 x{:.2}, p99 x{:.2}, memory per consumer x{:.2}",
            self.cpu_per_packet, self.user_cpu_per_packet, self.latency_p50, self.latency_p99, self.memory_per_consumer
        );
        if self.other_cpu_percent_per_core >= SATURATED_PERCENT {
            s += &format!(
                " ({other} saturated: {:.0}% of its core(s), loss {:.3}%)",
                self.other_cpu_percent_per_core, self.other_loss_percent
            );
        }
        s
    }
}

/// `name 71%, name 20%, ...`: the `top` largest shares of `total`, the rest summed.
pub fn split_line(split: &[(String, f64)], total: f64, top: usize) -> String {
    let pct = |s: f64| 100.0 * s / total.max(1e-9);
    let mut parts: Vec<String> = split.iter().take(top).map(|(n, s)| format!("{n} {:.0}%", pct(*s))).collect();
    let rest: f64 = split.iter().skip(top).map(|(_, s)| s).sum();
    if rest > 0.0 {
        parts.push(format!("other threads {:.0}%", pct(rest)));
    }
    parts.join(", ")
}

impl Figures {
    /// Whether the run measured anything: a run whose subscribers received nothing (peers that
    /// never connected, a server that forwards nothing) must fail, not print zeros.
    pub fn problem(&self) -> Option<String> {
        (self.forwarded_pps == 0.0 && self.consumers > 0).then(|| {
            format!(
                "{}: the subscribers received no media in the window ({} of {} subscribers never got a packet, {} silent streams)",
                self.target,
                self.subscribers_without_media,
                self.rooms * self.subscribers_per_room,
                self.silent_streams
            )
        })
    }

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
            println!(
                "  user / kernel     {:>10.3} / {:.3} s per million packets (the server's code / system calls and the kernel's packet work)",
                self.server_user_cpu_seconds_per_million_packets,
                self.server_cpu_seconds_per_million_packets - self.server_user_cpu_seconds_per_million_packets
            );
        } else {
            // /proc counts the process started: a wrapper script (e.g. a profiler) is not the server.
            println!("  server CPU        not measured (the started process used no CPU: is the server binary a wrapper?)");
        }
        if self.simulcast {
            println!("  published         {:>10.0} pkt/s  (every simulcast stream)", self.published_pps);
        }
        if !self.server_cpu_split.is_empty() {
            println!("  server CPU split  {}", split_line(&self.server_cpu_split, self.server_cpu_seconds, 5));
        }
        println!("  loss              {:>10.3} %  ({} silent streams)", self.loss_percent, self.silent_streams);
        if self.simulcast {
            let [a, b, c] = self.uncapped_layer_packets;
            println!("  streams received  uncapped subscribers: {a} / {b} / {c} video packets of streams 0 / 1 / 2");
        }
        if self.capped_subscribers > 0 {
            let [a, b, c] = self.capped_layer_packets;
            println!(
                "  capped downlinks  {} subscribers: {a} / {b} / {c} video packets of streams 0 / 1 / 2, {} datagrams dropped by the cap",
                self.capped_subscribers, self.capped_link_dropped
            );
        }
        if self.probe_packets > 0 {
            println!("  probe packets     {:>10} (mediasoup's probator stream, not counted)", self.probe_packets);
        }
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
            "  server memory     {:.1} MiB idle, {first}{:.1} MiB loaded, {} threads in {} process(es)",
            mib(self.server_rss_idle_bytes),
            mib(self.server_rss_load_bytes),
            self.server_threads,
            self.server_processes
        );
        println!(
            "  memory/consumer   {:>10.1} KiB ({}; {:.1} KiB counted from idle)",
            self.server_rss_per_consumer_bytes / 1024.0,
            if self.server_rss_first_room_bytes.is_some() { "growth beyond the first room" } else { "from idle" },
            self.server_rss_per_consumer_from_idle_bytes / 1024.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(target: &str, cpu_per_million: f64, p50: f64, p99: f64, rss_per_consumer: f64, cpu_percent: f64) -> Figures {
        let plan = Plan::new(4, 2, 10, 1000, 40, 1100);
        let readings = ServerReadings {
            cores: 1,
            cpu_seconds: 1.0,
            user_cpu_seconds: 0.5,
            client_cpu_seconds: 0.5,
            rss_idle: 0,
            rss_first_room: None,
            rss_load: 0,
            threads: 1,
            processes: 1,
            cpu_split: Vec::new(),
        };
        let mut f = aggregate(target, &plan, 10.0, &[], &[], &readings);
        f.server_cpu_seconds_per_million_packets = cpu_per_million;
        f.server_user_cpu_seconds_per_million_packets = cpu_per_million / 2.0;
        f.latency_p50_ms = p50;
        f.latency_p99_ms = p99;
        f.server_rss_per_consumer_bytes = rss_per_consumer;
        f.server_cpu_percent_per_core = cpu_percent;
        f.loss_percent = 0.0;
        f
    }

    #[test]
    fn ratios_divide_the_other_server_by_the_base() {
        let atome = figures("atome", 5.0, 0.5, 1.0, 60.0 * 1024.0, 15.0);
        let ms = figures("mediasoup", 10.0, 0.75, 3.0, 90.0 * 1024.0, 40.0);
        let r = ratios(&atome, &ms);
        assert_eq!(
            (r.cpu_per_packet, r.user_cpu_per_packet, r.latency_p50, r.latency_p99, r.memory_per_consumer),
            (2.0, 2.0, 1.5, 3.0, 1.5)
        );
        assert_eq!(
            r.line("mediasoup", "atome"),
            "== mediasoup / atome: CPU per forwarded packet x2.00 (user space x2.00), latency p50 x1.50, p99 x3.00, memory per consumer x1.50"
        );
        let mut busy = ms.clone();
        busy.server_cpu_percent_per_core = 99.2;
        busy.loss_percent = 3.25;
        let line = ratios(&atome, &busy).line("mediasoup", "atome");
        assert!(line.ends_with("(mediasoup saturated: 99% of its core(s), loss 3.250%)"), "{line}");
    }

    #[test]
    fn the_cpu_split_line_shows_the_largest_shares() {
        let split: Vec<(String, f64)> = [("mediasoup-worke", 6.0), ("node", 3.0), ("node/libuv-worker", 0.6), ("node/V8Worker", 0.4)]
            .map(|(n, s)| (n.to_string(), s))
            .into();
        assert_eq!(split_line(&split, 10.0, 2), "mediasoup-worke 60%, node 30%, other threads 10%");
        assert_eq!(split_line(&split[..1], 10.0, 2), "mediasoup-worke 60%");
    }

    #[test]
    fn a_run_without_media_is_a_problem() {
        // No subscriber report at all: nothing forwarded.
        let f = figures("mediasoup", f64::NAN, f64::NAN, f64::NAN, 0.0, 0.0);
        assert_eq!(f.forwarded_pps, 0.0);
        let p = f.problem().unwrap();
        assert!(p.starts_with("mediasoup: the subscribers received no media"), "{p}");
        let mut ok = f.clone();
        ok.forwarded_pps = 13_600.0;
        assert!(ok.problem().is_none());
    }
}
