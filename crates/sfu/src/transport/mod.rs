//! Transports: what a worker keeps of every transport, whichever its kind, and the kinds
//! themselves (WebRTC for browsers, plain RTP for recorders). The worker reaches a kind's
//! specifics only through [`Transport::webrtc_mut`] / [`Transport::plain`].
pub(crate) mod cert;
pub(crate) mod codecs;
mod fingerprint;
#[cfg(feature = "fuzzing")]
pub(crate) use fingerprint::remote_fingerprint;
pub(crate) mod path;
pub(crate) mod plain;
pub(crate) mod quality;
pub(crate) mod webrtc;

use crate::ids::{Key, TransportId};
pub(crate) use plain::PlainTransport;
pub(crate) use webrtc::WebRtcTransport;

pub(crate) enum Kind {
    WebRtc(Box<WebRtcTransport>),
    Plain(PlainTransport),
}

/// One transport of a router, with the producers and consumers on it.
pub(crate) struct Transport {
    id: TransportId,
    router: Key,
    producers: Vec<Key>,
    consumers: Vec<Key>,
    kind: Kind,
}

impl Transport {
    pub fn new(id: TransportId, router: Key, kind: Kind) -> Transport {
        Transport { id, router, producers: Vec::new(), consumers: Vec::new(), kind }
    }

    pub fn id(&self) -> &TransportId {
        &self.id
    }

    pub fn router(&self) -> Key {
        self.router
    }

    pub fn producers(&self) -> &[Key] {
        &self.producers
    }

    pub fn consumers(&self) -> &[Key] {
        &self.consumers
    }

    pub fn add_producer(&mut self, key: Key) {
        self.producers.push(key);
    }

    pub fn add_consumer(&mut self, key: Key) {
        self.consumers.push(key);
    }

    /// Forgets a producer or consumer of this transport.
    pub fn remove(&mut self, key: Key) {
        self.producers.retain(|k| *k != key);
        self.consumers.retain(|k| *k != key);
    }

    pub fn webrtc(&self) -> Option<&WebRtcTransport> {
        match &self.kind {
            Kind::WebRtc(t) => Some(t),
            Kind::Plain(_) => None,
        }
    }

    pub fn webrtc_mut(&mut self) -> Option<&mut WebRtcTransport> {
        match &mut self.kind {
            Kind::WebRtc(t) => Some(t),
            Kind::Plain(_) => None,
        }
    }

    pub fn plain(&self) -> Option<&PlainTransport> {
        match &self.kind {
            Kind::Plain(t) => Some(t),
            Kind::WebRtc(_) => None,
        }
    }

    /// Whether media can be sent now: a WebRTC transport once DTLS is up, a plain one always.
    pub fn is_connected(&self) -> bool {
        match &self.kind {
            Kind::WebRtc(t) => t.is_connected(),
            Kind::Plain(_) => true,
        }
    }
}
