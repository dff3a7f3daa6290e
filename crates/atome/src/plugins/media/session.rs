//! One WebSocket connection: authentication first, then typed signaling messages, each checked
//! against what this peer owns, each answered (echoing `requestId`). A dropped socket is a leave.
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sfu::rtp_parameters::RtpCapabilities;
use sfu::{ConsumerId, ProducerId, TransportId};
use tokio::sync::mpsc;

use super::messages::{self, ClientMsg, Direction};
use super::registry::{CallRoom, Consuming, Peer, PeerId, PEER_QUEUE};
use super::Media;
use crate::core::Participant;
use crate::plugins::identity::{phone, tokens, User};

/// Time a new socket has to authenticate.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const TWO: NonZeroU32 = NonZeroU32::MIN.saturating_add(1);

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SignalError {
    pub code: &'static str,
    pub message: String,
    /// Close the socket after answering (abuse, failed authentication).
    pub fatal: bool,
}

fn refuse(code: &'static str, message: impl Into<String>) -> SignalError {
    SignalError { code, message: message.into(), fatal: false }
}

fn fatal(code: &'static str, message: impl Into<String>) -> SignalError {
    SignalError { code, message: message.into(), fatal: true }
}

fn engine_error(e: impl sfu::ErrorCode + std::fmt::Display) -> SignalError {
    refuse(e.code(), e.to_string())
}

/// Parses a client-sent mediasoup object or id into the engine's type.
fn typed<T: DeserializeOwned>(what: &'static str, value: Value) -> Result<T, SignalError> {
    serde_json::from_value(value).map_err(|e| refuse("invalid_message", format!("invalid {what}: {e}")))
}

fn parse_id<T: DeserializeOwned>(what: &'static str, id: &str) -> Result<T, SignalError> {
    serde_json::from_value(Value::String(id.to_string())).map_err(|_| refuse("not_found", format!("unknown {what} {id:?}")))
}

struct Joined {
    room_id: String,
    rtp_capabilities: RtpCapabilities,
}

