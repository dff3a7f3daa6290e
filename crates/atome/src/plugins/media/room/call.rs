//! A call's task: the state of one call (router, peers, what each holds) and everything done
//! to it, one command at a time: joins and leaves, signaling requests (each checked against what
//! the peer owns, then one engine call, then bookkeeping and notifications), engine events, and
//! the call's end.
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sfu::{ConsumerId, ProducerId, RouterId, TransportId};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::peer::Peer;
use super::{Claim, Command, Member, PeerId, Reply, Welcome};
use crate::plugins::media::error::SignalError;
use crate::plugins::media::events::Happened;
use crate::plugins::media::messages::{ClientMessage, ProducerAppData, ServerMessage};
use crate::plugins::media::Shared;
use crate::plugins::rooms::Participant;

mod objects;
mod owner_events;

/// Why a peer leaves the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Departure {
    /// It left, or its socket closed: the others hear `participantLeft`.
    Left,
    /// A newer session of the same user took its place (a reload, a second tab): it hears
    /// `sessionReplaced` and its socket is closed; the others hear no `participantLeft` for a
    /// user who is still there (only `producerClosed` as the media moves).
    Replaced,
}

/// Waits until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Why a call ended: what is left to release depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The last peer left; the router is already closed.
    Empty,
    /// The media worker failed: the router and everything in it are gone already.
    WorkerDied,
    /// Every handle was dropped (a room opened by a join that lost a race, or the plugin ended).
    Abandoned,
}

pub(super) struct Room {
    id: Arc<str>,
    router: RouterId,
    /// By peer id, that is in joining order.
    peers: BTreeMap<PeerId, Peer>,
    shared: Arc<Shared>,
    /// Someone joined (subscribers were told).
    opened: bool,
}

