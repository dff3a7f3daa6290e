//! One WebSocket connection: authentication first, then typed signaling messages. The session
//! answers what concerns the socket itself (auth, ping, rate limits, joining and leaving) and
//! passes every call message to its room's owner, which checks it against what this peer owns.
//! Every message is answered, echoing `requestId`. A socket closed with a close frame (or by us)
//! is a leave; a lost one (no close frame, or silent) keeps the peer's place for the session
//! grace, for a new socket to take back with `resumeSession`.
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sfu::rtp_parameters::RtpCapabilities;
use tokio::sync::{mpsc, oneshot};

use super::error::SignalError;
use super::messages::{self, ClientMessage, ServerMessage};
use super::room::{Claim, Member, PeerId, RoomHandle, PEER_QUEUE};
use super::Media;
use crate::plugins::identity::{phone, tokens, User};
use crate::secret::{random_hex, sha256_hex};
use crate::telemetry;

/// Time a new socket has to authenticate.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const TWO: NonZeroU32 = NonZeroU32::MIN.saturating_add(1);
/// Tries to join a call that keeps ending as we arrive (its last peer leaving each time).
const JOIN_TRIES: usize = 3;

struct Joined {
    room_id: String,
    room: RoomHandle,
}

pub struct Session {
    media: Media,
    peer_id: PeerId,
    tx: mpsc::Sender<String>,
    user: Option<User>,
    joined: Option<Joined>,
    /// Fires when a newer session of the same user takes this one's place in its room.
    replaced: Option<oneshot::Receiver<()>>,
    messages: DefaultDirectRateLimiter,
    transports: DefaultDirectRateLimiter,
}

/// Serves one upgraded WebSocket until it closes.
pub async fn run(socket: WebSocket, media: Media) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<String>(PEER_QUEUE);
    // A peer that hears nothing from us could not tell a quiet room from a dead server, and we
    // could not tell a quiet peer from a vanished one: ping a few times per idle period (browsers
    // answer on their own); a socket silent for the whole period is a leave.
    let idle = Duration::from_secs(media.0.core.config.limits.ws_idle_seconds.max(3).into());
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + idle / 3, idle / 3);
        loop {
            let frame = tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => Message::Text(msg.into()),
                    None => break,
                },
                _ = ping.tick() => Message::Ping(Vec::new().into()),
            };
            if sink.send(frame).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut session = Session::new(media, tx);
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    // Whether the socket was lost rather than closed (see the module's doc).
    let mut lost = false;
    loop {
        let authenticated = session.user.is_some();
        let next = tokio::select! {
            // A newer session of this user took our place in the room: it was told, we close
            // and leave nothing (the place is the newer session's now).
            () = replaced(&mut session.replaced) => {
                session.joined = None;
                break;
            }
            next = next_frame(&mut stream, authenticated, deadline, idle) => next,
        };
        let next = match next {
            Ok(next) => next,
            Err(Silence::AuthTimeout) => {
                session.send(&ServerMessage::Error { code: "auth_timeout", error: "authenticate first".into() }).await;
                break;
            }
            Err(Silence::Idle) => {
                tracing::info!(peer = session.peer_id, "signaling socket silent for {idle:?}; closing it");
                lost = true;
                break;
            }
        };
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                session.send(&ServerMessage::Error { code: "invalid_message", error: "text frames only".into() }).await;
                continue;
            }
            // Control frames count against the message budget too (a ping flood is a flood).
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                if session.messages.check().is_err() {
                    telemetry::rate_limited("ws_messages");
                    session.send(&ServerMessage::Error { code: "rate_limited", error: "too many messages; closing".into() }).await;
                    break;
                }
                continue;
            }
            Some(Ok(Message::Close(_))) => break,
            // Gone without a close frame (a reset, a network change): lost. A frame we refuse
            // (over the size limit, not UTF-8, against the protocol) ends it as a leave.
            None => {
                lost = true;
                break;
            }
            Some(Err(e)) => {
                lost = socket_lost(e);
                break;
            }
        };
        if !session.handle_text(&text).await {
            break;
        }
    }
    session.close(lost).await;
    let _ = writer.await;
}

