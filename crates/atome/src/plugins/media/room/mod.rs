//! One call in progress, owned by one task: its router, its peers and what each holds. Sessions,
//! the engine's events and the other plugins reach it only through its command channel, one
//! command at a time, so a check and the engine call it guards are never interleaved with
//! another peer's. The room is the single source of truth for what a peer may touch.
mod requests;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sfu::rtp_parameters::{MediaKind, RtpCapabilities};
use sfu::{ConsumerId, ProducerId, RouterId, TransportId};
use tokio::sync::{mpsc, oneshot};

use super::error::SignalError;
use super::events::Happened;
use super::messages::{ClientMessage, Direction, PeerInfo, ProducerInfo, ServerMessage};
use super::Shared;
use crate::plugins::rooms::Participant;

pub type PeerId = u64;

/// Messages queued to one peer's socket; a peer that lets it fill up misses notifications.
pub const PEER_QUEUE: usize = 256;
/// Commands queued to one room. Each session has at most one request in flight.
const COMMANDS: usize = 64;

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

/// What a joining peer brings.
pub struct Member {
    pub user_id: String,
    pub display_name: String,
    /// The peer's socket queue.
    pub tx: mpsc::Sender<String>,
    /// The device's receive capabilities, for its consumers.
    pub rtp_capabilities: RtpCapabilities,
}

/// What a newcomer learns.
pub struct Welcome {
    pub existing_producers: Vec<ProducerInfo>,
    pub peers: Vec<PeerInfo>,
}

type Reply = Result<ServerMessage, SignalError>;

enum Command {
    /// Gives the member back if the call is closing.
    Join {
        peer: PeerId,
        member: Member,
        reply: oneshot::Sender<Result<Welcome, Member>>,
    },
    /// Whether the peer was in the room.
    Leave {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    Request {
        peer: PeerId,
        msg: ClientMessage,
        reply: oneshot::Sender<Reply>,
    },
    Participants {
        reply: oneshot::Sender<Vec<Participant>>,
    },
    Engine(sfu::EngineEvent),
}

impl Command {
    /// The answer of a call that has ended.
    fn refuse(self) {
        match self {
            Command::Join { member, reply, .. } => drop(reply.send(Err(member))),
            Command::Leave { reply, .. } => drop(reply.send(false)),
            Command::Request { reply, .. } => drop(reply.send(Err(SignalError::room_closed()))),
            Command::Participants { reply } => drop(reply.send(Vec::new())),
            Command::Engine(_) => {}
        }
    }
}

/// The way to a room's task; cheap to clone. Sends fail once the call has ended.
#[derive(Clone)]
pub struct RoomHandle {
    router: RouterId,
    tx: mpsc::Sender<Command>,
}

impl RoomHandle {
    /// Starts the owner of a new call on `router`. The call ends when its last peer leaves, its
    /// worker fails, or every handle is dropped before anyone joined.
    pub fn spawn(room_id: &str, router: RouterId, shared: Arc<Shared>) -> RoomHandle {
        let (tx, rx) = mpsc::channel(COMMANDS);
        let room = Room { id: room_id.into(), router: router.clone(), peers: BTreeMap::new(), shared, opened: false };
        tokio::spawn(room.run(rx));
        RoomHandle { router, tx }
    }

    pub fn router(&self) -> &RouterId {
        &self.router
    }

    /// The call has ended (or is ending): it takes no new command.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Adds a peer. `Err(Some(member))`: the call ended meanwhile, join a new one; `Err(None)`:
    /// the room failed (its task panicked).
    pub async fn join(&self, peer: PeerId, member: Member) -> Result<Welcome, Option<Member>> {
        let (reply, answer) = oneshot::channel();
        match self.tx.send(Command::Join { peer, member, reply }).await {
            Err(mpsc::error::SendError(Command::Join { member, .. })) => Err(Some(member)),
            Err(_) => Err(None),
            Ok(()) => match answer.await {
                Ok(Ok(welcome)) => Ok(welcome),
                Ok(Err(member)) => Err(Some(member)),
                Err(_) => Err(None),
            },
        }
    }

    /// Removes a peer and closes what it holds; false if it was not in the call.
    pub async fn leave(&self, peer: PeerId) -> bool {
        self.ask(|reply| Command::Leave { peer, reply }).await.unwrap_or(false)
    }

    /// A signaling message of a peer in the call, answered.
    pub async fn request(&self, peer: PeerId, msg: ClientMessage) -> Reply {
        self.ask(|reply| Command::Request { peer, msg, reply }).await.unwrap_or_else(|| Err(SignalError::room_closed()))
    }

    /// Who is in the call (once per user, in joining order).
    pub async fn participants(&self) -> Vec<Participant> {
        self.ask(|reply| Command::Participants { reply }).await.unwrap_or_default()
    }

