//! Server configuration: one struct, filled from command-line flags or environment variables.
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Where one-time codes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmsSenderKind {
    /// Print the code in the server log (development only: anyone who reads the log can log in).
    Log,
    /// Append a JSON line to `<data_dir>/sms_outbox.jsonl` (tests).
    File,
    /// POST `{to, text}` to `--sms-webhook-url` (production).
    Webhook,
    /// No codes: `POST /auth/otp/request` answers 503 `otp_unavailable` (production without an
    /// SMS gateway).
    #[value(name = "none")]
    Off,
}

#[derive(Debug, Clone, Parser)]
#[command(name = "atome", version, about = "Atome core server with video calls")]
pub struct Config {
    /// Address of the HTTP(S) and WebSocket listener.
    #[arg(long, env = "ATOME_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Serve `GET /metrics` (Prometheus) on this address, plain HTTP, and not on `--listen`
    /// (default: on `--listen`).
    #[arg(long, env = "ATOME_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Log lines as `text` or `json` (one object per line).
    #[arg(long, env = "ATOME_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: crate::logging::LogFormat,
    /// Directory holding the SQLite database, outbox and recordings.
    #[arg(long, env = "ATOME_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// File holding the server secret (32 random bytes, mode 0600) that keys the hashes of
    /// one-time codes; generated at first start if missing (default: `<data-dir>/secret`).
    #[arg(long, env = "ATOME_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Enable `POST /auth/dev-login` (development only).
    #[arg(long, env = "ATOME_DEV_AUTH", value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub dev_auth: bool,
    /// PEM certificate chain for HTTPS/WSS.
    #[arg(long, env = "ATOME_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS/WSS.
    #[arg(long, env = "ATOME_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address.
    #[arg(long, env = "ATOME_INSECURE_HTTP", value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub insecure_http: bool,
    /// Media worker threads (default: available cores).
    #[arg(long, env = "ATOME_WORKERS")]
    pub workers: Option<usize>,
    /// Local IP the media workers bind.
    #[arg(long, env = "ATOME_RTC_LISTEN_IP", default_value = "127.0.0.1")]
    pub rtc_listen_ip: IpAddr,
    /// IP announced to clients in ICE candidates (default: the listen IP).
    #[arg(long, env = "ATOME_RTC_ANNOUNCED_IP")]
    pub rtc_announced_ip: Option<IpAddr>,
    /// First UDP port of the media workers (worker i uses port + i; 0 = free ports).
    #[arg(long, env = "ATOME_RTC_PORT", default_value_t = 40000)]
    pub rtc_port: u16,
    /// How long video consumers keep sent packets to answer NACKs, in milliseconds (50-5000).
    /// Longer survives longer round trips; each 100 ms costs ~11 KiB per 1 Mbit/s video consumer.
    #[arg(long, env = "ATOME_NACK_HISTORY_MS", default_value_t = sfu::EngineConfig::DEFAULT_NACK_HISTORY.as_millis() as u16, value_parser = clap::value_parser!(u16).range(50..=5000))]
    pub nack_history_ms: u16,
    /// A media transport that has been in contact and then hears nothing (no consent check,
    /// RTCP or media) for this many seconds is closed; the room hears `producerClosed`.
    #[arg(long, env = "ATOME_RTC_IDLE_SECONDS", default_value_t = sfu::EngineConfig::DEFAULT_IDLE_TIMEOUT.as_secs() as u16, value_parser = clap::value_parser!(u16).range(2..=3600))]
    pub rtc_idle_seconds: u16,
    /// ICE over TCP: each media worker also listens on TCP at its UDP port and offers a passive
    /// TCP candidate after the UDP one, for clients whose UDP is blocked (`--rtc-tcp=false`: off).
    #[arg(long, env = "ATOME_RTC_TCP", default_value_t = true, action = clap::ArgAction::Set)]
    pub rtc_tcp: bool,
    /// Downlink bandwidth estimation (`--rtc-downlink-bwe=true`): each subscriber's receive
    /// transport estimates what it can receive (from its transport-cc feedback, for clients that
    /// offer it, as browsers do) and its simulcast consumers get the best layers that fit, by
    /// priority (docs/protocol.md). Off by default: under 5% random loss with 30 ms of jitter
    /// the estimate sinks to 0.1-0.25 Mbit/s and video stalls, and it costs CPU and memory per
    /// consumer (BENCHMARKS.md). Off, every consumer gets its preferred layer whatever its
    /// downlink (the web client's small-tile rule still asks for less).
    #[arg(long, env = "ATOME_RTC_DOWNLINK_BWE", default_value_t = false, action = clap::ArgAction::Set)]
    pub rtc_downlink_bwe: bool,
    /// TURN servers handed to clients in `iceServers` (comma-separated URLs, e.g.
    /// `turn:turn.example.org:3478?transport=udp,turn:turn.example.org:3478?transport=tcp`), for
    /// clients behind NATs and firewalls that let no UDP through to the media ports.
    #[arg(long, env = "ATOME_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`). Prefer
    /// `--turn-secret-file`: a flag shows in the process list.
    #[arg(long, env = "ATOME_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<crate::turn::TurnSecret>,
    /// File holding the TURN secret (its first line; not readable by others).
    #[arg(long, env = "ATOME_TURN_SECRET_FILE")]
    pub turn_secret_file: Option<PathBuf>,
    /// Lifetime of the TURN credentials handed to clients, in seconds (default 24 h).
    #[arg(long, env = "ATOME_TURN_TTL", default_value_t = 86_400, value_parser = clap::value_parser!(u32).range(60..=7 * 86_400))]
    pub turn_ttl: u32,
    /// Where one-time codes are sent.
    #[arg(long, env = "ATOME_SMS_SENDER", value_enum, default_value = "log")]
    pub sms_sender: SmsSenderKind,
    /// URL the `webhook` SMS sender posts to.
    #[arg(long, env = "ATOME_SMS_WEBHOOK_URL")]
    pub sms_webhook_url: Option<String>,
    /// Region used to read phone numbers written in national format.
    #[arg(long, env = "ATOME_PHONE_REGION", default_value = "FR")]
    pub phone_region: String,
    /// Directory of the built web client (served at `/`).
    #[arg(long, env = "ATOME_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// FFmpeg executable used for recording (recording is unavailable if it cannot run).
    #[arg(long, env = "ATOME_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,
    #[command(flatten)]
    pub limits: Limits,
}

