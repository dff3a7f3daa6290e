//! Builds the server: core state, plugins, the axum router, the listener.
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::any;
use axum::{Extension, Router};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::core::Core;
use crate::db;
use crate::http::client_ip;
use crate::http::server::{self, ConnectionLimits};
use crate::http::ApiError;
use crate::plugins::contacts::Contacts;
use crate::plugins::identity::Identity;
use crate::plugins::media::Media;
use crate::plugins::rooms::Rooms;
use crate::plugins::Plugin;
use crate::secret::{SecretError, ServerSecret};
use crate::startup::{self, io_hint};
use crate::turn::Turn;
use crate::{openapi, telemetry};
use utoipa_axum::router::OpenApiRouter;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot create data directory {}: {source} ({})", .path.display(), io_hint(.source, "--data-dir"))]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("cannot listen on {addr}: {source} ({})", io_hint(.source, "--listen"))]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot listen on {addr}: {source} ({})", io_hint(.source, "--metrics-listen"))]
    MetricsListen { addr: SocketAddr, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("media engine: {0}")]
    Media(String),
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error("OpenAPI document: {0}")]
    OpenApi(serde_json::Error),
}

pub struct App {
    core: Core,
    router: Router,
    listener: std::net::TcpListener,
    /// `--metrics-listen`: its listener and the router that serves `/metrics` there.
    metrics: Option<(std::net::TcpListener, Router)>,
    plugins: Vec<Arc<dyn Plugin>>,
    engine: sfu::Engine,
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    media: Media,
}

impl App {
    /// Opens the database, starts the plugins and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<App, AppError> {
        telemetry::install();
        config.validate().map_err(AppError::Config)?;
        Identity::check_config(&config).map_err(AppError::Config)?;
        let turn = Turn::from_config(&config).map_err(AppError::Config)?;
        create_data_dir(&config.data_dir).map_err(|source| AppError::DataDir { path: config.data_dir.clone(), source })?;
        let secret = ServerSecret::load_or_create(&config.secret_path())?;
        let db = db::open(&config.data_dir).await?;
        let core = Core::new(config, db);

        startup::log_config(&core.config);
        let media = Media::start(core.clone(), turn).await.map_err(|e| match &e {
            sfu::StartError::Bind { source, .. } => {
                AppError::Media(format!("{e} ({})", io_hint(source, "--rtc-port (worker i uses port + i) or --rtc-listen-ip")))
            }
            _ => AppError::Media(e.to_string()),
        })?;
        let engine = media.engine().clone();
        let contacts: Arc<dyn Plugin> = Arc::new(Contacts::new(core.clone()));
        let rooms: Arc<dyn Plugin> = Arc::new(Rooms::new(core.clone(), Arc::new(media.clone())));
        let user_created_sql = [&contacts, &rooms].iter().flat_map(|p| p.user_created_sql().iter().copied()).collect();
        let identity = Arc::new(Identity::new(core.clone(), secret, user_created_sql));
        let plugins: Vec<Arc<dyn Plugin>> = vec![identity, contacts, rooms, Arc::new(media.clone())];

