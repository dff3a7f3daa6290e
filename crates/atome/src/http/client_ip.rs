//! The client's address for per-address limits: the TCP peer, or, when the peer is a trusted
//! proxy (`--trusted-proxies`), the address the proxy reports in `Forwarded` (RFC 7239) or
//! `X-Forwarded-For`. Headers from anyone else are ignored: a client cannot pick its own address.
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use ipnet::IpNet;

/// The resolved client address of a request (an extension set by [`layer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Parses `--trusted-proxies` entries: a CIDR (`10.0.0.0/8`) or a single address.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an address nor a CIDR range"))
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|net| net.contains(&ip))
}

/// One `for=` value of RFC 7239 (`192.0.2.1`, `"192.0.2.1:4711"`, `"[2001:db8::1]:4711"`).
fn node_ip(value: &str) -> Option<IpAddr> {
    let v = value.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.parse().ok().or_else(|| v.rsplit_once(':').and_then(|(host, _port)| host.parse().ok()))
}

/// The addresses a proxy chain reports, client first: `Forwarded` if present, else
/// `X-Forwarded-For` (every header line, in order). `None` when a value is unreadable.
fn forwarded_chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let forwarded: Vec<&str> = headers.get_all("forwarded").iter().filter_map(|v| v.to_str().ok()).collect();
    if !forwarded.is_empty() {
        let mut out = Vec::new();
        for element in forwarded.iter().flat_map(|line| line.split(',')) {
            let node = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v)
            })?;
            out.push(node_ip(node)?);
        }
        return Some(out);
    }
    let xff: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    xff.iter().flat_map(|line| line.split(',')).map(node_ip).collect()
}

/// The client address for a request from `peer`: past the trusted proxies, the right-most
/// address of the chain that is not itself a trusted proxy.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    if !trusted(peer, proxies) {
        return peer;
    }
    match forwarded_chain(headers) {
        Some(chain) if !chain.is_empty() => {
            chain.iter().rev().find(|ip| !trusted(**ip, proxies)).or(chain.first()).copied().unwrap_or(peer)
        }
        _ => peer,
    }
}

/// Middleware: sets [`ClientAddr`] on every request.
pub fn layer(proxies: Arc<Vec<IpNet>>) -> impl Fn(Request) -> std::future::Ready<Request> + Clone + Send + Sync + 'static {
    move |mut req: Request| {
        let peer = req.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|ConnectInfo(a)| a.ip());
        if let Some(peer) = peer {
            let ip = resolve(peer, req.headers(), &proxies);
            req.extensions_mut().insert(ClientAddr(ip));
        }
        std::future::ready(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn headers_count_only_from_trusted_proxies() {
        let proxies = vec![parse_net("10.0.0.0/8").unwrap(), parse_net("127.0.0.1").unwrap()];
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(resolve(ip("203.0.113.9"), &h, &proxies), ip("203.0.113.9"), "an untrusted peer's header is ignored");
        assert_eq!(resolve(ip("10.1.2.3"), &h, &proxies), ip("198.51.100.7"));
        assert_eq!(resolve(ip("10.1.2.3"), &headers(&[]), &proxies), ip("10.1.2.3"), "no header: the proxy itself");
    }

    #[test]
    fn a_client_cannot_prepend_its_own_address() {
        let proxies = vec![parse_net("10.0.0.0/8").unwrap()];
        // The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the real address.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7")]);
        assert_eq!(resolve(ip("10.0.0.5"), &h, &proxies), ip("198.51.100.7"));
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "198.51.100.7, 10.0.0.9")]);
        assert_eq!(resolve(ip("10.0.0.5"), &h, &proxies), ip("198.51.100.7"), "two lines, a second proxy");
    }

    #[test]
    fn forwarded_takes_precedence_and_reads_ports_and_ipv6() {
        let proxies = vec![parse_net("10.0.0.0/8").unwrap()];
        let h = headers(&[("forwarded", r#"for=192.0.2.60;proto=http, for="[2001:db8::1]:4711""#), ("x-forwarded-for", "9.9.9.9")]);
        assert_eq!(resolve(ip("10.0.0.5"), &h, &proxies), ip("2001:db8::1"));
        let h = headers(&[("forwarded", r#"for="192.0.2.60:80""#)]);
        assert_eq!(resolve(ip("10.0.0.5"), &h, &proxies), ip("192.0.2.60"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(resolve(ip("10.0.0.5"), &h, &proxies), ip("10.0.0.5"), "unreadable: the proxy itself");
    }

    #[test]
    fn entries_parse() {
        assert!(parse_net("192.168.0.0/16").is_ok() && parse_net("::1").is_ok() && parse_net(" 10.0.0.1 ").is_ok());
        assert!(parse_net("10.0.0.0/33").is_err() && parse_net("proxy").is_err());
    }
}