    /// An engine event for the room to act on if it concerns it.
    pub async fn engine_event(&self, event: sfu::EngineEvent) {
        let _ = self.tx.send(Command::Engine(event)).await;
    }
}

/// A consumer's producer and the (receive) transport it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Consuming {
    producer: ProducerId,
    transport: TransportId,
}

struct Peer {
    user_id: String,
    display_name: String,
    tx: mpsc::Sender<String>,
    rtp_capabilities: RtpCapabilities,
    transports: HashMap<TransportId, Direction>,
    producers: HashMap<ProducerId, MediaKind>,
    consumers: HashMap<ConsumerId, Consuming>,
}

impl Peer {
    fn new(member: Member) -> Peer {
        let Member { user_id, display_name, tx, rtp_capabilities } = member;
        Peer {
            user_id,
            display_name,
            tx,
            rtp_capabilities,
            transports: HashMap::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
        }
    }

    fn producer_infos(&self) -> impl Iterator<Item = ProducerInfo> + '_ {
        self.producers.iter().map(|(id, kind)| ProducerInfo { producer_id: id.clone(), kind: *kind, peer_user_id: self.user_id.clone() })
    }
}

struct Room {
    id: Arc<str>,
    router: RouterId,
    /// By peer id, that is in joining order.
    peers: BTreeMap<PeerId, Peer>,
    shared: Arc<Shared>,
    /// Someone joined (subscribers were told).
    opened: bool,
}

impl Room {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let end = loop {
            let Some(command) = commands.recv().await else { break End::Abandoned };
            match command {
                Command::Join { peer, member, reply } => drop(reply.send(Ok(self.join(peer, member)))),
                Command::Leave { peer, reply } => {
                    let was_in = self.leave(peer).await;
                    if self.peers.is_empty() {
                        self.close(&mut commands);
                        self.close_router().await;
                        let _ = reply.send(was_in);
                        break End::Empty;
                    }
                    let _ = reply.send(was_in);
                }
                Command::Request { peer, msg, reply } => drop(reply.send(self.request(peer, msg).await)),
                Command::Participants { reply } => drop(reply.send(self.participants())),
                Command::Engine(sfu::EngineEvent::TransportClosed { transport, producers, consumers, reason }) => {
                    self.transport_lost(transport, producers, consumers, reason)
                }
                Command::Engine(sfu::EngineEvent::WorkerDied { worker }) if self.router.worker() == Some(worker) => {
                    self.worker_lost(&mut commands);
                    break End::WorkerDied;
                }
                Command::Engine(sfu::EngineEvent::WorkerDied { .. }) => {}
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

    /// Sends `msg` to every peer but `except` (serialized once).
    fn notify_all(&self, except: Option<PeerId>, msg: &ServerMessage) {
        let text = msg.render(None);
        for (id, peer) in &self.peers {
            if Some(*id) != except && peer.tx.try_send(text.clone()).is_err() {
                tracing::warn!(peer = id, "peer queue full or closed; notification dropped");
            }
        }
    }

    fn join(&mut self, peer: PeerId, member: Member) -> Welcome {
        if !self.opened {
            self.opened = true;
            self.publish(Happened::Opened { router: self.router.clone() });
        }
        let welcome = Welcome {
            existing_producers: self.peers.values().flat_map(Peer::producer_infos).collect(),
            peers: self
                .peers
                .values()
                .map(|p| PeerInfo { peer_user_id: p.user_id.clone(), display_name: p.display_name.clone() })
                .collect(),
        };
        let info = PeerInfo { peer_user_id: member.user_id.clone(), display_name: member.display_name.clone() };
        tracing::info!(room_id = %self.id, user_id = %info.peer_user_id, peer, "peer joined");
        self.notify_all(Some(peer), &ServerMessage::ParticipantJoined(info));
        self.peers.insert(peer, Peer::new(member));
        self.shared.peers.fetch_add(1, Ordering::Relaxed);
        welcome
    }

    /// Removes `id`, closing everything it owns; false if it was not here.
    async fn leave(&mut self, id: PeerId) -> bool {
        let Some(peer) = self.peers.remove(&id) else { return false };
        self.shared.peers.fetch_sub(1, Ordering::Relaxed);
        for producer in peer.producers.keys() {
            self.producer_closed(producer, Some(id));
        }
        self.notify_all(Some(id), &ServerMessage::ParticipantLeft { peer_user_id: peer.user_id.clone() });
        self.shared.usage.release_transports(&peer.user_id, peer.transports.len());
        for transport in peer.transports.keys() {
            if let Err(e) = self.shared.engine.close_transport(transport.clone()).await {
                tracing::debug!(%transport, "close transport on leave: {e}");
            }
        }
        tracing::info!(room_id = %self.id, user_id = %peer.user_id, peer = id, "peer left");
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
}
