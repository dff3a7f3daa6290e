//! Handles on a live worker for the fuzz targets (feature `fuzzing`): the sizes of its tables,
//! so a target can check that nothing grows without bound, and known SRTP keys on a transport,
//! so a target can send authenticated RTP and RTCP as its peer. Not an API.
use super::Worker;
use crate::ids::TransportId;

/// The sizes of a worker's tables and queues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    pub routers: usize,
    pub transports: usize,
    pub producers: usize,
    pub consumers: usize,
    /// ufrag -> transport entries.
    pub by_ufrag: usize,
    /// Peer address -> transport entries.
    pub by_addr: usize,
    /// The most peer addresses one transport has.
    pub max_addrs_per_transport: usize,
    /// Transports marked for a poll, being polled, found dead.
    pub dirty: usize,
    pub polling: usize,
    pub dead: usize,
    /// Datagrams and events not yet taken with the polls.
    pub transmits: usize,
    pub events: usize,
    /// Datagrams buffered by send transports waiting for their first produce.
    pub pending: usize,
    /// Datagrams held by sequence guards, and the number of guards.
    pub held: usize,
    pub guards: usize,
    /// Sum of the routers' transport lists and of the producers' consumer lists.
    pub router_entries: usize,
    pub producer_consumer_entries: usize,
}

impl Worker {
    #[doc(hidden)]
    pub fn fuzz_footprint(&self) -> Footprint {
        let webrtc = || self.transports.values().filter_map(|t| t.webrtc());
        let mut per_transport: crate::ids::FastMap<crate::ids::Key, usize> = Default::default();
        for k in self.by_addr.values() {
            *per_transport.entry(*k).or_default() += 1;
        }
        Footprint {
            routers: self.routers.len(),
            transports: self.transports.len(),
            producers: self.producers.len(),
            consumers: self.consumers.len(),
            by_ufrag: self.by_ufrag.len(),
            by_addr: self.by_addr.len(),
            max_addrs_per_transport: per_transport.values().copied().max().unwrap_or(0),
            dirty: self.dirty.len(),
            polling: self.polling.len(),
            dead: self.dead.len(),
            transmits: self.out.len(),
            events: self.events.len(),
            pending: webrtc().map(|t| t.pending_len()).sum(),
            held: webrtc().map(|t| t.held_len()).sum(),
            guards: webrtc().map(|t| t.guards_len()).sum(),
            router_entries: self.routers.values().map(|r| r.transports_len()).sum(),
            producer_consumer_entries: self.producers.values().map(|p| p.consumers().len()).sum(),
        }
    }

    /// Installs known SRTP keying material on a WebRTC transport after its DTLS handshake (see
    /// str0m's `Rtc::_set_srtp_keys`); false if there is no such transport.
    #[doc(hidden)]
    pub fn fuzz_set_srtp_keys(
        &mut self,
        id: &TransportId,
        material: &[u8],
        profile: str0m::crypto::dtls::SrtpProfile,
        active: bool,
    ) -> bool {
        let Some(key) = self.transport_key(id) else { return false };
        let Some(t) = self.transports.get_mut(&key).and_then(|t| t.webrtc_mut()) else { return false };
        t.set_srtp_keys(material, profile, active);
        true
    }
}
