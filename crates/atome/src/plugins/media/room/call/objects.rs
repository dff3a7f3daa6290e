//! A peer's media objects in a call: whether a transport, producer or consumer is the peer's
//! own, and creating them within the per-socket and per-user caps.
use sfu::rtp_parameters::{MediaKind, RtpCapabilities, RtpParameters};
use sfu::{ConsumerId, ProducerId, TransportId};

use super::super::peer::Consuming;
use super::super::{PeerId, Reply};
use super::Room;
use crate::plugins::media::error::SignalError;
use crate::plugins::media::events::Happened;
use crate::plugins::media::messages::{Direction, ProducerAppData, ProducerInfo, ServerMessage};

impl Room {
    pub(super) fn own_transport(&self, peer: PeerId, id: &TransportId, direction: Option<Direction>) -> Result<(), SignalError> {
        match self.peers[&peer].transports.get(id) {
            Some(d) if direction.is_none_or(|want| want == *d) => Ok(()),
            Some(_) => Err(SignalError::refuse("wrong_direction", format!("transport {id} has the other direction"))),
            None => Err(SignalError::refuse("not_found", format!("unknown transport {:?}", id.as_str()))),
        }
    }

    pub(super) fn own_producer(&self, peer: PeerId, id: &ProducerId) -> Result<(), SignalError> {
        match self.peers[&peer].producers.contains_key(id) {
            true => Ok(()),
            false => Err(SignalError::refuse("not_found", format!("unknown producer {:?}", id.as_str()))),
        }
    }

    pub(super) fn own_consumer(&self, peer: PeerId, id: &ConsumerId) -> Result<(), SignalError> {
        match self.peers[&peer].consumers.contains_key(id) {
            true => Ok(()),
            false => Err(SignalError::refuse("not_found", format!("unknown consumer {:?}", id.as_str()))),
        }
    }

    pub(super) async fn create_transport(
        &mut self,
        peer: PeerId,
        direction: Direction,
        rtp_capabilities: Option<RtpCapabilities>,
    ) -> Reply {
        let limits = &self.shared.limits;
        let me = &self.peers[&peer];
        let max = limits.max_transports_per_socket;
        if me.transports.len() >= max {
            return Err(SignalError::refuse("too_many_transports", format!("at most {max} open transports per socket")));
        }
        // A receive transport is given the device's capabilities of `joinRoom`: whether it
        // sends transport-cc feedback decides if its downlink is estimated.
        let caps = match (direction, rtp_capabilities) {
            (Direction::Send, Some(caps)) => caps,
            (Direction::Send, None) => {
                return Err(SignalError::refuse("invalid_message", "a send transport needs `rtpCapabilities` (device.sendRtpCapabilities)"))
            }
            (Direction::Recv, _) => me.rtp_capabilities.clone(),
        };
        let max = limits.max_transports_per_user;
        if !self.shared.usage.take_transport(&me.user_id, max) {
            return Err(SignalError::refuse("too_many_transports", format!("at most {max} open transports per user, over all sockets")));
        }
        let options = match self.shared.engine.create_webrtc_transport(self.router.clone(), direction, Some(caps)).await {
            Ok(options) => options,
            Err(e) => {
                self.shared.usage.release_transports(&me.user_id, 1);
                return Err(e.into());
            }
        };
        if let Some(me) = self.peers.get_mut(&peer) {
            me.transports.insert(options.id.clone(), direction);
        }
        Ok(ServerMessage::TransportCreated { direction, transport_options: options })
    }

    pub(super) async fn produce(
        &mut self,
        peer: PeerId,
        transport: TransportId,
        kind: MediaKind,
        params: RtpParameters,
        app_data: Option<ProducerAppData>,
    ) -> Reply {
        self.own_transport(peer, &transport, Some(Direction::Send))?;
        let max = self.shared.limits.max_producers_per_socket;
        if self.peers[&peer].producers.len() >= max {
            return Err(SignalError::refuse("too_many_producers", format!("at most {max} producers per socket")));
        }
        let producer = self.shared.engine.produce(transport, kind, params).await?;
        let Some(me) = self.peers.get_mut(&peer) else { return Err(SignalError::refuse("not_in_room", "not in this room")) };
        me.producers.insert(producer.clone(), kind);
        if let Some(app_data) = &app_data {
            me.sources.insert(producer.clone(), app_data.clone());
        }
        let peer_user_id = me.user_id.clone();
        let info = ProducerInfo { producer_id: producer.clone(), kind, peer_user_id: peer_user_id.clone(), app_data };
        self.notify_all(Some(peer), &ServerMessage::NewProducer(info));
        self.publish(Happened::ProducerAdded { producer: producer.clone(), kind, peer_user_id });
        Ok(ServerMessage::Produced { producer_id: producer })
    }

    pub(super) async fn consume(&mut self, peer: PeerId, transport: TransportId, producer: ProducerId) -> Reply {
        self.own_transport(peer, &transport, Some(Direction::Recv))?;
        if !self.peers.values().any(|p| p.producers.contains_key(&producer)) {
            return Err(SignalError::refuse("not_found", format!("no producer {:?} in this room", producer.as_str())));
        }
        let me = &self.peers[&peer];
        let max = self.shared.limits.max_consumers_per_socket;
        if me.consumers.len() >= max {
            return Err(SignalError::refuse("too_many_consumers", format!("at most {max} consumers per socket")));
        }
        // One consumer per producer and transport: more would only multiply our egress.
        if me.consumers.values().any(|c| c.transport == transport && c.producer == producer) {
            return Err(SignalError::refuse("already_consuming", format!("producer {producer} is already consumed on this transport")));
        }
        let options = self.shared.engine.consume(transport.clone(), producer.clone(), me.rtp_capabilities.clone()).await?;
        if let Some(me) = self.peers.get_mut(&peer) {
            me.consumers.insert(options.id.clone(), Consuming { producer, transport });
        }
        Ok(ServerMessage::ConsumerCreated { consumer_options: options })
    }
}
