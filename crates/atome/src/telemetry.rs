//! Prometheus metrics, served as text at `GET /metrics` (docs/http.md, "Metrics").
//!
//! Two sources, one page:
//! - process-wide counters and histograms kept by the `metrics` crate's recorder, installed once
//!   per process ([`install`]): HTTP latency, WebSocket messages, rate-limit refusals. Several
//!   servers in one process (tests) share them.
//! - figures of this server read when scraped, never cached: each media worker's counters and
//!   CPU time ([`sfu::Engine::worker_stats`]), and the calls, peers and media objects alive.
//!
//! Labels never hold user data (no phone numbers, tokens, room ids or raw paths): the route is
//! the template (`/rooms/{room_id}`), message types and limit kinds are fixed lists.
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::plugins::media::Media;

/// `atome_http_request_duration_seconds{method,route,status}`: histogram, seconds from the
/// request reaching the router to the response head.
pub const HTTP_DURATION: &str = "atome_http_request_duration_seconds";
/// `atome_ws_messages_total{type}`: signaling messages received, by client `type` after
/// parsing (`invalid` for a frame that is not a valid message).
pub const WS_MESSAGES: &str = "atome_ws_messages_total";
/// `atome_rate_limited_total{kind}`: requests or messages refused by a rate limit.
pub const RATE_LIMITED: &str = "atome_rate_limited_total";

/// Every `kind` of [`RATE_LIMITED`]: the HTTP limits (identity, contacts, rooms) and the
/// signaling socket's own. Each is shown from 0 on.
pub const RATE_LIMIT_KINDS: &[&str] = &[
    "otp_request_per_ip",
    "otp_request_per_number",
    "otp_request_backoff",
    "otp_verify_per_ip",
    "otp_guess_backoff",
    "otp_guesses_per_number",
    "contact_request_per_user",
    "contact_request_per_ip",
    "room_join_per_user",
    "room_join_per_ip",
    "ws_messages",
    "ws_transports",
];

/// Bucket bounds of [`HTTP_DURATION`], in seconds.
const HTTP_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The recorder's handle; `None` when another recorder was installed first (embedding).
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder on first call (later calls do nothing). Call before anything
/// is counted: counts made before it are lost.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = match PrometheusBuilder::new().set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), HTTP_BUCKETS) {
                Ok(builder) => builder,
                Err(e) => {
                    tracing::warn!("metrics: {e}; no process-wide metrics");
                    return None;
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!("metrics: another recorder is installed ({e}); /metrics shows only this server's figures");
                return None;
            }
            metrics::describe_histogram!(
                HTTP_DURATION,
                metrics::Unit::Seconds,
                "HTTP request latency by method, route template and status."
            );
            metrics::describe_counter!(WS_MESSAGES, "Signaling messages received, by client message type (invalid: unreadable).");
            metrics::describe_counter!(RATE_LIMITED, "Requests or signaling messages refused by a rate limit, by limit.");
            for kind in RATE_LIMIT_KINDS {
                metrics::counter!(RATE_LIMITED, "kind" => *kind).increment(0);
            }
            Some(handle)
        })
        .as_ref()
}

/// Counts one signaling message of type `kind` (a [`crate::plugins::media::messages::ClientMessage::kind`], or `invalid`).
pub fn ws_message(kind: &'static str) {
    metrics::counter!(WS_MESSAGES, "type" => kind).increment(1);
}

/// Counts one refusal by the limit `kind` (one of [`RATE_LIMIT_KINDS`]).
pub fn rate_limited(kind: &'static str) {
    metrics::counter!(RATE_LIMITED, "kind" => kind).increment(1);
}

/// Middleware (`Router::layer`): times each request into [`HTTP_DURATION`]. The route is the
/// matched template, `unmatched` when no route matched (static files, 404s).
pub async fn track_http(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route, "status" => status).record(start.elapsed().as_secs_f64());
    response
}

/// The standard methods by name; any other is `other` (a client cannot add label values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics`, with the server's state.
pub fn router(media: Media) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(metrics_page)).with_state(media)
}

