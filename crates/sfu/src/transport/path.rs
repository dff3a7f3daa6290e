//! Where a WebRTC transport's peer is: the addresses the worker maps to it (each confirmed by an
//! authentic binding request), and the address its media goes to (str0m's nominated pair), whose
//! move is a network change of the peer.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::Protocol;

/// Addresses one transport may be reached from at once: a browser's few host, reflexive and
/// relay candidates, over UDP and TCP.
pub(crate) const MAX_PEER_ADDRS: usize = 8;

/// The addresses the worker maps to one transport, least recently confirmed first.
#[derive(Debug, Default)]
pub(crate) struct PeerAddrs(Vec<(SocketAddr, Protocol)>);

impl PeerAddrs {
    /// The peer confirmed `src`. Returns the address forgotten to make room, if any.
    pub fn confirm(&mut self, src: (SocketAddr, Protocol)) -> Option<(SocketAddr, Protocol)> {
        self.0.retain(|a| *a != src);
        self.0.push(src);
        (self.0.len() > MAX_PEER_ADDRS).then(|| self.0.remove(0))
    }

    pub fn forget(&mut self, src: (SocketAddr, Protocol)) {
        self.0.retain(|a| *a != src);
    }
}

/// A media path the peer has sent nothing on for this long may be abandoned for one it
/// nominates (a live peer sends RTCP about every second, and consent checks every few).
pub(crate) const PATH_SILENT: Duration = Duration::from_secs(2);
/// Abandoned paths remembered (to take them back if the peer returns to one).
const MAX_ABANDONED: usize = 32;

/// The destination of the transport's media (SRTP and SRTCP; STUN answers go wherever a check
/// came from, DTLS only at the start), and whether it moved since last asked.
///
/// str0m (ICE-lite, controlled) sends on the nominated pair of highest priority and keeps a
/// pair it nominated until that pair fails; a client that moved to another network nominates
/// a new pair whose priority is often the same, so str0m would go on sending to the old address
/// for many seconds. mediasoup's IceServer sends on the pair nominated last. Here: when the
/// peer nominates another path and its current one has gone silent ([`PATH_SILENT`]), the
/// current one is abandoned (its remote candidate invalidated in str0m), and taken back if
/// the peer comes back to it.
#[derive(Debug, Default)]
pub(crate) struct MediaPath {
    current: Option<(Protocol, SocketAddr)>,
    /// When the peer last sent something from the current path's address.
    heard: Option<Instant>,
    moved: bool,
    abandoned: Vec<(Protocol, SocketAddr)>,
}

/// What to do with str0m's remote candidates after an authentic binding request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PathChange {
    /// The request's source was abandoned before: make it a candidate again (before str0m
    /// sees the request, which it ignores from a discarded candidate).
    pub revive: bool,
    /// Invalidate this path's remote candidate: the peer nominated another and went silent here.
    pub abandon: Option<(Protocol, SocketAddr)>,
}

impl MediaPath {
    /// A datagram goes out to `destination`; `first` is its first byte (RFC 7983: 128..=191 is
    /// RTP or RTCP).
    pub fn sent(&mut self, proto: Protocol, destination: SocketAddr, first: Option<u8>) {
        if !first.is_some_and(|b| (128..=191).contains(&b)) {
            return;
        }
        let to = Some((proto, destination));
        if self.current != to {
            self.moved |= self.current.is_some();
            self.current = to;
            self.heard = None;
        }
    }

    /// Where the media goes now.
    pub fn current(&self) -> Option<(Protocol, SocketAddr)> {
        self.current
    }

    /// A datagram from the peer at `src` arrived at `now`.
    pub fn heard(&mut self, proto: Protocol, src: SocketAddr, now: Instant) {
        if self.current == Some((proto, src)) {
            self.heard = Some(now);
        }
    }

    /// An authentic binding request from `src`, nominating its pair if `nominates`
    /// (USE-CANDIDATE).
    pub fn checked(&mut self, proto: Protocol, src: SocketAddr, nominates: bool, now: Instant) -> PathChange {
        let at = (proto, src);
        let revive = match self.abandoned.iter().position(|a| *a == at) {
            Some(i) => {
                self.abandoned.remove(i);
                true
            }
            None => false,
        };
        let silent = self.heard.is_none_or(|t| now.saturating_duration_since(t) >= PATH_SILENT);
        let abandon = match self.current {
            Some(current) if nominates && current != at && silent => Some(current),
            _ => None,
        };
        if let Some(old) = abandon {
            if self.abandoned.len() >= MAX_ABANDONED {
                self.abandoned.remove(0);
            }
            self.abandoned.push(old);
        }
        PathChange { revive, abandon }
    }

