//! One call in progress, owned by one task (`call.rs`): its router, its peers and what each
//! holds. Sessions, the engine's events and the other plugins reach it only through the
//! [`RoomHandle`] here, whose commands the task takes one at a time, so a check and the engine
//! call it guards are never interleaved with another peer's. The call is the single source of
//! truth for what a peer may touch.
mod call;
mod peer;

use std::sync::Arc;

use sfu::rtp_parameters::RtpCapabilities;
use sfu::{RouterId, TransportId};
use tokio::sync::{mpsc, oneshot};

use super::error::SignalError;
use super::messages::{ClientMessage, PeerInfo, ProducerInfo, ServerMessage};
use super::Shared;
use crate::plugins::rooms::Participant;

pub type PeerId = u64;

/// Messages queued to one peer's socket; a peer that lets it fill up misses notifications.
pub const PEER_QUEUE: usize = 256;
/// Commands queued to one room. Each session has at most one request in flight.
const COMMANDS: usize = 64;

/// What a joining peer brings.
pub struct Member {
    pub user_id: String,
    pub display_name: String,
    /// The peer's socket queue.
    pub tx: mpsc::Sender<String>,
    /// The device's receive capabilities, for its consumers.
    pub rtp_capabilities: RtpCapabilities,
    /// Fired when a newer session of the same user takes this one's place in the room.
    pub replaced: oneshot::Sender<()>,
    /// SHA-256 (hex) of the session's resume token.
    pub resume_hash: String,
}

/// A new socket's claim on a session it lost (`resumeSession`).
pub struct Claim {
    pub user_id: String,
    /// SHA-256 (hex) of the resume token given.
    pub resume_hash: String,
    /// The new socket's queue.
    pub tx: mpsc::Sender<String>,
    /// Fired when a newer session takes the place in turn.
    pub replaced: oneshot::Sender<()>,
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
    /// The peer's socket was lost: it keeps its place (and media) for the session grace, then
    /// leaves. Whether the peer was in the room.
    Detach {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    /// A new socket takes a session back: the peer's id and what is in the room now.
    Resume {
        claim: Claim,
        reply: oneshot::Sender<Result<(PeerId, Welcome), SignalError>>,
    },
    Request {
        peer: PeerId,
        msg: ClientMessage,
        reply: oneshot::Sender<Reply>,
    },
    Participants {
        reply: oneshot::Sender<Vec<Participant>>,
    },
    /// Each peer's user id and WebRTC transports (metrics).
    PeerTransports {
        reply: oneshot::Sender<Vec<(String, Vec<TransportId>)>>,
    },
    Engine(sfu::EngineEvent),
}

impl Command {
    /// The answer of a call that has ended.
    fn refuse(self) {
        match self {
            Command::Join { member, reply, .. } => drop(reply.send(Err(member))),
            Command::Leave { reply, .. } | Command::Detach { reply, .. } => drop(reply.send(false)),
            Command::Resume { reply, .. } => drop(reply.send(Err(SignalError::session_expired()))),
            Command::Request { reply, .. } => drop(reply.send(Err(SignalError::room_closed()))),
            Command::Participants { reply } => drop(reply.send(Vec::new())),
            Command::PeerTransports { reply } => drop(reply.send(Vec::new())),
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
        tokio::spawn(call::Room::new(room_id, router.clone(), shared).run(rx));
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

    /// The peer's socket was lost (no close frame, or silent): it stays in the call for the
    /// session grace, its media untouched, so that a new socket may take it back
    /// ([`RoomHandle::resume`]); then it leaves. False if it was not in the call.
    pub async fn detach(&self, peer: PeerId) -> bool {
        self.ask(|reply| Command::Detach { peer, reply }).await.unwrap_or(false)
    }

    /// Hands the session `claim` names (same user, same resume token) to a new socket; the old
    /// socket, if the server still holds it, hears `sessionReplaced {reason: "resumed"}` and is
    /// closed. `session_expired` when there is no such session (left, replaced, grace over).
    pub async fn resume(&self, claim: Claim) -> Result<(PeerId, Welcome), SignalError> {
        self.ask(|reply| Command::Resume { claim, reply }).await.unwrap_or_else(|| Err(SignalError::session_expired()))
    }

    /// A signaling message of a peer in the call, answered.
    pub async fn request(&self, peer: PeerId, msg: ClientMessage) -> Reply {
        self.ask(|reply| Command::Request { peer, msg, reply }).await.unwrap_or_else(|| Err(SignalError::room_closed()))
    }

    /// Who is in the call (once per user, in joining order).
    pub async fn participants(&self) -> Vec<Participant> {
        self.ask(|reply| Command::Participants { reply }).await.unwrap_or_default()
    }

    /// Each peer's user id and transports.
    pub async fn peer_transports(&self) -> Vec<(String, Vec<TransportId>)> {
        self.ask(|reply| Command::PeerTransports { reply }).await.unwrap_or_default()
    }

    /// An engine event for the room to act on if it concerns it.
    pub async fn engine_event(&self, event: sfu::EngineEvent) {
        let _ = self.tx.send(Command::Engine(event)).await;
    }
}