/// Whether a read error means the connection went away (rather than a frame we refuse).
fn socket_lost(e: axum::Error) -> bool {
    use tungstenite::error::{Error, ProtocolError};
    match e.into_inner().downcast::<Error>().map(|e| *e) {
        Ok(
            Error::Io(_) | Error::ConnectionClosed | Error::AlreadyClosed | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake),
        ) => true,
        Ok(_) => false,
        // Not tungstenite's: axum only wraps tungstenite errors; count it as lost.
        Err(_) => true,
    }
}

/// Why no frame came.
enum Silence {
    /// Not authenticated within [`AUTH_TIMEOUT`].
    AuthTimeout,
    /// Nothing for the idle period once authenticated.
    Idle,
}

/// The next frame: before authentication until `deadline`, after it within `idle`.
async fn next_frame(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    authenticated: bool,
    deadline: tokio::time::Instant,
    idle: Duration,
) -> Result<Option<Result<Message, axum::Error>>, Silence> {
    if authenticated {
        tokio::time::timeout(idle, stream.next()).await.map_err(|_| Silence::Idle)
    } else {
        tokio::time::timeout_at(deadline, stream.next()).await.map_err(|_| Silence::AuthTimeout)
    }
}

/// Resolves when the room says a newer session replaced this one; never otherwise (a room that
/// ended or that this peer left drops its end: that is not a replacement).
async fn replaced(signal: &mut Option<oneshot::Receiver<()>>) {
    if let Some(rx) = signal {
        if rx.await.is_ok() {
            return;
        }
        *signal = None;
    }
    std::future::pending().await
}