/// Rate limits and lifetimes. Flags exist so operators (and tests) can tune them.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// One-time codes sent per phone number per hour, whatever the source (one source alone gets
    /// at most 7: one at once, then after 30 s, 60 s, 120 s, ...).
    #[arg(long, env = "ATOME_OTP_PER_NUMBER", default_value_t = 10)]
    pub otp_per_number_hour: u32,
    /// One-time code requests allowed per client IP per 15 minutes.
    #[arg(long, env = "ATOME_OTP_PER_IP", default_value_t = 50)]
    pub otp_per_ip_15min: u32,
    /// Code guesses judged per phone number per hour, whatever the source and the code (one
    /// source alone gets at most 7: three at once, then after 2 min, 4 min, 8 min, ...).
    #[arg(long, env = "ATOME_OTP_GUESSES_PER_NUMBER", default_value_t = 15)]
    pub otp_guesses_per_number_hour: u32,
    /// Code verifications allowed per client IP per 15 minutes, any number.
    #[arg(long, env = "ATOME_OTP_VERIFY_PER_IP", default_value_t = 100)]
    pub otp_verify_per_ip_15min: u32,
    /// Connection requests allowed per user per hour.
    #[arg(long, env = "ATOME_CONTACT_REQUESTS_PER_HOUR", default_value_t = 20)]
    pub contact_requests_per_hour: u32,
    /// Connection requests allowed per client IP per hour.
    #[arg(long, env = "ATOME_CONTACT_REQUESTS_PER_IP_HOUR", default_value_t = 200)]
    pub contact_requests_per_ip_hour: u32,
    /// Room joins allowed per user per minute.
    #[arg(long, env = "ATOME_JOINS_PER_MINUTE", default_value_t = 30)]
    pub joins_per_minute: u32,
    /// Room joins allowed per client IP per minute.
    #[arg(long, env = "ATOME_JOINS_PER_IP_MINUTE", default_value_t = 300)]
    pub joins_per_ip_minute: u32,
    /// WebSocket messages allowed per connection per second (more closes the socket).
    #[arg(long, env = "ATOME_WS_MESSAGES_PER_SECOND", default_value_t = 50)]
    pub ws_messages_per_second: u32,
    /// A signaling socket that sends nothing (not even the answer to our pings, sent three
    /// times per period) for this many seconds is closed, which is a leave.
    #[arg(long, env = "ATOME_WS_IDLE_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u16).range(3..=3600))]
    pub ws_idle_seconds: u16,
    /// Seconds a peer whose signaling socket was lost (closed without a close frame, or silent)
    /// keeps its place and its media in the call, for a new socket of the same client to take
    /// it back (`resumeSession`); 0 makes a lost socket a leave at once.
    #[arg(long, env = "ATOME_SESSION_GRACE_SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u16).range(0..=600))]
    pub session_grace_seconds: u16,
    /// Transports one WebSocket connection may create per minute.
    #[arg(long, env = "ATOME_TRANSPORTS_PER_MINUTE", default_value_t = 20)]
    pub transports_per_minute: u32,
    /// Lifetime of bearer tokens, in days.
    #[arg(long, env = "ATOME_TOKEN_DAYS", default_value_t = 30)]
    pub token_days: u32,
    /// Proxies whose `Forwarded`/`X-Forwarded-For` headers name the client (CIDRs or addresses,
    /// comma-separated). Connections from them are not capped per address.
    #[arg(long, env = "ATOME_TRUSTED_PROXIES", value_delimiter = ',', value_parser = crate::http::client_ip::parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Open HTTP connections in all (WebSockets included); more are closed at once.
    #[arg(long, env = "ATOME_MAX_CONNECTIONS", default_value_t = 8192)]
    pub max_connections: usize,
    /// Open HTTP connections from one client address.
    #[arg(long, env = "ATOME_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,
    /// Seconds a client has to send a request head, and longest idle time between requests on
    /// one connection (also bounds the TLS handshake).
    #[arg(long, env = "ATOME_HTTP_HEADER_TIMEOUT_SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=3600))]
    pub http_header_timeout_seconds: u16,
    /// Authenticated signaling sockets one user may hold at once (all devices and tabs).
    #[arg(long, env = "ATOME_MAX_SOCKETS_PER_USER", default_value_t = 10)]
    pub max_sockets_per_user: usize,
    /// Media transports one user may hold at once, over all their sockets.
    #[arg(long, env = "ATOME_MAX_TRANSPORTS_PER_USER", default_value_t = 24)]
    pub max_transports_per_user: usize,
    /// Media transports one signaling socket may hold at once.
    #[arg(long, env = "ATOME_MAX_TRANSPORTS_PER_SOCKET", default_value_t = 8)]
    pub max_transports_per_socket: usize,
    /// Producers one signaling socket may hold at once.
    #[arg(long, env = "ATOME_MAX_PRODUCERS_PER_SOCKET", default_value_t = 8)]
    pub max_producers_per_socket: usize,
    /// Consumers one signaling socket may hold at once (one per producer and transport).
    #[arg(long, env = "ATOME_MAX_CONSUMERS_PER_SOCKET", default_value_t = 256)]
    pub max_consumers_per_socket: usize,
}

