//! What the engine tells the server without being asked (relayed to clients by signaling).
use serde::Serialize;

use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};

/// Why the engine closed a transport on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TransportCloseReason {
    /// ICE consent expired or DTLS failed: the client is gone.
    Disconnected,
}

/// Events from the workers. Objects closed by an explicit call produce no event for
/// themselves; what closes *because of* them does (mediasoup's `transportclose`/`producerclose`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum EngineEvent {
    /// ICE and DTLS are up: media can flow on this transport.
    TransportConnected { router: RouterId, transport: TransportId },
    /// The engine closed a transport itself (its producers and consumers follow with events).
    TransportClosed { router: RouterId, transport: TransportId, reason: TransportCloseReason },
    /// A producer closed because its transport (or router) closed.
    ProducerClosed { router: RouterId, transport: TransportId, producer: ProducerId },
    /// A consumer closed because its producer went away; `transport` is the consumer's.
    ConsumerClosed { router: RouterId, transport: TransportId, consumer: ConsumerId, producer: ProducerId },
}
