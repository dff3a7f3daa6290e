//! Load tool: R rooms of P publishers and S subscribers over real UDP on loopback against an
//! Atome server (and, for comparison, the real mediasoup behind the reference server and Janus
//! VideoRoom), started here as child processes pinned to their own cores. Prints forwarded
//! packets/s, server CPU per packet, loss, latency, join-to-first-packet time and server memory
//! per consumer, then each other server's figures over Atome's; `--join-storm N` instead sends N
//! subscribers in within a second and prints their join-to-first-packet times; `--json` for
//! machine comparison.
//!
//!     cargo run --release -p loadgen -- --rooms 4 --publishers 2 --subscribers 10 --targets atome,mediasoup,janus
//!     cargo run --release -p loadgen -- --rooms 10 --subscribers 0 --join-storm 100 --targets atome,mediasoup
//!     cargo run --release -p loadgen -- --rooms 4 --publishers 2 --subscribers 10 --simulcast --subscriber-cap-kbps 400 --capped-subscribers 2
mod atome;
mod janus;
mod link;
mod media;
mod msref;
mod plan;
mod report;
mod server;
mod simulcast;
mod storm;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::json;

use media::Control;
use plan::{Cap, Plan, Setup};
use report::{Figures, ServerReadings};
use server::ServerProcess;
use storm::{StormFigures, StormReadings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Atome,
    /// The real mediasoup behind the reference signaling server (shared/reference/mediasoup-ref).
    Mediasoup,
    Janus,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Atome => "atome",
            Target::Mediasoup => "mediasoup",
            Target::Janus => "janus",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Forwarding load on loopback: rooms of publishers and subscribers, figures per server")]
struct Args {
    #[arg(long, default_value_t = 2)]
    rooms: usize,
    #[arg(long, default_value_t = 2)]
    publishers: usize,
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Video bitrate per publisher.
    #[arg(long, default_value_t = 1000)]
    video_kbps: u32,
    #[arg(long, default_value_t = 40)]
    audio_kbps: u32,
    /// Largest video RTP payload.
    #[arg(long, default_value_t = 1100)]
    packet_bytes: usize,
    /// Measurement window.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Time between the last join and the window.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Servers to measure, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "atome")]
    targets: Vec<Target>,
    /// The atome binary (default: next to this one).
    #[arg(long)]
    atome_bin: Option<PathBuf>,
    #[arg(long, default_value = "janus")]
    janus_bin: PathBuf,
    /// The mediasoup reference's build dir (holds server/server.mjs and bin/mediasoup-worker;
    /// default ~/.cache/mediasoup-ref).
    #[arg(long, env = "MSREF")]
    msref: Option<PathBuf>,
    /// Node.js, for the mediasoup reference.
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// Instead of the measurement window: once the rooms are set up and warm, this many more
    /// subscribers join (round robin over the rooms) within --join-storm-ms; prints their
    /// join-to-first-packet times.
    #[arg(long, default_value_t = 0)]
    join_storm: usize,
    #[arg(long, default_value_t = 1000)]
    join_storm_ms: u64,
    /// How long every peer may take, after the last join, to have ICE and DTLS up; a peer
    /// still down then fails the run.
    #[arg(long, default_value_t = 20)]
    connect_seconds: u64,
    /// CPUs the server runs on (taskset list); its worker count follows.
    #[arg(long, default_value = "0")]
    server_cpus: String,
    /// CPUs this load tool runs on.
    #[arg(long, default_value = "1")]
    client_cpus: String,
    /// Run without pinning (server workers = all cores).
    #[arg(long)]
    no_pin: bool,
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Scrape the Atome server's `GET /metrics` every this many milliseconds during the
    /// measurement window (0: never), to measure what monitoring costs the server.
    #[arg(long, default_value_t = 0)]
    scrape_metrics_ms: u64,
    /// Publishers send their video in simulcast: three VP8 streams with real payload
    /// descriptors (L1T3), at 1/10, 3/10 and all of --video-kbps; subscribers get the stream
    /// the server selects for them. Not with Janus.
    #[arg(long)]
    simulcast: bool,
    /// Caps the downlink of --capped-subscribers subscribers per room at this many kbit/s (a
    /// bottleneck with a 200-ms queue in front of their client); turns --downlink-bwe on.
    #[arg(long)]
    subscriber_cap_kbps: Option<u32>,
    /// How many of each room's subscribers (the first ones) have the capped downlink; all of
    /// them if not given.
    #[arg(long)]
    capped_subscribers: Option<usize>,
    /// Runs the Atome server with downlink estimation (`--rtc-downlink-bwe=true`): what layer
    /// selection by bandwidth needs.
    #[arg(long)]
    downlink_bwe: bool,
}

fn cpu_count(list: &str) -> usize {
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => b.trim().parse::<usize>().unwrap_or(0).saturating_sub(a.trim().parse().unwrap_or(0)) + 1,
            None => 1,
        })
        .sum::<usize>()
        .max(1)
}

