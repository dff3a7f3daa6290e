//! Errors per engine operation, after mediasoup's Rust crate (`ProduceError`, `ConsumeError`,
//! ...). Each has a stable signaling code ([`ErrorCode::code`]), listed in
//! docs/signaling-errors.md; the texts are for people and may change.
use std::net::SocketAddr;

use crate::ortc::OrtcError;
use crate::Direction;

/// The stable signaling code of an error (`not_found`, `invalid_parameters`, ...).
pub trait ErrorCode {
    fn code(&self) -> &'static str;
}

/// Why the call itself failed, whatever the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The worker stopped for good (faults repeated) or the engine is shutting down.
    #[error("the media worker has stopped")]
    WorkerGone,
    /// The worker failed while handling this operation; the objects it touched were closed.
    #[error("the media worker failed on this operation; the objects involved were closed")]
    Fault,
}

impl ErrorCode for CallError {
    fn code(&self) -> &'static str {
        match self {
            CallError::WorkerGone => "worker_unavailable",
            CallError::Fault => "internal",
        }
    }
}

/// [`crate::Engine::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start a worker thread: {0}")]
    Spawn(std::io::Error),
    #[error("media codecs: {0}")]
    Ortc(#[from] OrtcError),
}

/// Defines an operation's error enum: its variants and their codes, and a `Call` variant for
/// [`CallError`]. After `ortc;` it also has an `Ortc` variant for [`OrtcError`] (its own code).
macro_rules! operation_error {
    ($(#[$doc:meta])* $name:ident { ortc; $($(#[$attr:meta])* $variant:ident $(($($field:ty),+))? => $code:expr,)* }) => {
        $(#[$doc])*
        #[derive(Debug, thiserror::Error)]
        pub enum $name {
            $($(#[$attr])* $variant $(($($field),+))?,)*
            #[error(transparent)]
            Ortc(#[from] OrtcError),
            #[error(transparent)]
            Call(#[from] CallError),
        }

        impl ErrorCode for $name {
            fn code(&self) -> &'static str {
                match self {
                    $($name::$variant { .. } => $code,)*
                    $name::Ortc(e) => e.code(),
                    $name::Call(e) => e.code(),
                }
            }
        }
    };
    ($(#[$doc:meta])* $name:ident { $($(#[$attr:meta])* $variant:ident $(($($field:ty),+))? => $code:expr,)* }) => {
        $(#[$doc])*
        #[derive(Debug, thiserror::Error)]
        pub enum $name {
            $($(#[$attr])* $variant $(($($field),+))?,)*
            #[error(transparent)]
            Call(#[from] CallError),
        }

        impl ErrorCode for $name {
            fn code(&self) -> &'static str {
                match self {
                    $($name::$variant { .. } => $code,)*
                    $name::Call(e) => e.code(),
                }
            }
        }
    };
}

operation_error! {
    /// `create_router` / `close_router`.
    RouterError {
        #[error("unknown router")]
        UnknownRouter => "not_found",
    }
}

operation_error! {
    /// `create_webrtc_transport` / `create_plain_transport`.
    CreateTransportError {
        ortc;
        #[error("unknown router")]
        UnknownRouter => "not_found",
        #[error("a send transport needs the client's rtpCapabilities (device.sendRtpCapabilities)")]
        MissingSendCapabilities => "invalid_parameters",
        /// str0m could not set the transport up (certificate, candidate); see the text.
        #[error("transport setup: {0}")]
        Setup(String) => "internal",
    }
}

operation_error! {
    /// `connect_transport`.
    ConnectError {
        #[error("unknown transport")]
        UnknownTransport => "not_found",
        #[error("the transport is already connected")]
        AlreadyConnected => "already_connected",
        /// str0m verifies DTLS fingerprints of sha-256 and sha-1 only (mediasoup also takes
        /// sha-224/384/512).
        #[error("DTLS fingerprint algorithm {0:?} is not supported: give a sha-256 or sha-1 fingerprint")]
        UnsupportedFingerprint(String) => "unsupported_fingerprint",
        /// An unknown algorithm, an unreadable value or no fingerprint at all.
        #[error("invalid parameters: {0}")]
        InvalidFingerprint(String) => "invalid_parameters",
        #[error("DTLS: {0}")]
        Dtls(String) => "internal",
    }
}

operation_error! {
    /// `close_transport`.
    TransportError {
        #[error("unknown transport")]
        UnknownTransport => "not_found",
    }
}

operation_error! {
    /// `produce`.
    ProduceError {
        ortc;
        #[error("unknown transport")]
        UnknownTransport => "not_found",
        #[error("this operation needs a {0:?} transport")]
        WrongDirection(Direction) => "wrong_direction",
        /// mediasoup's RtpListener rule: an SSRC (media or RTX) is produced once per transport.
        #[error("ssrc {0} is already produced on this transport")]
        DuplicateSsrc(u32) => "duplicate_ssrc",
        /// mediasoup's RtpListener rule: a mid is produced once per transport.
        #[error("mid {0:?} is already produced on this transport")]
        DuplicateMid(String) => "duplicate_mid",
        #[error("invalid parameters: payload type {0} is not in the rtpCapabilities given at createTransport")]
        UnknownPayloadType(u8) => "invalid_parameters",
        /// Rebuilding the send transport with the producer's extension ids failed.
        #[error("transport setup: {0}")]
        Setup(String) => "internal",
    }
}

operation_error! {
    /// `consume`.
    ConsumeError {
        ortc;
        #[error("unknown transport")]
        UnknownTransport => "not_found",
        #[error("unknown producer")]
        UnknownProducer => "not_found",
        #[error("the producer belongs to another router")]
        OtherRouter => "not_found",
        #[error("this operation needs a {0:?} transport")]
        WrongDirection(Direction) => "wrong_direction",
    }
}

operation_error! {
    /// `pause_producer`, `resume_producer`, `close_producer`, `request_keyframe`.
    ProducerError {
        #[error("unknown producer")]
        UnknownProducer => "not_found",
    }
}

operation_error! {
    /// `pause_consumer`, `resume_consumer`.
    ConsumerError {
        #[error("unknown consumer")]
        UnknownConsumer => "not_found",
    }
}
