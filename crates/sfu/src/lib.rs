//! Atome media engine: a mediasoup-compatible SFU built on str0m (sans-IO WebRTC).
//!
//! Object model after mediasoup: an [`Engine`] owns worker threads; a worker owns one UDP socket
//! and every router, transport, producer and consumer placed on it. The handle sends commands
//! to the owning worker (the worker index is part of every id) and awaits the reply; workers
//! report what happens on their own as [`EngineEvent`]s.
mod consumer;
mod engine;
mod error;
mod events;
pub mod ids;
pub mod keyframe;
pub mod ortc;
mod plain_transport;
mod producer;
mod router;
pub mod rtp_parameters;
pub mod seq;
mod transport;
mod udp_mux;
mod webrtc_transport;
mod worker;

use serde::{Deserialize, Serialize};

pub use engine::{Engine, EngineConfig};
pub use error::{ConsumeError, EngineError, ProduceError, RouterError, StartError, TransportError, WorkerGone};
pub use events::{EngineEvent, TransportCloseReason};
pub use ids::{ConsumerId, ProducerId, RouterId, TransportId};
use rtp_parameters::{DtlsParameters, IceCandidate, IceParameters, MediaKind, RtpParameters};

/// A WebRTC transport sends to the client (`Recv`: the client receives) or receives from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Send,
    Recv,
}

/// What mediasoup-client's `device.createSendTransport/createRecvTransport` takes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebRtcTransportOptions {
    pub id: TransportId,
    pub ice_parameters: IceParameters,
    pub ice_candidates: Vec<IceCandidate>,
    pub dtls_parameters: DtlsParameters,
}

/// What mediasoup-client's `transport.consume` takes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerOptions {
    pub id: ConsumerId,
    pub producer_id: ProducerId,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
}

/// Counters of objects alive and of traffic, summed over workers.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct EngineStats {
    pub workers: usize,
    pub routers: usize,
    pub transports: usize,
    pub producers: usize,
    pub consumers: usize,
    /// Datagrams and bytes received and sent on the workers' sockets.
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// RTP packets handed to consumers.
    pub rtp_forwarded: u64,
    /// PLIs sent to producers.
    pub keyframe_requests: u64,
    /// Datagrams from unknown senders or that str0m rejected.
    pub datagrams_dropped: u64,
    /// Events lost because nobody read the event channel.
    pub events_dropped: u64,
}

impl EngineStats {
    fn add(&mut self, o: &EngineStats) {
        self.routers += o.routers;
        self.transports += o.transports;
        self.producers += o.producers;
        self.consumers += o.consumers;
        self.packets_in += o.packets_in;
        self.bytes_in += o.bytes_in;
        self.packets_out += o.packets_out;
        self.bytes_out += o.bytes_out;
        self.rtp_forwarded += o.rtp_forwarded;
        self.keyframe_requests += o.keyframe_requests;
        self.datagrams_dropped += o.datagrams_dropped;
        self.events_dropped += o.events_dropped;
    }
}

/// One transport's counters (datagrams on the wire, SRTP included).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TransportStats {
    pub id: TransportId,
    /// "webrtc" or "plain".
    pub kind: &'static str,
    pub direction: Option<Direction>,
    pub connected: bool,
    pub producers: usize,
    pub consumers: usize,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
}

/// One producer's counters (RTP packets and payload bytes received).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProducerStats {
    pub id: ProducerId,
    pub kind: MediaKind,
    pub paused: bool,
    pub consumers: usize,
    pub packets: u64,
    pub bytes: u64,
    pub keyframe_requests: u64,
}

/// One consumer's counters (RTP packets and payload bytes forwarded).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConsumerStats {
    pub id: ConsumerId,
    pub producer_id: ProducerId,
    pub kind: MediaKind,
    pub ssrc: u32,
    pub paused: bool,
    pub producer_paused: bool,
    pub packets: u64,
    pub bytes: u64,
}