fn log(json: bool, msg: &str) {
    if json {
        eprintln!("{msg}");
    } else {
        println!("{msg}");
    }
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    if !args.no_pin {
        let ok = std::process::Command::new("taskset")
            .args(["-cp", &args.client_cpus, &std::process::id().to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("taskset failed (util-linux); run with --no-pin".into());
        }
    }
    media::now_ns(); // fixes the clock origin before any peer stamps a packet
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let mut plan = Plan::new(args.rooms, args.publishers, args.subscribers, args.video_kbps, args.audio_kbps, args.packet_bytes);
    plan.simulcast = args.simulcast;
    plan.cap = args.subscriber_cap_kbps.map(|kbps| Cap { kbps, per_room: args.capped_subscribers.unwrap_or(args.subscribers) });
    if (plan.simulcast || plan.cap.is_some()) && args.targets.contains(&Target::Janus) {
        return Err("--simulcast and --subscriber-cap-kbps are for Atome and the mediasoup reference, not Janus".into());
    }
    let mut results = Vec::new();
    let mut storms = Vec::new();
    let mut problems = Vec::new();
    for target in &args.targets {
        match rt.block_on(run_target(*target, &args, &plan))? {
            Outcome::Load(figures) => {
                if !args.json {
                    figures.print();
                }
                problems.extend(figures.problem());
                results.push(figures);
            }
            Outcome::Storm(figures) => {
                if !args.json {
                    figures.print();
                }
                problems.extend(figures.problem());
                storms.push(figures);
            }
        }
    }
    let mut doc = json!({"runs": results});
    if let Some(atome) = results.iter().find(|f| f.target == "atome") {
        for other in results.iter().filter(|f| f.target != "atome") {
            let r = report::ratios(atome, other);
            if !args.json {
                println!("{}", r.line(&other.target, "atome"));
            }
            doc[format!("{}_over_atome", other.target)] = json!(r);
        }
    }
    if !storms.is_empty() {
        doc["join_storms"] = json!(storms);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?);
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(())
}

enum Outcome {
    Load(Figures),
    Storm(StormFigures),
}

async fn run_target(target: Target, args: &Args, plan: &Plan) -> Result<Outcome, String> {
    let cpus = (!args.no_pin).then_some(args.server_cpus.as_str());
    let cores = if args.no_pin { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { cpu_count(&args.server_cpus) };
    let ctl = Arc::new(Control::default());
    let name = target.name();
    log(args.json, &format!("{name}: starting the server"));
    let (mut server, base) = match target {
        Target::Atome => {
            let bin = match &args.atome_bin {
                Some(b) => b.clone(),
                None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("atome"),
            };
            atome::start(&bin, cores, cpus, args.downlink_bwe || plan.cap.is_some()).await?
        }
        // One mediasoup worker per server core, as Atome gets one worker per core.
        Target::Mediasoup => msref::start(&args.node, &args.msref.clone().unwrap_or_else(msref::default_dir), cores, cpus).await?,
        Target::Janus => janus::start(&args.janus_bin, cpus).await?,
    };
    let storm = args.join_storm > 0;
    let rss_idle = server.rss_bytes()?;
    let started = Instant::now();
    let mut waited = Duration::ZERO;
    // Memory per consumer is read as growth beyond the first room, once it has run for the
    // warm-up: what the server loads once (number metadata, database cache, threads) is not
    // a consumer's cost. A join storm measures no memory: every room is set up at once.
    let first = if plan.rooms >= 2 && !storm { 1 } else { plan.rooms };
    let mut setup = setup_rooms(target, &base, plan, 0..first, &ctl)
        .await
        .map_err(|e| format!("{name}: setup failed: {e}; server log: {}", server.log_tail()))?;
    let mut rss_first_room = None;
    if first < plan.rooms {
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        waited = Duration::from_secs(args.warmup);
        let rss = server.rss_bytes()?;
        rss_first_room = Some(rss);
        log(args.json, &format!("{name}: first room running, {:.1} MiB resident; the other rooms join", rss as f64 / 1048576.0));
        let rest = setup_rooms(target, &base, plan, first..plan.rooms, &ctl).await;
        setup.extend(rest.map_err(|e| format!("{name}: setup failed: {e}; server log: {}", server.log_tail()))?);
    }
    let joined = (started.elapsed() - waited).as_secs_f64();
    let limit = Duration::from_secs(args.connect_seconds);
    let connected = wait_connected(name, &mut server, &ctl, setup.peers(), limit).await?;
    log(
        args.json,
        &format!(
            "{name}: {} peers joined in {joined:.1} s, all connected {:.1} s after the last join; warm-up {} s, {}",
            setup.peers(),
            connected.as_secs_f64(),
            args.warmup,
            if storm { format!("then a join storm of {}", args.join_storm) } else { format!("window {} s", args.seconds) }
        ),
    );
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    if storm {
        let spread = Duration::from_millis(args.join_storm_ms);
        server.check_alive()?;
        let (threads0, cpu0, own0) = (server.ticks_by_thread(), server.cpu_seconds()?, server::cpu_seconds("self")?);
        let (peers, took) = storm::run(&base, plan, &setup.rooms, args.join_storm, spread).await;
        let readings = StormReadings {
            seconds: took.as_secs_f64(),
            server_cpu_seconds: server.cpu_seconds()? - cpu0,
            client_cpu_seconds: server::cpu_seconds("self")? - own0,
            cores,
            cpu_split: server::cpu_split(&threads0, &server.ticks_by_thread()),
        };
        finish(setup, &ctl).await;
        server.check_alive()?;
        return Ok(Outcome::Storm(storm::aggregate(name, plan, spread, &peers, &readings)));
    }
    let scraper = (target == Target::Atome && args.scrape_metrics_ms > 0).then(|| {
        let (url, every) = (format!("{base}/metrics"), Duration::from_millis(args.scrape_metrics_ms));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut scrapes, mut bytes) = (0u64, 0usize);
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Ok(r) = client.get(&url).send().await {
                    bytes += r.text().await.map_or(0, |t| t.len());
                    scrapes += 1;
                }
                if scrapes > 0 && scrapes % 10 == 0 {
                    tracing_free_log(scrapes, bytes / scrapes as usize);
                }
            }
        })
    });
    let window = measure(&mut server, &ctl, Duration::from_secs(args.seconds)).await?;
    if let Some(s) = scraper {
        s.abort();
        log(args.json, &format!("atome: /metrics scraped every {} ms during the window", args.scrape_metrics_ms));
    }
    let readings = ServerReadings {
        cores,
        cpu_seconds: window.server_cpu,
        user_cpu_seconds: window.server_user_cpu,
        client_cpu_seconds: window.client_cpu,
        rss_idle,
        rss_first_room,
        rss_load: server.rss_bytes()?,
        threads: server.threads(),
        processes: server.members().len(),
        cpu_split: window.cpu_split,
    };
    if target == Target::Atome {
        if let Some(h) = atome::health(&base).await {
            log(args.json, &format!("atome: server counters {}", h["media"]));
        }
    }
    let (publishers, subscribers) = finish(setup, &ctl).await;
    server.check_alive()?;
    Ok(Outcome::Load(report::aggregate(name, plan, window.seconds, &publishers, &subscribers, &readings)))
}

