//! Errors, one enum per area of the engine API. Every variant is something a caller (the
//! signaling layer) can act on; [`code`](ProduceError::code) gives a stable snake_case name.
use std::net::SocketAddr;

use crate::ortc::OrtcError;
use crate::Direction;

/// The worker thread that owns the object is gone (the engine is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the media worker has stopped")]
pub struct WorkerGone;

/// `Engine::start`.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start media worker thread: {0}")]
    Spawn(std::io::Error),
    #[error("invalid media codecs: {0}")]
    Codecs(#[from] OrtcError),
}

/// Routers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    #[error("unknown router")]
    UnknownRouter,
    #[error(transparent)]
    WorkerGone(#[from] WorkerGone),
}

/// Transports: create, connect, close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("unknown router")]
    UnknownRouter,
    #[error("unknown transport")]
    UnknownTransport,
    #[error("a send transport needs the client's rtpCapabilities (device.sendRtpCapabilities)")]
    MissingSendCapabilities,
    #[error("the transport is already connected")]
    AlreadyConnected,
    #[error("only WebRTC transports take dtlsParameters")]
    NotWebRtc,
    #[error("dtlsParameters has no fingerprint")]
    NoFingerprint,
    #[error("unreadable DTLS fingerprint {0:?}")]
    BadFingerprint(String),
    #[error("DTLS: {0}")]
    Dtls(String),
    #[error("ICE candidate: {0}")]
    Candidate(String),
    #[error(transparent)]
    WorkerGone(#[from] WorkerGone),
}

/// Producers: produce, pause, resume, close, keyframe requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    #[error("unknown transport")]
    UnknownTransport,
    #[error("unknown producer")]
    UnknownProducer,
    #[error("producing needs a send transport")]
    NotSendTransport,
    #[error(transparent)]
    Codecs(#[from] OrtcError),
    #[error("rtpParameters.encodings is empty")]
    NoEncoding,
    #[error("encodings[0].ssrc is required (simulcast by rid is not supported)")]
    NoSsrc,
    #[error("rtpParameters.mid is required")]
    NoMid,
    #[error("rtpParameters.mid must be 1 to 16 bytes")]
    BadMid,
    #[error("mid {0:?} is already used on this transport")]
    MidInUse(String),
    #[error("ssrc {0} is already produced on this transport")]
    SsrcInUse(u32),
    #[error("payload type {0} is not in the rtpCapabilities given at createTransport")]
    UnknownPayloadType(u8),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    WorkerGone(#[from] WorkerGone),
}

/// Consumers: consume, pause, resume, close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumeError {
    #[error("unknown transport")]
    UnknownTransport,
    #[error("unknown producer")]
    UnknownProducer,
    #[error("unknown consumer")]
    UnknownConsumer,
    #[error("consuming needs a {0:?} transport")]
    WrongDirection(Direction),
    #[error("the producer belongs to another router")]
    OtherRouter,
    #[error(transparent)]
    Codecs(#[from] OrtcError),
    #[error(transparent)]
    WorkerGone(#[from] WorkerGone),
}

impl RouterError {
    pub fn code(&self) -> &'static str {
        match self {
            RouterError::UnknownRouter => "unknown_router",
            RouterError::WorkerGone(_) => "engine_stopped",
        }
    }
}

impl TransportError {
    pub fn code(&self) -> &'static str {
        match self {
            TransportError::UnknownRouter => "unknown_router",
            TransportError::UnknownTransport => "unknown_transport",
            TransportError::MissingSendCapabilities
            | TransportError::NotWebRtc
            | TransportError::NoFingerprint
            | TransportError::BadFingerprint(_) => "invalid_parameters",
            TransportError::AlreadyConnected => "already_connected",
            TransportError::Dtls(_) | TransportError::Candidate(_) => "transport_failed",
            TransportError::WorkerGone(_) => "engine_stopped",
        }
    }
}

impl ProduceError {
    pub fn code(&self) -> &'static str {
        match self {
            ProduceError::UnknownTransport => "unknown_transport",
            ProduceError::UnknownProducer => "unknown_producer",
            ProduceError::NotSendTransport => "wrong_direction",
            ProduceError::Codecs(OrtcError::UnsupportedCodec(_)) => "unsupported_codec",
            ProduceError::Codecs(_)
            | ProduceError::NoEncoding
            | ProduceError::NoSsrc
            | ProduceError::NoMid
            | ProduceError::BadMid
            | ProduceError::UnknownPayloadType(_) => "invalid_parameters",
            ProduceError::MidInUse(_) | ProduceError::SsrcInUse(_) => "conflict",
            ProduceError::Transport(e) => e.code(),
            ProduceError::WorkerGone(_) => "engine_stopped",
        }
    }
}

impl ConsumeError {
    pub fn code(&self) -> &'static str {
        match self {
            ConsumeError::UnknownTransport => "unknown_transport",
            ConsumeError::UnknownProducer => "unknown_producer",
            ConsumeError::UnknownConsumer => "unknown_consumer",
            ConsumeError::WrongDirection(_) => "wrong_direction",
            ConsumeError::OtherRouter => "other_router",
            ConsumeError::Codecs(_) => "not_consumable",
            ConsumeError::WorkerGone(_) => "engine_stopped",
        }
    }
}

/// Any engine error, for callers that want one type (`?` converts every area's error).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    #[error(transparent)]
    WorkerGone(#[from] WorkerGone),
}

impl EngineError {
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Start(_) => "engine_start",
            EngineError::Router(e) => e.code(),
            EngineError::Transport(e) => e.code(),
            EngineError::Produce(e) => e.code(),
            EngineError::Consume(e) => e.code(),
            EngineError::WorkerGone(_) => "engine_stopped",
        }
    }
}