impl Config {
    /// A configuration for tests and embedding: loopback, free ports, dev auth, file SMS sender.
    pub fn for_tests(data_dir: PathBuf) -> Config {
        let mut config = Config::parse_from(["atome"]);
        config.listen = "127.0.0.1:0".parse().expect("literal address"); // constant, cannot fail
        config.data_dir = data_dir;
        config.dev_auth = true;
        config.sms_sender = SmsSenderKind::File;
        config.rtc_port = 0;
        config.workers = Some(2);
        config
    }

    /// Where the server secret lives.
    pub fn secret_path(&self) -> PathBuf {
        self.secret_file.clone().unwrap_or_else(|| self.data_dir.join("secret"))
    }

    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
    }

    pub fn announced_ip(&self) -> IpAddr {
        self.rtc_announced_ip.unwrap_or(self.rtc_listen_ip)
    }

    pub fn token_lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.limits.token_days) * 86_400)
    }

    /// Checks combinations clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        let tls = self.tls_cert.is_some();
        if !tls && !self.listen.ip().is_loopback() && !self.insecure_http {
            return Err(format!(
                "refusing plain HTTP on non-loopback address {}: give --tls-cert/--tls-key, or --insecure-http if a proxy terminates TLS",
                self.listen
            ));
        }
        if self.rtc_listen_ip.is_unspecified() && self.rtc_announced_ip.is_none() {
            return Err("--rtc-announced-ip is required when --rtc-listen-ip is 0.0.0.0 or ::".into());
        }
        if self.sms_sender == SmsSenderKind::Webhook && self.sms_webhook_url.is_none() {
            return Err("--sms-sender webhook needs --sms-webhook-url".into());
        }
        crate::turn::check(self)?;
        Ok(())
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("expected 1/true or 0/false, got {other:?}")),
    }
}