    /// Whether the media moved to another address (an ICE restart, a new network) since the
    /// last call: the peer has likely lost packets on the way.
    pub fn take_moved(&mut self) -> bool {
        std::mem::take(&mut self.moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([198, 18, 0, 1], port))
    }

    #[test]
    fn only_a_move_of_the_media_counts() {
        let mut path = MediaPath::default();
        path.sent(Protocol::Udp, addr(1), Some(0x80));
        assert!(!path.take_moved(), "the first destination is no move");
        path.sent(Protocol::Udp, addr(2), Some(0x01));
        path.sent(Protocol::Udp, addr(3), Some(22));
        path.sent(Protocol::Udp, addr(4), None);
        assert!(!path.take_moved(), "STUN and DTLS elsewhere are not the media moving");
        path.sent(Protocol::Udp, addr(1), Some(0x90));
        assert!(!path.take_moved());
        path.sent(Protocol::Udp, addr(5), Some(0x80));
        path.sent(Protocol::Udp, addr(5), Some(0xbf));
        assert!(path.take_moved());
        assert!(!path.take_moved(), "told once");
        path.sent(Protocol::Tcp, addr(5), Some(0x80));
        assert!(path.take_moved(), "the same address over TCP is another path");
    }

    #[test]
    fn a_silent_path_is_abandoned_for_a_nominated_one_and_taken_back_later() {
        let t0 = Instant::now();
        let mut path = MediaPath::default();
        let nominate = |path: &mut MediaPath, port, at| path.checked(Protocol::Udp, addr(port), true, at);
        assert_eq!(nominate(&mut path, 1, t0), PathChange::default(), "no media path yet");
        path.sent(Protocol::Udp, addr(1), Some(0x80));
        path.heard(Protocol::Udp, addr(1), t0);
        path.heard(Protocol::Udp, addr(9), t0 + Duration::from_secs(5)); // not the current path
                                                                         // The current path is alive: another nomination (a backup pair) changes nothing.
        assert_eq!(nominate(&mut path, 2, t0 + Duration::from_secs(1)), PathChange::default());
        // A check without USE-CANDIDATE never moves anything.
        assert_eq!(path.checked(Protocol::Udp, addr(2), false, t0 + Duration::from_secs(9)), PathChange::default());
        // Silent for PATH_SILENT: a nomination elsewhere abandons it.
        let later = t0 + PATH_SILENT;
        assert_eq!(nominate(&mut path, 2, later), PathChange { revive: false, abandon: Some((Protocol::Udp, addr(1))) });
        path.sent(Protocol::Udp, addr(2), Some(0x80));
        assert!(path.take_moved());
        // The peer comes back to the old address: it is taken back (and abandoned no more).
        let back = nominate(&mut path, 1, later + Duration::from_secs(1));
        assert_eq!(back, PathChange { revive: true, abandon: Some((Protocol::Udp, addr(2))) }, "the new path never heard from");
        assert!(!nominate(&mut path, 1, later + Duration::from_secs(2)).revive);
        // Nominating the current path itself abandons nothing.
        path.sent(Protocol::Udp, addr(1), Some(0x80));
        assert_eq!(nominate(&mut path, 1, later + Duration::from_secs(60)), PathChange::default());
    }

    #[test]
    fn at_most_max_peer_addrs_are_kept_the_oldest_forgotten() {
        let mut addrs = PeerAddrs::default();
        for port in 0..MAX_PEER_ADDRS as u16 {
            assert_eq!(addrs.confirm((addr(port), Protocol::Udp)), None);
        }
        assert_eq!(addrs.confirm((addr(0), Protocol::Udp)), None, "confirmed again: the newest now");
        assert_eq!(addrs.confirm((addr(100), Protocol::Udp)), Some((addr(1), Protocol::Udp)));
        addrs.forget((addr(0), Protocol::Udp));
        assert_eq!(addrs.confirm((addr(101), Protocol::Udp)), None, "room made by forgetting");
    }
}