impl Room {
    pub(super) fn new(room_id: &str, router: RouterId, shared: Arc<Shared>) -> Room {
        Room { id: room_id.into(), router, peers: BTreeMap::new(), shared, opened: false }
    }

    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let end = loop {
            // The next peer whose socket was lost and whose grace runs out.
            let expiry = self.peers.values().filter_map(|p| p.detached_until).min();
            let command = tokio::select! {
                command = commands.recv() => command,
                () = sleep_until(expiry) => {
                    let now = Instant::now();
                    let gone: Vec<PeerId> =
                        self.peers.iter().filter(|(_, p)| p.detached_until.is_some_and(|t| t <= now)).map(|(id, _)| *id).collect();
                    for id in gone {
                        tracing::info!(room_id = %self.id, peer = id, "session grace over; the peer leaves");
                        self.leave(id, Departure::Left).await;
                    }
                    if self.peers.is_empty() {
                        self.close(&mut commands);
                        self.close_router().await;
                        break End::Empty;
                    }
                    continue;
                }
            };
            let Some(command) = command else { break End::Abandoned };
            match command {
                Command::Join { peer, member, reply } => {
                    let welcome = self.join(peer, member).await;
                    drop(reply.send(Ok(welcome)))
                }
                Command::Leave { peer, reply } => {
                    let was_in = self.leave(peer, Departure::Left).await;
                    if self.peers.is_empty() {
                        self.close(&mut commands);
                        self.close_router().await;
                        let _ = reply.send(was_in);
                        break End::Empty;
                    }
                    let _ = reply.send(was_in);
                }
                Command::Detach { peer, reply } => drop(reply.send(self.detach(peer))),
                Command::Resume { claim, reply } => drop(reply.send(self.resume(claim))),
                Command::Request { peer, msg, reply } => drop(reply.send(self.request(peer, msg).await)),
                Command::Participants { reply } => drop(reply.send(self.participants())),
                Command::PeerTransports { reply } => {
                    drop(reply.send(self.peers.values().map(|p| (p.user_id.clone(), p.transports.keys().cloned().collect())).collect()))
                }
                Command::Engine(sfu::EngineEvent::TransportClosed { transport, producers, consumers, reason, .. }) => {
                    self.transport_lost(transport, producers, consumers, reason)
                }
                Command::Engine(sfu::EngineEvent::WorkerDied { worker }) if self.router.worker() == Some(worker) => {
                    self.worker_lost(&mut commands);
                    break End::WorkerDied;
                }
                Command::Engine(sfu::EngineEvent::WorkerDied { .. }) => {}
                Command::Engine(
                    event @ (sfu::EngineEvent::ProducerScore { .. }
                    | sfu::EngineEvent::ConsumerLayersChanged { .. }
                    | sfu::EngineEvent::ConsumerScore { .. }),
                ) => self.owner_event(event),
            }
        };
        if end == End::Abandoned {
            self.close(&mut commands);
            self.close_router().await;
        }
        while let Some(command) = commands.recv().await {
            command.refuse();
        }
    }

    /// Tells subscribers the call is over and takes no more commands (those queued are refused):
    /// a join arriving now opens a new call. Releases what the remaining peers held.
    fn close(&mut self, commands: &mut mpsc::Receiver<Command>) {
        for peer in self.peers.values() {
            self.shared.usage.release_transports(&peer.user_id, peer.transports.len());
            for producer in peer.producers.keys() {
                self.publish(Happened::ProducerClosed { producer: producer.clone() });
            }
        }
        if self.opened {
            self.publish(Happened::Closed);
        }
        commands.close();
        self.shared.peers.fetch_sub(self.peers.len(), Ordering::Relaxed);
    }

    async fn close_router(&self) {
        if let Err(e) = self.shared.engine.close_router(self.router.clone()).await {
            tracing::warn!(router = %self.router, "close router: {e}");
        }
        tracing::info!(room_id = %self.id, "call over; router closed");
    }

    fn publish(&self, what: Happened) {
        self.shared.events.publish(&self.id, what);
    }

    /// Sends `msg` to every peer but `except` (serialized once). A peer whose socket was lost
    /// hears nothing (a new socket taking its session back learns the room's state anew).
    fn notify_all(&self, except: Option<PeerId>, msg: &ServerMessage) {
        let text = msg.render(None);
        for (id, peer) in &self.peers {
            if Some(*id) != except && peer.detached_until.is_none() && peer.tx.try_send(text.clone()).is_err() {
                tracing::warn!(peer = id, "peer queue full or closed; notification dropped");
            }
        }
    }

    /// Adds a peer; an older session of the same user in this call leaves in its favour (one
    /// live session per user and room).
    async fn join(&mut self, peer: PeerId, member: Member) -> Welcome {
        if !self.opened {
            self.opened = true;
            self.publish(Happened::Opened { router: self.router.clone() });
        }
        let older: Vec<PeerId> = self.peers.iter().filter(|(_, p)| p.user_id == member.user_id).map(|(id, _)| *id).collect();
        for id in &older {
            self.leave(*id, Departure::Replaced).await;
        }
        let welcome = self.welcome(None);
        let joined = Peer::new(member);
        tracing::info!(room_id = %self.id, user_id = %joined.user_id, peer, replacing = ?older, "peer joined");
        if older.is_empty() {
            self.notify_all(Some(peer), &ServerMessage::ParticipantJoined(joined.info()));
        }
        self.peers.insert(peer, joined);
        self.shared.peers.fetch_add(1, Ordering::Relaxed);
        welcome
    }

    /// What a peer learns of the others on entering (or taking its session back).
    fn welcome(&self, except: Option<PeerId>) -> Welcome {
        let others = || self.peers.iter().filter(move |(id, _)| Some(**id) != except).map(|(_, p)| p);
        Welcome { existing_producers: others().flat_map(Peer::producer_infos).collect(), peers: others().map(Peer::info).collect() }
    }

    /// `id`'s socket was lost: it keeps its place for the session grace (none: it leaves now,
    /// through the session). False if it was not here.
    fn detach(&mut self, id: PeerId) -> bool {
        let grace = std::time::Duration::from_secs(self.shared.limits.session_grace_seconds.into());
        let Some(peer) = self.peers.get_mut(&id) else { return false };
        peer.detached_until = Some(Instant::now() + grace);
        tracing::info!(room_id = %self.id, peer = id, ?grace, "signaling socket lost; the session waits to be resumed");
        true
    }

    /// Gives the session `claim` names to the new socket: the peer keeps its id, its place and
    /// its media; its old socket (if the server still holds it) is told and closed.
    fn resume(&mut self, claim: Claim) -> Result<(PeerId, Welcome), SignalError> {
        let Some((&id, peer)) = self.peers.iter_mut().find(|(_, p)| p.claimed_by(&claim)) else {
            return Err(SignalError::session_expired());
        };
        let note = ServerMessage::SessionReplaced { room_id: self.id.to_string(), reason: "resumed" };
        let _ = peer.tx.try_send(note.render(None));
        if let Some(replaced) = peer.replaced.take() {
            let _ = replaced.send(()); // the old session closes its socket, and leaves nothing
        }
        let Claim { tx, replaced, .. } = claim;
        peer.tx = tx;
        peer.replaced = Some(replaced);
        let was_detached = peer.detached_until.take().is_some();
        tracing::info!(room_id = %self.id, peer = id, was_detached, "session resumed on a new socket");
        Ok((id, self.welcome(Some(id))))
    }

    /// Removes `id`, closing everything it owns; false if it was not here.
    async fn leave(&mut self, id: PeerId, why: Departure) -> bool {
        let Some(mut peer) = self.peers.remove(&id) else { return false };
        self.shared.peers.fetch_sub(1, Ordering::Relaxed);
        for producer in peer.producers.keys() {
            self.producer_closed(producer, Some(id));
        }
        match why {
            Departure::Left => self.notify_all(Some(id), &ServerMessage::ParticipantLeft { peer_user_id: peer.user_id.clone() }),
            Departure::Replaced => {
                let note = ServerMessage::SessionReplaced { room_id: self.id.to_string(), reason: "new_session" };
                let _ = peer.tx.try_send(note.render(None));
                if let Some(replaced) = peer.replaced.take() {
                    let _ = replaced.send(()); // the session closes its socket
                }
            }
        }
        self.shared.usage.release_transports(&peer.user_id, peer.transports.len());
        for transport in peer.transports.keys() {
            if let Err(e) = self.shared.engine.close_transport(transport.clone()).await {
                tracing::debug!(%transport, "close transport on leave: {e}");
            }
        }
        tracing::info!(room_id = %self.id, user_id = %peer.user_id, peer = id, ?why, "peer left");
        true
    }

    fn participants(&self) -> Vec<Participant> {
        let mut list: Vec<Participant> = Vec::new();
        for p in self.peers.values() {
            if !list.iter().any(|q| q.user_id == p.user_id) {
                list.push(Participant { user_id: p.user_id.clone(), display_name: p.display_name.clone() });
            }
        }
        list
    }

    /// A producer went away: forget every consumer of it and tell the room (all but `except`,
    /// the peer that closed it itself) and the subscribers.
    fn producer_closed(&mut self, producer: &ProducerId, except: Option<PeerId>) {
        for peer in self.peers.values_mut() {
            peer.producers.remove(producer);
            peer.sources.remove(producer);
            peer.consumers.retain(|_, c| c.producer != *producer);
        }
        self.notify_all(except, &ServerMessage::ProducerClosed { producer_id: producer.clone() });
        self.publish(Happened::ProducerClosed { producer: producer.clone() });
    }

    /// A transport the engine closed on its own (silent, or closed by the peer): the peer keeps
    /// its place in the room, its producers are gone and everyone, itself included, hears it.
    fn transport_lost(&mut self, transport: TransportId, producers: Vec<ProducerId>, consumers: Vec<ConsumerId>, reason: sfu::CloseReason) {
        let Some((&id, peer)) = self.peers.iter_mut().find(|(_, p)| p.transports.contains_key(&transport)) else { return };
        peer.transports.remove(&transport);
        self.shared.usage.release_transports(&peer.user_id, 1);
        peer.consumers.retain(|c, _| !consumers.contains(c));
        for producer in &producers {
            self.producer_closed(producer, None);
        }
        tracing::info!(room_id = %self.id, peer = id, %transport, ?reason, producers = producers.len(), "media transport lost");
    }

    /// The router's media worker failed for good: the call is over. Its peers get `roomClosed`
    /// and may join again (a new router is placed on a worker that runs).
    fn worker_lost(&mut self, commands: &mut mpsc::Receiver<Command>) {
        tracing::error!(room_id = %self.id, router = %self.router, peers = self.peers.len(), "media worker failed; call closed");
        self.close(commands);
        self.notify_all(None, &ServerMessage::RoomClosed { room_id: self.id.to_string(), reason: "media_worker_failed" });
    }

    // ---------- signaling requests ----------

    async fn request(&mut self, peer: PeerId, msg: ClientMessage) -> Reply {
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
            ClientMessage::Produce { transport_id, kind, rtp_parameters, app_data } => {
                let app_data = ProducerAppData::from_client(app_data.as_ref());
                self.produce(peer, transport_id, kind, rtp_parameters, app_data).await
            }
            ClientMessage::Consume { transport_id, producer_id } => self.consume(peer, transport_id, producer_id).await,
            ClientMessage::ResumeConsumer { consumer_id } => {
                self.own_consumer(peer, &consumer_id)?;
                engine.resume_consumer(consumer_id.clone()).await?;
                Ok(ServerMessage::ConsumerResumed { consumer_id })
            }
            ClientMessage::SetConsumerPreferredLayers { consumer_id, spatial_layer, temporal_layer } => {
                self.own_consumer(peer, &consumer_id)?;
                let now = engine.set_consumer_preferred_layers(consumer_id.clone(), spatial_layer, temporal_layer).await?;
                Ok(ServerMessage::ConsumerPreferredLayersSet {
                    consumer_id,
                    spatial_layer: now.map(|(s, _)| s),
                    temporal_layer: now.map(|(_, t)| t),
                })
            }
            ClientMessage::SetConsumerPriority { consumer_id, priority } => {
                self.own_consumer(peer, &consumer_id)?;
                let priority = engine.set_consumer_priority(consumer_id.clone(), priority).await?;
                Ok(ServerMessage::ConsumerPrioritySet { consumer_id, priority })
            }
            ClientMessage::RequestConsumerKeyFrame { consumer_id } => {
                self.own_consumer(peer, &consumer_id)?;
                engine.request_consumer_keyframe(consumer_id.clone()).await?;
                Ok(ServerMessage::ConsumerKeyFrameRequested { consumer_id })
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
            ClientMessage::RestartIce { transport_id } => {
                self.own_transport(peer, &transport_id, None)?;
                let ice_parameters = engine.restart_ice(transport_id.clone()).await?;
                let ice_servers = self.peers.get(&peer).map(|p| self.shared.ice_servers(&p.user_id)).unwrap_or_default();
                Ok(ServerMessage::IceRestarted { transport_id, ice_parameters, ice_servers })
            }
            ClientMessage::GetTransportStats { transport_id } => {
                self.own_transport(peer, &transport_id, None)?;
                let stats = engine.transport_stats(transport_id.clone()).await?;
                Ok(ServerMessage::TransportStats { transport_id, stats: vec![stats] })
            }
            ClientMessage::GetProducerStats { producer_id } => {
                self.own_producer(peer, &producer_id)?;
                let stats = engine.producer_stats(producer_id.clone()).await?;
                Ok(ServerMessage::ProducerStats { producer_id, stats })
            }
            ClientMessage::GetConsumerStats { consumer_id } => {
                self.own_consumer(peer, &consumer_id)?;
                let stats = engine.consumer_stats(consumer_id.clone()).await?;
                Ok(ServerMessage::ConsumerStats { consumer_id, stats })
            }
            ClientMessage::CloseProducer { producer_id } => {
                self.own_producer(peer, &producer_id)?;
                engine.close_producer(producer_id.clone()).await?;
                self.producer_closed(&producer_id, Some(peer));
                Ok(ServerMessage::ProducerClosed { producer_id })
            }
            // The session answers these itself and never sends them here.
            ClientMessage::Auth { .. }
            | ClientMessage::JoinRoom { .. }
            | ClientMessage::ResumeSession { .. }
            | ClientMessage::LeaveRoom { .. }
            | ClientMessage::Ping => Err(SignalError::refuse("internal", "not a call message")),
        }
    }
}
