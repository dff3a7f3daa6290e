//! Atome media engine: a mediasoup-compatible SFU built on str0m (sans-IO WebRTC).
//!
//! Object model after mediasoup: an [`Engine`] owns workers; a worker owns one UDP port and
//! every router, transport, producer and consumer placed on it. The [`worker::Worker`] is a
//! sans-IO state machine (datagrams, commands and time in; datagrams and events out); the
//! driver runs each on a thread with its socket and the clock. The handle sends each operation
//! to the worker its id names (the worker index is part of every id) and awaits the answer.
//! Layout and packet path: docs/architecture.md.
mod allocator;
mod codec;
mod consumer;
mod driver;
mod engine;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod h264;
pub mod ids;
mod layers;
pub mod ortc;
mod producer;
#[cfg(test)]
mod random_payloads;
mod rate;
mod repair;
mod router;
pub mod rtp_parameters;
pub mod seq;
pub mod seq_guard;
mod simulcast;
pub mod stats;
mod svc;
mod tcp;
mod transmit;
mod transport;
mod udp;
pub mod vp8;
pub mod vp9;
mod wake;
pub mod worker;

use serde::{Deserialize, Serialize};

pub use engine::{Engine, EngineConfig, WorkerInfo, WorkerState};
pub use error::{
    CallError, ConnectError, ConsumeError, ConsumerError, CreateTransportError, ErrorCode, ProduceError, ProducerError, RouterError,
    StartError, TransportError,
};
pub use ids::{ConsumerId, ProducerId, RouterId, TransportId};
use rtp_parameters::{DtlsParameters, IceCandidate, IceParameters, MediaKind, RtpParameters};
pub use transmit::{Protocol, Transmit};

/// What the engine decides on its own, for the signaling layer to pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// A transport was closed because its peer closed it (DTLS close) or went silent; its
    /// producers and consumers (listed) are closed too, and every consumer of those producers.
    TransportClosed {
        router: RouterId,
        transport: TransportId,
        producers: Vec<ProducerId>,
        consumers: Vec<ConsumerId>,
        reason: CloseReason,
    },
    /// A worker stopped for good (its faults repeated past recovery): every router on it and
    /// everything in them is gone, and no new router is placed on it.
    WorkerDied { worker: usize },
    /// A producer's score changed (mediasoup's `producer.on("score")`): 0..=10 from the loss
    /// of its last report interval (see [`stats::score`]); it starts at 10.
    ProducerScore { router: RouterId, producer: ProducerId, score: Vec<stats::EncodingScore> },
    /// The layers a consumer of a simulcast or SVC producer forwards changed (mediasoup's
    /// `consumer.on("layerschange")`): `spatial` is the producer's stream (encoding index) or
    /// the highest VP9 spatial layer (SID) sent, `temporal` the highest temporal layer sent.
    ConsumerLayersChanged { router: RouterId, consumer: ConsumerId, spatial: u8, temporal: u8 },
    /// A consumer's score changed (mediasoup's `consumer.on("score")`): `score` 0..=10 from the
    /// loss its receiver reports for the consumer's stream, `producer_score` its producer's
    /// (see [`EngineEvent::ProducerScore`]); told when either changes.
    ConsumerScore { router: RouterId, consumer: ConsumerId, score: u8, producer_score: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer ended DTLS, or its fingerprint did not match.
    PeerClosed,
    /// Nothing heard for the engine's idle timeout.
    Silent,
    /// The worker failed (panicked) while handling this transport; see the server log.
    Fault,
}

/// A WebRTC transport's one direction: `send` (client to server: produce) or `recv` (server to
/// client: consume).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Send,
    Recv,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebRtcTransportOptions {
    pub id: TransportId,
    pub ice_parameters: IceParameters,
    pub ice_candidates: Vec<IceCandidate>,
    pub dtls_parameters: DtlsParameters,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerOptions {
    pub id: ConsumerId,
    pub producer_id: ProducerId,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
}

/// Counters of objects alive and traffic, summed over workers.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct EngineStats {
    pub workers: usize,
    pub routers: usize,
    pub transports: usize,
    pub producers: usize,
    pub consumers: usize,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub rtp_forwarded: u64,
    pub keyframe_requests: u64,
    pub datagrams_dropped: u64,
    /// RTP packets kept from str0m by the sequence guard (far behind, or a jump never confirmed)
    /// or the transport-cc guard (a number str0m would extend below zero).
    pub rtp_guarded: u64,
    /// Producers not paused that received no RTP for 5 s (a gauge).
    pub producers_silent: usize,
}

/// One worker's figures, from [`Engine::worker_stats`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerStats {
    /// The worker's index (its UDP port is the base port + index).
    pub index: usize,
    /// Running and answering; false once it failed for good.
    pub up: bool,
    /// CPU time its thread has used, user + system, in seconds (read by the thread every 100 ms
    /// or so, so up to that much behind).
    pub cpu_seconds: f64,
    /// Its counters (`workers` = 1); `None` when it is not up.
    pub stats: Option<EngineStats>,
}

impl EngineStats {
    pub(crate) fn add(&mut self, o: &EngineStats) {
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
        self.rtp_guarded += o.rtp_guarded;
        self.producers_silent += o.producers_silent;
    }
}