pub struct Session {
    media: Media,
    peer_id: PeerId,
    tx: mpsc::Sender<String>,
    user: Option<User>,
    joined: Option<Joined>,
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
    loop {
        let next = if session.user.is_none() {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    session.send(messages::error(None, "auth_timeout", "authenticate first")).await;
                    break;
                }
            }
        } else {
            match tokio::time::timeout(idle, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    tracing::info!(peer = session.peer_id, "signaling socket silent for {idle:?}; closing it");
                    break;
                }
            }
        };
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                session.send(messages::error(None, "invalid_message", "text frames only")).await;
                continue;
            }
            // Control frames count against the message budget too (a ping flood is a flood).
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                if session.messages.check().is_err() {
                    session.send(messages::error(None, "rate_limited", "too many messages; closing")).await;
                    break;
                }
                continue;
            }
            // Closed, or a protocol error such as a frame over the size limit.
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
        };
        if !session.handle_text(&text).await {
            break;
        }
    }
    session.leave().await;
    if let Some(user) = &session.user {
        session.media.0.usage.release_socket(&user.user_id);
    }
    drop(session);
    let _ = writer.await;
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
            messages: RateLimiter::direct(Quota::per_second(per_second).allow_burst(per_second.saturating_mul(TWO))),
            transports: RateLimiter::direct(Quota::per_minute(per_minute)),
        }
    }

    async fn send(&self, msg: String) {
        let _ = self.tx.send(msg).await;
    }

    /// Handles one text frame; false when the socket must close.
    async fn handle_text(&mut self, text: &str) -> bool {
        let incoming = messages::parse(text);
        let request_id = incoming.request_id;
        let result = match incoming.msg {
            _ if self.messages.check().is_err() => Err(fatal("rate_limited", "too many messages; closing")),
            Err(e) if self.user.is_none() => Err(fatal("not_authenticated", format!("expected an auth message: {e}"))),
            Err(e) => Err(refuse("invalid_message", e)),
            Ok(msg) => self.handle(msg).await,
        };
        match result {
            Ok((kind, fields)) => {
                self.send(messages::render(kind, request_id.as_deref(), fields)).await;
                true
            }
            Err(e) => {
                let kind = if e.code.starts_with("auth") { "authError" } else { "error" };
                self.send(messages::render(kind, request_id.as_deref(), json!({"code": e.code, "error": e.message}))).await;
                !e.fatal
            }
        }
    }

    async fn handle(&mut self, msg: ClientMsg) -> Result<(&'static str, Value), SignalError> {
        let user = match (&self.user, msg) {
            (None, ClientMsg::Auth { token, phone_e164 }) => return self.auth(&token, phone_e164.as_deref()).await,
            (None, _) => return Err(fatal("not_authenticated", "the first message must be `auth`")),
            (Some(_), ClientMsg::Auth { .. }) => return Err(refuse("already_authenticated", "this socket is authenticated")),
            (Some(user), msg) => (user.clone(), msg),
        };
        let (user, msg) = user;
        match msg {
            ClientMsg::Auth { .. } => Err(refuse("already_authenticated", "this socket is authenticated")),
            ClientMsg::Ping => Ok(("pong", json!({}))),
            ClientMsg::JoinRoom { room_id, join_token, rtp_capabilities } => self.join(&user, room_id, &join_token, rtp_capabilities).await,
            ClientMsg::LeaveRoom { room_id } => {
                let left = self.leave().await;
                match left {
                    Some(left) => Ok(("roomLeft", json!({"room_id": left}))),
                    None => Err(refuse("not_in_room", format!("not in room {}", room_id.unwrap_or_default()))),
                }
            }
            ClientMsg::CreateTransport { direction, rtp_capabilities } => self.create_transport(direction, rtp_capabilities).await,
            ClientMsg::ConnectTransport { transport_id, dtls_parameters } => {
                let id = self.own_transport(&transport_id, None).await?;
                let dtls = typed("dtlsParameters", dtls_parameters)?;
                self.media.0.engine.connect_transport(id, dtls).await.map_err(engine_error)?;
                Ok(("transportConnected", json!({"transport_id": transport_id})))
            }
            ClientMsg::Produce { transport_id, kind, rtp_parameters, app_data: _ } => {
                self.produce(&user, &transport_id, &kind, rtp_parameters).await
            }
            ClientMsg::Consume { transport_id, producer_id } => self.consume(&transport_id, &producer_id).await,
            ClientMsg::ResumeConsumer { consumer_id } => {
                let id = self.own_consumer(&consumer_id).await?;
                self.media.0.engine.resume_consumer(id).await.map_err(engine_error)?;
                Ok(("consumerResumed", json!({"consumer_id": consumer_id})))
            }
            ClientMsg::PauseConsumer { consumer_id } => {
                let id = self.own_consumer(&consumer_id).await?;
                self.media.0.engine.pause_consumer(id).await.map_err(engine_error)?;
                Ok(("consumerPaused", json!({"consumer_id": consumer_id})))
            }
            ClientMsg::PauseProducer { producer_id } => {
                let id = self.own_producer(&producer_id).await?;
                self.media.0.engine.pause_producer(id).await.map_err(engine_error)?;
                self.broadcast(json!({"type": "producerPaused", "producer_id": producer_id})).await;
                Ok(("producerPaused", json!({"producer_id": producer_id})))
            }
            ClientMsg::ResumeProducer { producer_id } => {
                let id = self.own_producer(&producer_id).await?;
                self.media.0.engine.resume_producer(id).await.map_err(engine_error)?;
                self.broadcast(json!({"type": "producerResumed", "producer_id": producer_id})).await;
                Ok(("producerResumed", json!({"producer_id": producer_id})))
            }
            ClientMsg::CloseProducer { producer_id } => {
                let id = self.own_producer(&producer_id).await?;
                self.media.0.engine.close_producer(id.clone()).await.map_err(engine_error)?;
                if let Some(room) = self.media.0.rooms.lock().await.get_mut(self.room_id()?) {
                    room.producer_closed(&id, Some(self.peer_id));
                }
                self.media.recording_producer_closed(&id).await;
                Ok(("producerClosed", json!({"producer_id": producer_id})))
            }
        }
    }

    async fn auth(&mut self, token: &str, phone_e164: Option<&str>) -> Result<(&'static str, Value), SignalError> {
        let (user, _) = tokens::authenticate(&self.media.0.core.db, token).await.map_err(|e| fatal("auth_failed", e.to_string()))?;
        if let Some(given) = phone_e164 {
            let given = phone::normalize(given, &self.media.0.core.config.phone_region).map_err(|e| fatal("auth_failed", e.to_string()))?;
            if given != user.phone_e164 {
                return Err(fatal("auth_failed", "the phone number does not match the token"));
            }
        }
        let max = self.media.0.core.config.limits.max_sockets_per_user;
        if !self.media.0.usage.take_socket(&user.user_id, max) {
            return Err(fatal("too_many_sockets", format!("at most {max} signaling sockets per user; close another first")));
        }
        let view = user.view();
        self.user = Some(user);
        Ok(("authOk", json!({"user": view})))
    }

    fn room_id(&self) -> Result<&str, SignalError> {
        self.joined.as_ref().map(|j| j.room_id.as_str()).ok_or_else(|| refuse("not_in_room", "join a room first"))
    }

    /// Runs `f` on this peer's entry in its room.
    async fn with_peer<T>(&self, f: impl FnOnce(&mut CallRoom, PeerId) -> Result<T, SignalError>) -> Result<T, SignalError> {
        let room_id = self.room_id()?.to_string();
        let mut rooms = self.media.0.rooms.lock().await;
        let room = rooms.get_mut(&room_id).ok_or_else(|| refuse("not_in_room", "the room has closed"))?;
        if !room.peers.contains_key(&self.peer_id) {
            return Err(refuse("not_in_room", "not in this room"));
        }
        f(room, self.peer_id)
    }

    async fn broadcast(&self, msg: Value) {
        let _ = self
            .with_peer(|room, me| {
                room.broadcast(me, &msg);
                Ok(())
            })
            .await;
    }

    async fn own_transport(&self, id: &str, direction: Option<Direction>) -> Result<TransportId, SignalError> {
        let tid: TransportId = parse_id("transport", id)?;
        self.with_peer(|room, me| match room.peers[&me].transports.get(&tid) {
            Some(d) if direction.is_none_or(|want| want == *d) => Ok(tid.clone()),
            Some(_) => Err(refuse("wrong_direction", format!("transport {id} has the other direction"))),
            None => Err(refuse("not_found", format!("unknown transport {id:?}"))),
        })
        .await
    }

    async fn own_producer(&self, id: &str) -> Result<ProducerId, SignalError> {
        let pid: ProducerId = parse_id("producer", id)?;
        self.with_peer(|room, me| {
            if room.peers[&me].producers.contains_key(&pid) {
                Ok(pid.clone())
            } else {
                Err(refuse("not_found", format!("unknown producer {id:?}")))
            }
        })
        .await
    }

    async fn own_consumer(&self, id: &str) -> Result<ConsumerId, SignalError> {
        let cid: ConsumerId = parse_id("consumer", id)?;
        self.with_peer(|room, me| {
            if room.peers[&me].consumers.contains_key(&cid) {
                Ok(cid.clone())
            } else {
                Err(refuse("not_found", format!("unknown consumer {id:?}")))
            }
        })
        .await
    }

    async fn join(
        &mut self,
        user: &User,
        room_id: String,
        join_token: &str,
        rtp_capabilities: Value,
    ) -> Result<(&'static str, Value), SignalError> {
        if let Some(j) = &self.joined {
            // A call closed under this peer (its media worker failed) no longer holds it.
            let still_there = self.media.0.rooms.lock().await.get(&j.room_id).is_some_and(|r| r.peers.contains_key(&self.peer_id));
            if still_there {
                return Err(refuse("already_in_room", format!("already in room {}; leave it first", j.room_id)));
            }
            self.joined = None;
        }
        if !self.media.0.core.join_tokens.check(join_token, &user.user_id, &room_id) {
            return Err(refuse("invalid_join_token", "join token invalid, expired or for another room"));
        }
        let rtp_capabilities: RtpCapabilities = typed("rtpCapabilities", rtp_capabilities)?;
        let engine = &self.media.0.engine;
        let mut rooms = self.media.0.rooms.lock().await;
        if !rooms.contains_key(&room_id) {
            let router = engine.create_router().await.map_err(engine_error)?;
            tracing::info!(%room_id, %router, "router created");
            rooms.insert(room_id.clone(), CallRoom::new(router));
        }
        let room = rooms.get_mut(&room_id).ok_or_else(|| refuse("internal", "room vanished"))?; // inserted above
        let existing = room.producers_except(self.peer_id);
        let peers = room.peers_except(self.peer_id);
        room.peers.insert(self.peer_id, Peer::new(user.user_id.clone(), user.display_name.clone(), self.tx.clone()));
        room.broadcast(
            self.peer_id,
            &json!({"type": "participantJoined", "peer_user_id": user.user_id, "display_name": user.display_name}),
        );
        drop(rooms);
        self.media.0.core.presence.enter(&room_id, Participant { user_id: user.user_id.clone(), display_name: user.display_name.clone() });
        self.joined = Some(Joined { room_id: room_id.clone(), rtp_capabilities });
        tracing::info!(%room_id, user_id = %user.user_id, peer = self.peer_id, "peer joined");
        Ok((
            "roomJoined",
            json!({
                "room_id": room_id,
                "rtpCapabilities": self.media.0.core.rtp_capabilities,
                "existingProducers": existing,
                "peers": peers,
            }),
        ))
    }

    async fn create_transport(
        &mut self,
        direction: Direction,
        rtp_capabilities: Option<Value>,
    ) -> Result<(&'static str, Value), SignalError> {
        self.room_id()?;
        if self.transports.check().is_err() {
            return Err(refuse("rate_limited", "too many transports created; wait a minute"));
        }
        let router = self
            .with_peer(|room, me| {
                let max = self.media.0.core.config.limits.max_transports_per_socket;
                if room.peers[&me].transports.len() >= max {
                    return Err(refuse("too_many_transports", format!("at most {max} open transports per socket")));
                }
                Ok(room.router.clone())
            })
            .await?;
        let send_caps = match (direction, rtp_capabilities) {
            (Direction::Send, Some(v)) => Some(typed::<RtpCapabilities>("rtpCapabilities", v)?),
            (Direction::Send, None) => {
                return Err(refuse("invalid_message", "a send transport needs `rtpCapabilities` (device.sendRtpCapabilities)"))
            }
            (Direction::Recv, _) => None,
        };
        let sfu_direction = match direction {
            Direction::Send => sfu::Direction::Send,
            Direction::Recv => sfu::Direction::Recv,
        };
        let user_id = self.user.as_ref().map(|u| u.user_id.clone()).unwrap_or_default(); // authenticated before any room
        let max = self.media.0.core.config.limits.max_transports_per_user;
        if !self.media.0.usage.take_transport(&user_id, max) {
            return Err(refuse("too_many_transports", format!("at most {max} open transports per user, over all sockets")));
        }
        let options = match self.media.0.engine.create_webrtc_transport(router, sfu_direction, send_caps).await {
            Ok(options) => options,
            Err(e) => {
                self.media.0.usage.release_transports(&user_id, 1);
                return Err(engine_error(e));
            }
        };
        let id = options.id.clone();
        let registered = self
            .with_peer(|room, me| {
                if let Some(peer) = room.peers.get_mut(&me) {
                    peer.transports.insert(id.clone(), direction);
                }
                Ok(())
            })
            .await;
        if let Err(e) = registered {
            self.media.0.usage.release_transports(&user_id, 1);
            let _ = self.media.0.engine.close_transport(id).await;
            return Err(e);
        }
        let direction = if direction == Direction::Send { "send" } else { "recv" };
        Ok(("transportCreated", json!({"direction": direction, "transportOptions": options})))
    }

    async fn produce(
        &mut self,
        user: &User,
        transport_id: &str,
        kind: &str,
        rtp_parameters: Value,
    ) -> Result<(&'static str, Value), SignalError> {
        let tid = self.own_transport(transport_id, Some(Direction::Send)).await?;
        let media_kind: sfu::rtp_parameters::MediaKind = typed("kind", json!(kind))?;
        let rtp_parameters = typed("rtpParameters", rtp_parameters)?;
        let count = self.with_peer(|room, me| Ok(room.peers[&me].producers.len())).await?;
        let max = self.media.0.core.config.limits.max_producers_per_socket;
        if count >= max {
            return Err(refuse("too_many_producers", format!("at most {max} producers per socket")));
        }
        let producer = self.media.0.engine.produce(tid, media_kind, rtp_parameters).await.map_err(engine_error)?;
        let kind = kind.to_string();
        let registered = self
            .with_peer(|room, me| {
                if let Some(peer) = room.peers.get_mut(&me) {
                    peer.producers.insert(producer.clone(), kind.clone());
                }
                room.broadcast(
                    me,
                    &json!({"type": "newProducer", "producer_id": producer.to_string(), "kind": kind, "peer_user_id": user.user_id}),
                );
                Ok(room.router.clone())
            })
            .await;
        let router = match registered {
            Ok(router) => router,
            Err(e) => {
                let _ = self.media.0.engine.close_producer(producer).await;
                return Err(e);
            }
        };
        let room_id = self.room_id()?.to_string();
        self.media.recording_producer_added(&room_id, &router, &producer, &kind, &user.user_id).await;
        Ok(("produced", json!({"producer_id": producer.to_string()})))
    }

    async fn consume(&mut self, transport_id: &str, producer_id: &str) -> Result<(&'static str, Value), SignalError> {
        let tid = self.own_transport(transport_id, Some(Direction::Recv)).await?;
        let pid: ProducerId = parse_id("producer", producer_id)?;
        self.with_peer(|room, me| {
            if room.producer_owner(&pid).is_none() {
                return Err(refuse("not_found", format!("no producer {producer_id:?} in this room")));
            }
            let max = self.media.0.core.config.limits.max_consumers_per_socket;
            if room.peers[&me].consumers.len() >= max {
                return Err(refuse("too_many_consumers", format!("at most {max} consumers per socket")));
            }
            // One consumer per producer and transport: more would only multiply our egress.
            if room.peers[&me].consumes(&tid, &pid) {
                return Err(refuse("already_consuming", format!("producer {producer_id} is already consumed on this transport")));
            }
            Ok(())
        })
        .await?;
        let caps = self.joined.as_ref().map(|j| j.rtp_capabilities.clone()).ok_or_else(|| refuse("not_in_room", "join first"))?;
        let options = self.media.0.engine.consume(tid.clone(), pid.clone(), caps).await.map_err(engine_error)?;
        let cid = options.id.clone();
        self.with_peer(|room, me| {
            if let Some(peer) = room.peers.get_mut(&me) {
                peer.consumers.insert(cid.clone(), Consuming { producer: pid.clone(), transport: tid.clone() });
            }
            Ok(())
        })
        .await?;
        Ok(("consumerCreated", json!({"consumerOptions": options})))
    }

    /// Leaves the current room, closing everything this peer owns; returns the room left.
    async fn leave(&mut self) -> Option<String> {
        let joined = self.joined.take()?;
        let room_id = joined.room_id;
        let (peer, router_to_close) = {
            let mut rooms = self.media.0.rooms.lock().await;
            let room = rooms.get_mut(&room_id)?;
            let peer = room.peers.remove(&self.peer_id)?;
            for producer in peer.producers.keys() {
                room.producer_closed(producer, Some(self.peer_id));
            }
            room.broadcast(self.peer_id, &json!({"type": "participantLeft", "peer_user_id": peer.user_id}));
            let router = if room.peers.is_empty() { rooms.remove(&room_id).map(|r| r.router) } else { None };
            (peer, router)
        };
        self.media.0.usage.release_transports(&peer.user_id, peer.transports.len());
        let engine = &self.media.0.engine;
        for transport in peer.transports.keys() {
            if let Err(e) = engine.close_transport(transport.clone()).await {
                tracing::debug!(%transport, "close transport on leave: {e}");
            }
        }
        if let Some(router) = router_to_close {
            if let Err(e) = engine.close_router(router.clone()).await {
                tracing::warn!(%router, "close router: {e}");
            }
            tracing::info!(%room_id, "last peer left; router closed");
        }
        for producer in peer.producers.keys() {
            self.media.recording_producer_closed(producer).await;
        }
        self.media.0.core.presence.leave(&room_id, &peer.user_id);
        tracing::info!(%room_id, user_id = %peer.user_id, peer = self.peer_id, "peer left");
        Some(room_id)
    }
}
