//! The HTTP(S) accept loop: connections are taken under caps (in all, and per client address),
//! each is served by hyper with a header-read timeout, and shutdown is graceful.
//!
//! The header-read timeout runs whenever hyper waits for a request head: from the first byte of
//! a connection and again after each response, so it bounds slow headers and idle keep-alive
//! alike (hyper `http1::Builder::header_read_timeout`). Upgraded WebSockets leave hyper and keep
//! their own liveness (signaling pings). A connection over a cap is closed at once, so an idle
//! flood cannot take the descriptors `/health` needs (issue: 1,100 idle connections made it time
//! out). Per-address caps count the TCP peer: behind a proxy they count the proxy.
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// Connection caps and timeouts.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections in all (WebSockets included).
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_per_ip: usize,
    /// Time to send a request head, and longest idle time between requests on a connection;
    /// also bounds the TLS handshake.
    pub header_timeout: Duration,
    /// Addresses without a per-address cap: trusted proxies, whose connections carry everyone.
    pub uncapped: Arc<Vec<ipnet::IpNet>>,
}

/// Open connections, in all and per address; each count is taken under one lock.
#[derive(Default)]
struct Open {
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One connection's place in [`Open`], given back when dropped.
struct Slot {
    open: Arc<Open>,
    ip: IpAddr,
}

impl Open {
    fn take(self: &Arc<Self>, ip: IpAddr, limits: &ConnectionLimits) -> Option<Slot> {
        // A poisoned lock only means a holder panicked between two plain counter updates.
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *counts;
        let mine = per_ip.get(&ip).copied().unwrap_or(0);
        let capped = !limits.uncapped.iter().any(|net| net.contains(&ip));
        if *total >= limits.max_connections || (capped && mine >= limits.max_per_ip) {
            return None;
        }
        *total += 1;
        per_ip.insert(ip, mine + 1);
        Some(Slot { open: self.clone(), ip })
    }

    fn total(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.open.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *counts;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` (TLS when `tls` is given) until `shutdown` completes, then
/// lets open requests finish for up to 5 s.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let open = Arc::new(Open::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or the like: wait a little instead of spinning.
                    tracing::warn!("accept error: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(slot) = open.take(peer.ip(), &limits) else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(%peer, refused, "connection cap reached: connection closed at once");
            }
            continue; // dropping the stream closes it
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, peer, router.clone(), tls.clone(), limits.header_timeout, stop_rx.clone(), slot));
    }
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while open.total() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
    _slot: Slot,
) {
    match tls {
        Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls_stream)) => serve_io(TokioIo::new(tls_stream), peer, router, header_timeout, stop).await,
            Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
        None => serve_io(TokioIo::new(stream), peer, router, header_timeout, stop).await,
    }
}

async fn serve_io<I>(io: I, peer: SocketAddr, router: Router, header_timeout: Duration, mut stop: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.map(axum::body::Body::new)
    });
    // HTTP/1.1 only: hyper-util's auto builder first waits for enough bytes to tell HTTP/2 from
    // HTTP/1 with no timeout, so a silent connection would never be timed out.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(io, TowerToHyperService::new(service))
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(%peer, "connection ended: {e}");
                }
                return;
            }
            _ = stop.changed() => conn.as_mut().graceful_shutdown(),
        }
    }
}

/// A TLS acceptor for a certificate chain and key in PEM files, HTTP/1.1 only.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_in_all_and_per_address() {
        let limits =
            ConnectionLimits { max_connections: 4, max_per_ip: 2, header_timeout: Duration::from_secs(1), uncapped: Arc::new(vec![]) };
        let open = Arc::new(Open::default());
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let s1 = open.take(a, &limits).unwrap();
        let _s2 = open.take(a, &limits).unwrap();
        assert!(open.take(a, &limits).is_none(), "per address");
        let _s3 = open.take(b, &limits).unwrap();
        let _s4 = open.take(b, &limits).unwrap();
        assert!(open.take(b, &limits).is_none() && open.take("127.0.0.4".parse().unwrap(), &limits).is_none(), "in all");
        drop(s1);
        assert!(open.take(a, &limits).is_some(), "a closed connection gives its place back");
        let proxy = ConnectionLimits { uncapped: Arc::new(vec!["127.0.0.2/32".parse().unwrap()]), max_connections: 10, ..limits };
        let open = Arc::new(Open::default());
        let held: Vec<Slot> = (0..5).filter_map(|_| open.take(a, &proxy)).collect();
        assert_eq!(held.len(), 5, "a trusted proxy has only the overall cap");
    }
}