/// Prometheus metrics of this server, text exposition format 0.0.4 (no authentication; no
/// user data). Served on `--metrics-listen` instead when that is set.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format: process-wide `atome_http_request_duration_seconds`, `atome_ws_messages_total`, `atome_rate_limited_total`; this server's `atome_worker_*{worker}` counters and `atome_worker_up`, gauges `atome_rooms`, `atome_peers`, `atome_routers`, `atome_transports`, `atome_producers`, `atome_consumers`, `atome_producers_silent`; per peer (user id label, at most 100, the rest as `_other`) `atome_peer_bitrate_bps`, `atome_peer_rtt_seconds`, `atome_peer_fraction_lost`, `atome_peer_jitter_seconds`, `atome_peer_nacks_total`, `atome_peer_plis_total`, `atome_peer_firs_total`; `atome_recordings_disk_used_ratio`", body = String, content_type = "text/plain")))]
async fn metrics_page(State(media): State<Media>) -> Response {
    let mut page = install().map(PrometheusHandle::render).unwrap_or_default();
    let workers = media.engine().worker_stats().await;
    render_server(&mut page, media.rooms(), media.peers(), &workers);
    let peers = media.peer_transports().await;
    let qualities = media.engine().transport_qualities().await;
    crate::peer_metrics::render(&mut page, &crate::peer_metrics::by_peer(&peers, &qualities, crate::peer_metrics::MAX_PEERS));
    header(
        &mut page,
        "atome_recordings_disk_used_ratio",
        "gauge",
        "Used share (0..1) of the filesystem holding the data directory (recordings).",
    );
    if let Some(ratio) = crate::peer_metrics::disk_used_ratio(media.data_dir()) {
        let _ = writeln!(page, "atome_recordings_disk_used_ratio {ratio}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], page).into_response()
}

/// Appends this server's figures to `out` in the text format: per-worker counters, up and CPU
/// seconds, then the gauges (objects summed over the workers that are up).
pub fn render_server(out: &mut String, rooms: usize, peers: usize, workers: &[sfu::WorkerStats]) {
    type Field = fn(&sfu::EngineStats) -> u64;
    let counters: [(&str, &str, Field); 6] = [
        ("atome_worker_packets_in_total", "Datagrams and TCP frames received by the worker.", |s| s.packets_in),
        ("atome_worker_packets_out_total", "Datagrams and TCP frames sent by the worker.", |s| s.packets_out),
        ("atome_worker_bytes_in_total", "Bytes received by the worker.", |s| s.bytes_in),
        ("atome_worker_bytes_out_total", "Bytes sent by the worker.", |s| s.bytes_out),
        ("atome_worker_rtp_forwarded_total", "RTP packets forwarded to consumers.", |s| s.rtp_forwarded),
        ("atome_worker_keyframe_requests_total", "Keyframe requests (PLI/FIR) sent to producers.", |s| s.keyframe_requests),
    ];
    let up: Vec<(usize, &sfu::EngineStats)> = workers.iter().filter_map(|w| w.stats.as_ref().map(|s| (w.index, s))).collect();
    for (name, help, field) in counters {
        header(out, name, "counter", help);
        for (index, stats) in &up {
            let _ = writeln!(out, "{name}{{worker=\"{index}\"}} {}", field(stats));
        }
    }
    header(
        out,
        "atome_worker_drops_total",
        "counter",
        "Input dropped by the worker: datagram (unreadable or unknown), guarded (RTP kept from str0m).",
    );
    for (index, stats) in &up {
        let _ = writeln!(out, "atome_worker_drops_total{{worker=\"{index}\",reason=\"datagram\"}} {}", stats.datagrams_dropped);
        let _ = writeln!(out, "atome_worker_drops_total{{worker=\"{index}\",reason=\"guarded\"}} {}", stats.rtp_guarded);
    }
    header(out, "atome_worker_cpu_seconds_total", "counter", "CPU time of the worker's thread, user + system, in seconds.");
    for w in workers {
        let _ = writeln!(out, "atome_worker_cpu_seconds_total{{worker=\"{}\"}} {}", w.index, w.cpu_seconds);
    }
    header(out, "atome_worker_up", "gauge", "1 while the worker runs and answers, 0 once it failed.");
    for w in workers {
        let _ = writeln!(out, "atome_worker_up{{worker=\"{}\"}} {}", w.index, u8::from(w.up));
    }
    let sum = |f: fn(&sfu::EngineStats) -> usize| up.iter().map(|(_, s)| f(s)).sum::<usize>();
    let gauges = [
        ("atome_rooms", "Calls in progress (rooms with a router).", rooms),
        ("atome_peers", "Peers in all calls.", peers),
        ("atome_routers", "Media routers alive.", sum(|s| s.routers)),
        ("atome_transports", "Media transports alive.", sum(|s| s.transports)),
        ("atome_producers", "Producers alive.", sum(|s| s.producers)),
        ("atome_consumers", "Consumers alive.", sum(|s| s.consumers)),
        ("atome_producers_silent", "Producers not paused that received no RTP for 5 s.", sum(|s| s.producers_silent)),
    ];
    for (name, help, value) in gauges {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_figures_render_per_worker_and_summed() {
        let stats = sfu::EngineStats { workers: 1, routers: 2, consumers: 3, packets_in: 7, datagrams_dropped: 1, ..Default::default() };
        let workers = [
            sfu::WorkerStats { index: 0, up: true, cpu_seconds: 1.5, stats: Some(stats.clone()) },
            sfu::WorkerStats { index: 1, up: false, cpu_seconds: 0.25, stats: None },
        ];
        let mut out = String::new();
        render_server(&mut out, 4, 5, &workers);
        for line in [
            "atome_worker_packets_in_total{worker=\"0\"} 7",
            "atome_worker_drops_total{worker=\"0\",reason=\"datagram\"} 1",
            "atome_worker_cpu_seconds_total{worker=\"1\"} 0.25",
            "atome_worker_up{worker=\"0\"} 1",
            "atome_worker_up{worker=\"1\"} 0",
            "atome_rooms 4",
            "atome_peers 5",
            "atome_routers 2",
            "atome_consumers 3",
        ] {
            assert!(out.lines().any(|l| l == line), "{line:?} missing from:\n{out}");
        }
        assert!(!out.contains("packets_in_total{worker=\"1\"}"), "a dead worker has no counters");
    }
}