impl Session {
    fn new(media: Media, tx: mpsc::Sender<String>) -> Session {
        let limits = &media.0.core.config.limits;
        let per_second = NonZeroU32::new(limits.ws_messages_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let per_minute = NonZeroU32::new(limits.transports_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Session {
            peer_id: media.next_peer_id(),
            media,
            tx,
            user: None,
            joined: None,
            replaced: None,
            messages: RateLimiter::direct(Quota::per_second(per_second).allow_burst(per_second.saturating_mul(TWO))),
            transports: RateLimiter::direct(Quota::per_minute(per_minute)),
        }
    }

    /// Queues an unprompted message (no `requestId`).
    async fn send(&self, msg: &ServerMessage) {
        let _ = self.tx.send(msg.render(None)).await;
    }

    /// Handles one text frame; false when the socket must close.
    async fn handle_text(&mut self, text: &str) -> bool {
        let messages::Incoming { request_id, msg } = messages::parse(text);
        telemetry::ws_message(msg.as_ref().map_or("invalid", ClientMessage::kind));
        let result = match msg {
            _ if self.messages.check().is_err() => {
                telemetry::rate_limited("ws_messages");
                Err(SignalError::fatal("rate_limited", "too many messages; closing"))
            }
            Err(e) if self.user.is_none() => Err(SignalError::fatal("not_authenticated", format!("expected an auth message: {e}"))),
            Err(e) => Err(SignalError::refuse("invalid_message", e)),
            Ok(msg) => self.handle(msg).await,
        };
        let (reply, keep_open) = match result {
            Ok(reply) => (reply, true),
            Err(e) => (e.to_message(), !e.fatal),
        };
        let _ = self.tx.send(reply.render(request_id.as_deref())).await;
        keep_open
    }

    async fn handle(&mut self, msg: ClientMessage) -> Result<ServerMessage, SignalError> {
        if self.user.is_none() {
            return match msg {
                ClientMessage::Auth { token, phone_e164 } => self.auth(&token, phone_e164.as_deref()).await,
                _ => Err(SignalError::fatal("not_authenticated", "the first message must be `auth`")),
            };
        }
        match msg {
            ClientMessage::Auth { .. } => Err(SignalError::refuse("already_authenticated", "this socket is authenticated")),
            ClientMessage::Ping => Ok(ServerMessage::Pong),
            ClientMessage::JoinRoom { room_id, join_token, rtp_capabilities } => self.join(room_id, &join_token, rtp_capabilities).await,
            ClientMessage::ResumeSession { room_id, resume_token } => self.resume(room_id, &resume_token).await,
            ClientMessage::LeaveRoom { room_id: Some(other) } if self.joined.as_ref().is_none_or(|j| j.room_id != other) => {
                Err(SignalError::refuse("not_in_room", format!("not in room {other}")))
            }
            ClientMessage::LeaveRoom { room_id } => match self.leave().await {
                Some(left) => Ok(ServerMessage::RoomLeft { room_id: left }),
                None => Err(SignalError::refuse("not_in_room", format!("not in room {}", room_id.unwrap_or_default()))),
            },
            ClientMessage::CreateTransport { .. } => {
                let room = self.room()?;
                if self.transports.check().is_err() {
                    telemetry::rate_limited("ws_transports");
                    return Err(SignalError::refuse("rate_limited", "too many transports created; wait a minute"));
                }
                room.request(self.peer_id, msg).await
            }
            // Everything else is a call message: the room checks and answers it.
            msg => self.room()?.request(self.peer_id, msg).await,
        }
    }

    async fn auth(&mut self, token: &str, phone_e164: Option<&str>) -> Result<ServerMessage, SignalError> {
        let core = &self.media.0.core;
        let (user, _) = tokens::authenticate(&core.db, token).await.map_err(|e| SignalError::fatal("auth_failed", e.to_string()))?;
        if let Some(given) = phone_e164 {
            let given = phone::normalize(given, &core.config.phone_region).map_err(|e| SignalError::fatal("auth_failed", e.to_string()))?;
            if given != user.phone_e164 {
                return Err(SignalError::fatal("auth_failed", "the phone number does not match the token"));
            }
        }
        let max = core.config.limits.max_sockets_per_user;
        if !self.media.0.shared.usage.take_socket(&user.user_id, max) {
            return Err(SignalError::fatal("too_many_sockets", format!("at most {max} signaling sockets per user; close another first")));
        }
        let view = user.view();
        self.user = Some(user);
        Ok(ServerMessage::AuthOk { user: view })
    }

    /// The call this peer is in.
    fn room(&self) -> Result<&RoomHandle, SignalError> {
        self.joined.as_ref().map(|j| &j.room).ok_or_else(|| SignalError::refuse("not_in_room", "join a room first"))
    }

    /// Refuses a second room on this socket (a call closed under it no longer holds it).
    fn not_in_a_room(&mut self) -> Result<(), SignalError> {
        if let Some(j) = &self.joined {
            // A call closed under this peer (its media worker failed) no longer holds it.
            if !j.room.is_closed() {
                return Err(SignalError::refuse("already_in_room", format!("already in room {}; leave it first", j.room_id)));
            }
            self.joined = None;
        }
        Ok(())
    }

    fn user(&self) -> Result<&User, SignalError> {
        self.user.as_ref().ok_or_else(|| SignalError::fatal("not_authenticated", "the first message must be `auth`"))
    }

    async fn join(&mut self, room_id: String, join_token: &str, rtp_capabilities: RtpCapabilities) -> Result<ServerMessage, SignalError> {
        self.not_in_a_room()?;
        let user = self.user()?;
        let (user_id, display_name) = (user.user_id.clone(), user.display_name.clone());
        if !self.media.0.core.join_tokens.check(join_token, &user_id, &room_id) {
            return Err(SignalError::refuse("invalid_join_token", "join token invalid, expired or for another room"));
        }
        let (replaced, replaced_rx) = oneshot::channel();
        let resume_token = format!("rt_{}", random_hex(24));
        let resume_hash = sha256_hex(&resume_token);
        let mut member = Member { user_id: user_id.clone(), display_name, tx: self.tx.clone(), rtp_capabilities, replaced, resume_hash };
        for _ in 0..JOIN_TRIES {
            let room = self.media.0.calls.open(&room_id, &self.media.0.shared).await?;
            match room.join(self.peer_id, member).await {
                Ok(welcome) => {
                    self.joined = Some(Joined { room_id: room_id.clone(), room });
                    self.replaced = Some(replaced_rx);
                    return Ok(ServerMessage::RoomJoined {
                        room_id,
                        rtp_capabilities: self.media.engine().rtp_capabilities().clone(),
                        existing_producers: welcome.existing_producers,
                        peers: welcome.peers,
                        ice_servers: self.media.0.shared.ice_servers(&user_id),
                        resume_token,
                    });
                }
                // The call ended as we arrived: the next try opens a new one.
                Err(Some(back)) => member = back,
                Err(None) => break,
            }
        }
        Err(SignalError::refuse("internal", "the call could not be joined; join again"))
    }

    /// Takes back the session `resume_token` names in `room_id` (this user's, still in the
    /// call): this socket becomes that peer, with its transports, producers and consumers.
    async fn resume(&mut self, room_id: String, resume_token: &str) -> Result<ServerMessage, SignalError> {
        self.not_in_a_room()?;
        let user_id = self.user()?.user_id.clone();
        let room = self.media.0.calls.get(&room_id).ok_or_else(SignalError::session_expired)?;
        let (replaced, replaced_rx) = oneshot::channel();
        let claim = Claim { user_id: user_id.clone(), resume_hash: sha256_hex(resume_token), tx: self.tx.clone(), replaced };
        let (peer_id, welcome) = room.resume(claim).await?;
        tracing::info!(%room_id, old_peer = peer_id, socket = self.peer_id, "session resumed");
        self.peer_id = peer_id;
        self.joined = Some(Joined { room_id: room_id.clone(), room });
        self.replaced = Some(replaced_rx);
        Ok(ServerMessage::SessionResumed {
            room_id,
            existing_producers: welcome.existing_producers,
            peers: welcome.peers,
            ice_servers: self.media.0.shared.ice_servers(&user_id),
        })
    }

    /// The socket closed (`lost`: without a close frame, or silent): leaves the call, or with a
    /// session grace and a lost socket, leaves the place to be resumed; gives the user's socket
    /// back.
    async fn close(mut self, lost: bool) {
        let grace = self.media.0.shared.limits.session_grace_seconds > 0;
        match self.joined.take() {
            Some(joined) if lost && grace => {
                self.replaced = None;
                joined.room.detach(self.peer_id).await;
            }
            joined => {
                self.joined = joined;
                self.leave().await;
            }
        }
        if let Some(user) = &self.user {
            self.media.0.shared.usage.release_socket(&user.user_id);
        }
    }

    /// Leaves the current call, closing everything this peer owns; returns the room left.
    async fn leave(&mut self) -> Option<String> {
        self.replaced = None;
        let joined = self.joined.take()?;
        joined.room.leave(self.peer_id).await.then_some(joined.room_id)
    }
}

/// A session driven without a socket, frame by frame (the signaling fuzz target; cargo feature
/// `fuzzing`). Not an API.
#[cfg(feature = "fuzzing")]
pub struct Driven {
    session: Session,
    rx: mpsc::Receiver<String>,
}

#[cfg(feature = "fuzzing")]
impl Driven {
    pub fn new(media: Media) -> Driven {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        Driven { session: Session::new(media, tx), rx }
    }

    /// One text frame, as the socket loop hands it over; false when the session closes the
    /// socket. Take the messages after each frame: the queue holds [`PEER_QUEUE`].
    pub async fn frame(&mut self, text: &str) -> bool {
        self.session.handle_text(text).await
    }

    /// Whether a newer session of the same user took this one's place.
    pub fn replaced(&mut self) -> bool {
        self.session.replaced.as_mut().is_some_and(|r| !matches!(r.try_recv(), Err(oneshot::error::TryRecvError::Empty)))
    }

    /// Everything queued for the socket so far: replies and notifications, in order.
    pub fn take(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.rx.try_recv().ok()).collect()
    }

    /// The socket closed (`lost`: without a close frame).
    pub async fn close(self, lost: bool) {
        self.session.close(lost).await;
    }
}
