//! Calls in progress: per room, its router and its peers with what each owns. The single source
//! of truth for authorization of signaling messages (a peer may only touch what it owns).
use std::collections::HashMap;

use serde_json::{json, Value};
use sfu::{ConsumerId, ProducerId, RouterId, TransportId};
use tokio::sync::mpsc;

use super::messages::Direction;

pub type PeerId = u64;

/// Messages queued to one peer's socket; a peer that lets it fill up is disconnected.
pub const PEER_QUEUE: usize = 256;

pub struct Peer {
    pub user_id: String,
    pub display_name: String,
    pub tx: mpsc::Sender<String>,
    pub transports: HashMap<TransportId, Direction>,
    pub producers: HashMap<ProducerId, String>,
    /// consumer -> what it receives and where
    pub consumers: HashMap<ConsumerId, Consuming>,
}

/// A consumer's producer and the (receive) transport it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consuming {
    pub producer: ProducerId,
    pub transport: TransportId,
}

impl Peer {
    pub fn new(user_id: String, display_name: String, tx: mpsc::Sender<String>) -> Peer {
        Peer { user_id, display_name, tx, transports: HashMap::new(), producers: HashMap::new(), consumers: HashMap::new() }
    }

    /// Whether this peer already consumes `producer` on `transport`.
    pub fn consumes(&self, transport: &TransportId, producer: &ProducerId) -> bool {
        self.consumers.values().any(|c| c.transport == *transport && c.producer == *producer)
    }

    /// Queues a notification (serialized JSON); false if the peer's queue is full or closed.
    pub fn notify(&self, msg: String) -> bool {
        self.tx.try_send(msg).is_ok()
    }
}

pub struct CallRoom {
    pub router: RouterId,
    pub peers: HashMap<PeerId, Peer>,
}

impl CallRoom {
    pub fn new(router: RouterId) -> CallRoom {
        CallRoom { router, peers: HashMap::new() }
    }

    /// Sends `msg` to every peer but `except`.
    pub fn broadcast(&self, except: PeerId, msg: &Value) {
        self.notify_all(Some(except), msg);
    }

    /// Sends `msg` to every peer but `except` (serialized once).
    pub fn notify_all(&self, except: Option<PeerId>, msg: &Value) {
        let text = msg.to_string();
        for (id, peer) in &self.peers {
            if Some(*id) != except && !peer.notify(text.clone()) {
                tracing::warn!(peer = id, "peer queue full or closed; notification dropped");
            }
        }
    }

    /// Which peer owns `producer`, if any.
    pub fn producer_owner(&self, producer: &ProducerId) -> Option<(PeerId, &Peer)> {
        self.peers.iter().find(|(_, p)| p.producers.contains_key(producer)).map(|(id, p)| (*id, p))
    }

    /// `existingProducers` for a newcomer.
    pub fn producers_except(&self, except: PeerId) -> Vec<Value> {
        self.peers
            .iter()
            .filter(|(id, _)| **id != except)
            .flat_map(|(_, peer)| {
                peer.producers
                    .iter()
                    .map(move |(producer, kind)| json!({"producer_id": producer.to_string(), "kind": kind, "peer_user_id": peer.user_id}))
            })
            .collect()
    }

    pub fn peers_except(&self, except: PeerId) -> Vec<Value> {
        self.peers
            .iter()
            .filter(|(id, _)| **id != except)
            .map(|(_, p)| json!({"peer_user_id": p.user_id, "display_name": p.display_name}))
            .collect()
    }

    /// A producer went away: forget every consumer of it and tell the room (all but `except`,
    /// the peer that closed it itself).
    pub fn producer_closed(&mut self, producer: &ProducerId, except: Option<PeerId>) {
        for peer in self.peers.values_mut() {
            peer.producers.remove(producer);
            peer.consumers.retain(|_, c| c.producer != *producer);
        }
        self.notify_all(except, &json!({"type": "producerClosed", "producer_id": producer.to_string()}));
    }

    /// The peer holding `transport`, if any.
    pub fn transport_owner(&self, transport: &TransportId) -> Option<PeerId> {
        self.peers.iter().find(|(_, p)| p.transports.contains_key(transport)).map(|(id, _)| *id)
    }
}