        let mut api = OpenApiRouter::with_openapi(openapi::base());
        for plugin in &plugins {
            tracing::debug!(plugin = plugin.name(), "plugin routes registered");
            api = api.merge(plugin.router());
        }
        api = api.merge(openapi::router());
        let metrics = match core.config.metrics_listen {
            None => {
                api = api.merge(telemetry::router(media.clone()));
                None
            }
            Some(addr) => {
                let (metrics_router, doc) = telemetry::router(media.clone()).split_for_parts();
                api.get_openapi_mut().merge(doc);
                let listener = std::net::TcpListener::bind(addr).map_err(|source| AppError::MetricsListen { addr, source })?;
                listener.set_nonblocking(true).map_err(|source| AppError::MetricsListen { addr, source })?;
                let metrics_router = metrics_router.fallback(not_found).layer(axum::middleware::from_fn(telemetry::track_http));
                Some((listener, metrics_router))
            }
        };
        let (mut router, doc) = api.split_for_parts();
        let doc = openapi::Document::new(&doc).map_err(AppError::OpenApi)?;
        let web = startup::find_web_dir(&core.config, std::env::current_exe().ok().as_deref());
        web.log();
        router = match web.dir() {
            Some(dir) => {
                // Unknown routes are 404 in our shape for every method, not ServeDir's bare 405.
                router.fallback_service(ServeDir::new(dir).call_fallback_on_method_not_allowed(true).fallback(any(not_found)))
            }
            None => router.fallback(not_found),
        };
        let mut router = router
            .method_not_allowed_fallback(method_not_allowed)
            .layer(axum::middleware::map_response(crate::http::error::ensure_error_shape))
            .layer(axum::middleware::map_request(client_ip::layer(Arc::new(core.config.limits.trusted_proxies.clone()))))
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .layer(Extension(doc))
            .layer(TraceLayer::new_for_http())
            .layer(axum::middleware::from_fn(telemetry::track_http));
        if core.config.tls_cert.is_some() {
            router = router.layer(axum::middleware::map_response(hsts));
        }

        let addr = core.config.listen;
        let listener = std::net::TcpListener::bind(addr).map_err(|source| AppError::Listen { addr, source })?;
        listener.set_nonblocking(true).map_err(|source| AppError::Listen { addr, source })?;
        Ok(App { core, router, listener, metrics, plugins, engine, media })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.core.config.listen)
    }

    /// Where `/metrics` is served when `--metrics-listen` is set (port 0 resolved).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The media engine (a cheap handle).
    pub fn engine(&self) -> &sfu::Engine {
        &self.engine
    }

    /// The video-call plugin (for the signaling fuzz target).
    #[cfg(feature = "fuzzing")]
    pub fn media(&self) -> &Media {
        &self.media
    }

    /// Serves until `shutdown` completes.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), AppError> {
        let App { core, router, listener, metrics, plugins, .. } = self;
        let maintenance = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                for p in &plugins {
                    p.maintain();
                }
                if let Some(handle) = telemetry::install() {
                    handle.run_upkeep();
                }
            }
        });
        let addr = listener.local_addr().map_err(AppError::Serve)?;
        let limits = &core.config.limits;
        let connection_limits = ConnectionLimits {
            max_connections: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            header_timeout: Duration::from_secs(limits.http_header_timeout_seconds.into()),
            uncapped: Arc::new(limits.trusted_proxies.clone()),
        };
        let tls = match (&core.config.tls_cert, &core.config.tls_key) {
            (Some(cert), Some(key)) => Some(server::tls_acceptor(cert, key).map_err(AppError::Tls)?),
            _ => None,
        };
        match &tls {
            Some(_) => tracing::info!("listening on https://{addr}"),
            None if !addr.ip().is_loopback() => {
                tracing::warn!("serving plain HTTP on {addr}: tokens travel unencrypted unless a proxy adds TLS")
            }
            None => {}
        }
        if tls.is_none() {
            tracing::info!("listening on http://{addr}");
        }
        let metrics_server = metrics.map(|(metrics_listener, metrics_router)| {
            if let Ok(addr) = metrics_listener.local_addr() {
                tracing::info!("metrics on http://{addr}/metrics");
            }
            let limits = connection_limits.clone();
            tokio::spawn(server::serve(metrics_listener, metrics_router, None, limits, std::future::pending()))
        });
        let result = server::serve(listener, router, tls, connection_limits, shutdown).await;
        maintenance.abort();
        if let Some(task) = metrics_server {
            task.abort();
        }
        result.map_err(AppError::Serve)
    }
}

/// Creates the data directory (and missing parents) readable by the server's user only; an
/// existing one is left as it is, with a warning if others may read it.
fn create_data_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), "the data directory is mode {mode:04o}: others may list it (chmod 700)");
    }
    Ok(())
}

/// Over TLS, browsers are told to use HTTPS only for this host for a year.
async fn hsts(mut response: Response) -> Response {
    response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::bad_request("method_not_allowed", "this route does not accept that method")
}
