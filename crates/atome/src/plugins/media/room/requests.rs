//! A call's answers to signaling messages: each checked against what the peer owns, then one
//! engine call, then the room's bookkeeping and notifications.
use sfu::rtp_parameters::{MediaKind, RtpCapabilities, RtpParameters};
use sfu::{ConsumerId, ProducerId, TransportId};

use super::{Consuming, PeerId, Reply, Room};
use crate::plugins::media::error::SignalError;
use crate::plugins::media::events::Happened;
use crate::plugins::media::messages::{ClientMessage, Direction, ProducerInfo, ServerMessage};

impl Room {
    pub(super) async fn request(&mut self, peer: PeerId, msg: ClientMessage) -> Reply {
        if !self.peers.contains_key(&peer) {
            return Err(SignalError::refuse("not_in_room", "not in this room"));
        }
        let engine = &self.shared.engine;
        match msg {
            ClientMessage::CreateTransport { direction, rtp_capabilities } => {
                self.create_transport(peer, direction, rtp_capabilities).await
            }
            ClientMessage::ConnectTransport { transport_id, dtls_parameters } => {
                self.own_transport(peer, &transport_id, None)?;
                engine.connect_transport(transport_id.clone(), dtls_parameters).await?;
                Ok(ServerMessage::TransportConnected { transport_id })
            }
            ClientMessage::Produce { transport_id, kind, rtp_parameters } => self.produce(peer, transport_id, kind, rtp_parameters).await,
            ClientMessage::Consume { transport_id, producer_id } => self.consume(peer, transport_id, producer_id).await,
            ClientMessage::ResumeConsumer { consumer_id } => {
                self.own_consumer(peer, &consumer_id)?;
                engine.resume_consumer(consumer_id.clone()).await?;
                Ok(ServerMessage::ConsumerResumed { consumer_id })
            }
            ClientMessage::PauseConsumer { consumer_id } => {
                self.own_consumer(peer, &consumer_id)?;
                engine.pause_consumer(consumer_id.clone()).await?;
                Ok(ServerMessage::ConsumerPaused { consumer_id })
            }
            ClientMessage::PauseProducer { producer_id } => {
                self.own_producer(peer, &producer_id)?;
                engine.pause_producer(producer_id.clone()).await?;
                self.notify_all(Some(peer), &ServerMessage::ProducerPaused { producer_id: producer_id.clone() });
                Ok(ServerMessage::ProducerPaused { producer_id })
            }
            ClientMessage::ResumeProducer { producer_id } => {
                self.own_producer(peer, &producer_id)?;
                engine.resume_producer(producer_id.clone()).await?;
                self.notify_all(Some(peer), &ServerMessage::ProducerResumed { producer_id: producer_id.clone() });
                Ok(ServerMessage::ProducerResumed { producer_id })
            }
            ClientMessage::CloseProducer { producer_id } => {
                self.own_producer(peer, &producer_id)?;
                engine.close_producer(producer_id.clone()).await?;
                self.producer_closed(&producer_id, Some(peer));
                Ok(ServerMessage::ProducerClosed { producer_id })
            }
            // The session answers these itself and never sends them here.
            ClientMessage::Auth { .. } | ClientMessage::JoinRoom { .. } | ClientMessage::LeaveRoom { .. } | ClientMessage::Ping => {
                Err(SignalError::refuse("internal", "not a call message"))
            }
        }
    }

    fn own_transport(&self, peer: PeerId, id: &TransportId, direction: Option<Direction>) -> Result<(), SignalError> {
        match self.peers[&peer].transports.get(id) {
            Some(d) if direction.is_none_or(|want| want == *d) => Ok(()),
            Some(_) => Err(SignalError::refuse("wrong_direction", format!("transport {id} has the other direction"))),
            None => Err(SignalError::refuse("not_found", format!("unknown transport {:?}", id.as_str()))),
        }
    }

    fn own_producer(&self, peer: PeerId, id: &ProducerId) -> Result<(), SignalError> {
        match self.peers[&peer].producers.contains_key(id) {
            true => Ok(()),
            false => Err(SignalError::refuse("not_found", format!("unknown producer {:?}", id.as_str()))),
        }
    }

    fn own_consumer(&self, peer: PeerId, id: &ConsumerId) -> Result<(), SignalError> {
        match self.peers[&peer].consumers.contains_key(id) {
            true => Ok(()),
            false => Err(SignalError::refuse("not_found", format!("unknown consumer {:?}", id.as_str()))),
        }
    }

    async fn create_transport(&mut self, peer: PeerId, direction: Direction, rtp_capabilities: Option<RtpCapabilities>) -> Reply {
        let limits = &self.shared.limits;
        let me = &self.peers[&peer];
        let max = limits.max_transports_per_socket;
        if me.transports.len() >= max {
            return Err(SignalError::refuse("too_many_transports", format!("at most {max} open transports per socket")));
        }
        let send_caps = match (direction, rtp_capabilities) {
            (Direction::Send, Some(caps)) => Some(caps),
            (Direction::Send, None) => {
                return Err(SignalError::refuse("invalid_message", "a send transport needs `rtpCapabilities` (device.sendRtpCapabilities)"))
            }
            (Direction::Recv, _) => None,
        };
        let max = limits.max_transports_per_user;
        if !self.shared.usage.take_transport(&me.user_id, max) {
            return Err(SignalError::refuse("too_many_transports", format!("at most {max} open transports per user, over all sockets")));
        }
        let options = match self.shared.engine.create_webrtc_transport(self.router.clone(), direction.into(), send_caps).await {
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

    async fn produce(&mut self, peer: PeerId, transport: TransportId, kind: MediaKind, params: RtpParameters) -> Reply {
        self.own_transport(peer, &transport, Some(Direction::Send))?;
        let max = self.shared.limits.max_producers_per_socket;
        if self.peers[&peer].producers.len() >= max {
            return Err(SignalError::refuse("too_many_producers", format!("at most {max} producers per socket")));
        }
        let producer = self.shared.engine.produce(transport, kind, params).await?;
        let Some(me) = self.peers.get_mut(&peer) else { return Err(SignalError::refuse("not_in_room", "not in this room")) };
        me.producers.insert(producer.clone(), kind);
        let peer_user_id = me.user_id.clone();
        let info = ProducerInfo { producer_id: producer.clone(), kind, peer_user_id: peer_user_id.clone() };
        self.notify_all(Some(peer), &ServerMessage::NewProducer(info));
        self.publish(Happened::ProducerAdded { producer: producer.clone(), kind, peer_user_id });
        Ok(ServerMessage::Produced { producer_id: producer })
    }

    async fn consume(&mut self, peer: PeerId, transport: TransportId, producer: ProducerId) -> Reply {
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
