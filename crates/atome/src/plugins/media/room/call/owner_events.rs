//! What the engine tells a call about one peer's objects, passed on to their owner only
//! (mediasoup-demo's `producerScore`, `consumerLayersChanged` and `consumerScore`); nothing goes
//! to a detached session (its socket is gone).
use sfu::{ConsumerId, ProducerId};

use super::super::peer::Peer;
use super::Room;
use crate::plugins::media::messages::ServerMessage;

/// The object an engine event is about.
enum Object {
    Producer(ProducerId),
    Consumer(ConsumerId),
}

impl Object {
    fn owned_by(&self, peer: &Peer) -> bool {
        match self {
            Object::Producer(id) => peer.producers.contains_key(id),
            Object::Consumer(id) => peer.consumers.contains_key(id),
        }
    }
}

impl Room {
    /// A producer's score, a consumer's layers or score changed: the object's owner hears it.
    pub(super) fn owner_event(&self, event: sfu::EngineEvent) {
        let (object, msg) = match event {
            sfu::EngineEvent::ProducerScore { producer, score, .. } => {
                (Object::Producer(producer.clone()), ServerMessage::ProducerScore { producer_id: producer, score })
            }
            sfu::EngineEvent::ConsumerLayersChanged { consumer, spatial, temporal, .. } => (
                Object::Consumer(consumer.clone()),
                ServerMessage::ConsumerLayersChanged { consumer_id: consumer, spatial_layer: spatial, temporal_layer: temporal },
            ),
            sfu::EngineEvent::ConsumerScore { consumer, score, producer_score, .. } => {
                (Object::Consumer(consumer.clone()), ServerMessage::ConsumerScore { consumer_id: consumer, score, producer_score })
            }
            _ => return,
        };
        let Some(owner) = self.peers.values().find(|p| object.owned_by(p)) else { return };
        if owner.detached_until.is_none() {
            let _ = owner.tx.try_send(msg.render(None));
        }
    }
}