/// A line every ten scrapes (stderr): how many, and the page size.
fn tracing_free_log(scrapes: u64, page_bytes: usize) {
    eprintln!("loadgen: {scrapes} scrapes of /metrics, {page_bytes} bytes each");
}

/// Waits until `peers` peers have ICE and DTLS up. A peer that cannot reach the server's media
/// fails the run here, loudly, instead of showing as zero packets in the figures.
async fn wait_connected(name: &str, server: &mut ServerProcess, ctl: &Control, peers: usize, limit: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        let n = ctl.connected.load(Ordering::Relaxed);
        if n >= peers {
            return Ok(t0.elapsed());
        }
        server.check_alive()?;
        if t0.elapsed() > limit {
            return Err(format!(
                "{name}: only {n} of {peers} peers connected (ICE + DTLS) within {} s of the last join; server log: {}",
                limit.as_secs(),
                server.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn setup_rooms(target: Target, base: &str, plan: &Plan, rooms: std::ops::Range<usize>, ctl: &Arc<Control>) -> Result<Setup, String> {
    match target {
        // The reference server speaks the project's contract: the same driver.
        Target::Atome | Target::Mediasoup => atome::setup(base, plan, rooms, ctl).await,
        Target::Janus => janus::setup(base, plan, rooms, ctl).await,
    }
}

/// The measurement window: its length and the CPU seconds of the server and of this tool in it.
async fn measure(server: &mut ServerProcess, ctl: &Control, length: Duration) -> Result<Window, String> {
    server.check_alive()?;
    let threads0 = server.ticks_by_thread();
    let (cpu0, user0) = server.cpu_times()?;
    let own0 = server::cpu_seconds("self")?;
    let t0 = Instant::now();
    ctl.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(length).await;
    ctl.measuring.store(false, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let (cpu1, user1) = server.cpu_times()?;
    let (cpu, user) = (cpu1 - cpu0, user1 - user0);
    let own = server::cpu_seconds("self")? - own0;
    let cpu_split = server::cpu_split(&threads0, &server.ticks_by_thread());
    Ok(Window { seconds, server_cpu: cpu, server_user_cpu: user, client_cpu: own, cpu_split })
}

struct Window {
    seconds: f64,
    server_cpu: f64,
    /// Its user-space part.
    server_user_cpu: f64,
    client_cpu: f64,
    cpu_split: Vec<(String, f64)>,
}

async fn finish(setup: Setup, ctl: &Control) -> (Vec<media::PeerReport>, Vec<media::PeerReport>) {
    ctl.stop.store(true, Ordering::Relaxed);
    let mut publishers = Vec::new();
    for h in setup.publishers {
        publishers.push(h.await.unwrap_or_default());
    }
    let mut subscribers = Vec::new();
    for h in setup.subscribers {
        subscribers.push(h.await.unwrap_or_default());
    }
    drop(setup.keep);
    (publishers, subscribers)
}
