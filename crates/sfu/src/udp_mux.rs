//! One UDP port per worker, many transports: a datagram belongs to the transport whose local
//! ICE ufrag its STUN binding request names (first contact), then to the transport its
//! source address was seen with.
use std::collections::HashMap;
use std::net::SocketAddr;

use str0m::ice::StunMessage;

use crate::ids::TransportId;

/// Where a datagram goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub transport: TransportId,
    /// The client's ICE ufrag, when the datagram is a binding request (ICE-lite needs it and
    /// mediasoup-client never signals it).
    pub remote_ufrag: Option<String>,
}

#[derive(Default)]
pub(crate) struct UdpMux {
    by_ufrag: HashMap<String, TransportId>,
    by_addr: HashMap<SocketAddr, TransportId>,
}

impl UdpMux {
    pub fn add(&mut self, local_ufrag: &str, id: TransportId) {
        self.by_ufrag.insert(local_ufrag.to_string(), id);
    }

    pub fn remove(&mut self, local_ufrag: &str, id: &TransportId) {
        self.by_ufrag.remove(local_ufrag);
        self.by_addr.retain(|_, t| t != id);
    }

    /// The transport for a datagram from `src`, or None (unknown sender: drop it).
    pub fn route(&mut self, src: SocketAddr, data: &[u8]) -> Option<Route> {
        // STUN: first two bits zero, 20-byte header (RFC 5389); a cheap test before parsing.
        if data.len() >= 20 && data[0] < 2 {
            if let Ok(msg) = StunMessage::parse(data) {
                if msg.is_binding_request() {
                    if let Some((local, remote)) = msg.split_username() {
                        if let Some(id) = self.by_ufrag.get(local).cloned() {
                            self.by_addr.insert(src, id.clone());
                            return Some(Route { transport: id, remote_ufrag: Some(remote.to_string()) });
                        }
                    }
                }
            }
        }
        self.by_addr.get(&src).map(|id| Route { transport: id.clone(), remote_ufrag: None })
    }

    #[cfg(test)]
    fn known_addrs(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STUN binding request with USERNAME "local:remote", PRIORITY and a MESSAGE-INTEGRITY
    /// that is not checked here (str0m checks it).
    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        let mut attr = |typ: u16, value: &[u8]| {
            attrs.extend_from_slice(&typ.to_be_bytes());
            attrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
            attrs.extend_from_slice(value);
            while attrs.len() % 4 != 0 {
                attrs.push(0);
            }
        };
        attr(0x0006, username.as_bytes());
        attr(0x0024, &[0x6e, 0, 0x1e, 0xff]);
        attr(0x0008, &[0u8; 20]);
        let mut m = Vec::new();
        m.extend_from_slice(&0x0001u16.to_be_bytes());
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&0x2112_a442u32.to_be_bytes());
        m.extend_from_slice(&[7u8; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    fn id(n: u64) -> TransportId {
        serde_json::from_value(serde_json::json!(format!("w0-t{n}-00000000"))).unwrap()
    }

    #[test]
    fn stun_names_the_transport_then_the_address_sticks() {
        let mut mux = UdpMux::default();
        mux.add("serverufrag", id(1));
        mux.add("other", id(2));
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        let rtp = [0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(mux.route(a, &rtp), None, "unknown address before any STUN");
        let req = binding_request("serverufrag:clientufrag");
        let r = mux.route(a, &req).unwrap();
        assert_eq!(r, Route { transport: id(1), remote_ufrag: Some("clientufrag".into()) });
        assert_eq!(mux.route(a, &rtp), Some(Route { transport: id(1), remote_ufrag: None }));
        assert_eq!(mux.route(b, &rtp), None);
        assert_eq!(mux.route(b, &binding_request("nobody:x")), None, "unknown ufrag");
        mux.remove("serverufrag", &id(1));
        assert_eq!(mux.route(a, &rtp), None, "closed transports forget their addresses");
        assert_eq!(mux.route(a, &req), None);
        assert_eq!(mux.known_addrs(), 0);
    }

    #[test]
    fn garbage_is_never_routed_and_never_panics() {
        let mut mux = UdpMux::default();
        mux.add("u", id(1));
        let mut rng = fastrand::Rng::with_seed(3);
        let src: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let good = binding_request("u:r");
        for i in 0..20_000 {
            let mut data = if i % 2 == 0 {
                (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect::<Vec<u8>>()
            } else {
                let mut d = good.clone();
                d.truncate(rng.usize(0..d.len()));
                d
            };
            if i % 3 == 0 && data.len() > 4 {
                data[0] = 0;
            }
            let _ = mux.route(src, &data);
        }
        assert_eq!(mux.known_addrs(), 0, "no truncated request bound an address");
    }
}
