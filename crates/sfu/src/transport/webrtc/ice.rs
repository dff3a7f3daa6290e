//! A WebRTC transport's ICE side as an ICE-lite server: which binding requests are its peer's,
//! the peer's addresses and the media path (see `super::path`), the remote ufrag sniffed from
//! the first request, ICE restarts, and the parameters and candidates the client is given.
use std::net::SocketAddr;
use std::time::Instant;

use str0m::ice::{IceCreds, StunMessage};
use str0m::net::Protocol;
use str0m::{Candidate, CandidateKind};

use super::{random_token, WebRtcTransport};
use crate::rtp_parameters::{IceCandidate, IceParameters};

impl WebRtcTransport {
    /// Whether a STUN message carries a MESSAGE-INTEGRITY made with this transport's ICE
    /// password (what only its peer can make; str0m checks it again when it handles it).
    pub fn stun_authentic(&self, msg: &StunMessage) -> bool {
        let hmac = str0m::crypto::from_feature_flags().sha1_hmac_provider;
        msg.verify(self.creds.pass.as_bytes(), |key, parts| hmac.sha1_hmac(key, parts))
    }
    /// The peer confirmed `src` (an authentic binding request came from it). Returns the
    /// address forgotten to make room, if any (see [`super::path::MAX_PEER_ADDRS`]).
    pub fn confirm_addr(&mut self, src: (SocketAddr, Protocol)) -> Option<(SocketAddr, Protocol)> {
        self.peer_addrs.confirm(src)
    }
    /// The worker maps `src` to another transport now.
    pub fn forget_addr(&mut self, src: (SocketAddr, Protocol)) {
        self.peer_addrs.forget(src)
    }
    /// An authentic binding request from `src` (before str0m handles it): a nomination of
    /// another path while the current one is silent abandons the current one, and a path
    /// abandoned before comes back (see [`MediaPath`]). The peer's candidates are all peer
    /// reflexive to str0m (mediasoup-client signals none), which is what is matched here.
    pub fn peer_checked(&mut self, now: Instant, msg: &StunMessage<'_>, proto: Protocol, src: SocketAddr) {
        let change = self.path.checked(proto, src, msg.use_candidate(), now);
        let prflx =
            |proto, addr, prio| Candidate::from_parts("peer".into(), 1, proto, prio, addr, CandidateKind::PeerReflexive, None, None, None);
        if change.revive {
            self.rtc.add_remote_candidate(prflx(proto, src, msg.prio().unwrap_or(1)));
        }
        if let Some((proto, addr)) = change.abandon {
            tracing::debug!(%addr, ?proto, to = %src, "the peer nominated another path; the silent one is abandoned");
            self.rtc.direct_api().invalidate_candidate(&prflx(proto, addr, 1));
        }
    }
    /// Whether the peer's media path moved (ICE restarted, a network change) since the last
    /// call; see [`MediaPath`].
    pub fn take_path_moved(&mut self) -> bool {
        self.path.take_moved()
    }
    /// ICE-lite answers only once it knows the remote ufrag, and mediasoup-client never sends
    /// it: it is taken from the first STUN request (after each rebuild). A request with another
    /// client ufrag is the client restarting ICE (RTCPeerConnection.restartIce): its ufrag is
    /// taken once the request proves it knows our password (MESSAGE-INTEGRITY, RFC 8445 7.3), so
    /// nobody else can move the transport to a ufrag of theirs.
    pub fn learn_remote_ufrag(&mut self, request: &StunMessage<'_>, remote: &str) {
        if self.frozen || self.remote_ufrag.as_deref() == Some(remote) {
            return;
        }
        if self.remote_ufrag.is_some() {
            if !self.stun_authentic(request) {
                return;
            }
            tracing::debug!("the client restarted ICE (new ufrag)");
        }
        self.rtc.direct_api().set_remote_ice_credentials(IceCreds { ufrag: remote.to_string(), pass: String::new() });
        self.remote_ufrag = Some(remote.to_string());
    }
    /// restartIce (mediasoup's WebRtcTransport.restartIce): new local ufrag and password; the
    /// client then restarts ICE with them. Returns the new parameters.
    pub fn restart_ice(&mut self) -> IceParameters {
        self.creds = IceCreds { ufrag: random_token(16), pass: random_token(32) };
        self.rtc.direct_api().set_local_ice_credentials(self.creds.clone());
        self.ice_parameters()
    }
    /// The host candidates: UDP, then TCP passive with a lower priority (mediasoup's values).
    pub(super) fn ice_candidates(&self) -> Vec<IceCandidate> {
        let ip = self.candidate_addr.ip().to_string();
        let candidate = |protocol: &str, priority: u32, tcp_type: Option<&str>| IceCandidate {
            foundation: format!("{protocol}candidate"),
            priority,
            address: ip.clone(),
            ip: ip.clone(),
            protocol: protocol.into(),
            port: self.candidate_addr.port(),
            kind: "host".into(),
            tcp_type: tcp_type.map(String::from),
        };
        let mut candidates = vec![candidate("udp", 1_076_302_079, None)];
        if self.tcp {
            candidates.push(candidate("tcp", 1_076_276_479, Some("passive")));
        }
        candidates
    }
    pub(super) fn ice_parameters(&self) -> IceParameters {
        IceParameters { username_fragment: self.creds.ufrag.clone(), password: self.creds.pass.clone(), ice_lite: true }
    }
}
