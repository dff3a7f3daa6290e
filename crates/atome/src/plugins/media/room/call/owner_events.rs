//! What the engine tells a call about one peer's objects, passed on to their owner only
//! (mediasoup-demo's `producerScore` and `consumerLayersChanged`); nothing goes to a detached
//! session (its socket is gone).
use sfu::{ConsumerId, ProducerId};

use super::Room;
use crate::plugins::media::messages::ServerMessage;

impl Room {
    /// A producer's score changed: its owner hears it (mediasoup-demo's `producerScore`).
    pub(super) fn producer_score(&self, producer: ProducerId, score: Vec<sfu::stats::EncodingScore>) {
        let Some(owner) = self.peers.values().find(|p| p.producers.contains_key(&producer)) else { return };
        if owner.detached_until.is_none() {
            let _ = owner.tx.try_send(ServerMessage::ProducerScore { producer_id: producer, score }.render(None));
        }
    }

    /// The layers a consumer receives changed: its owner hears it (mediasoup-demo's
    /// `consumerLayersChanged`).
    pub(super) fn consumer_layers(&self, consumer: ConsumerId, spatial: u8, temporal: u8) {
        let Some(owner) = self.peers.values().find(|p| p.consumers.contains_key(&consumer)) else { return };
        if owner.detached_until.is_none() {
            let msg = ServerMessage::ConsumerLayersChanged { consumer_id: consumer, spatial_layer: spatial, temporal_layer: temporal };
            let _ = owner.tx.try_send(msg.render(None));
        }
    }
}
