//! WebSocket signaling messages (docs/protocol.md), both ways, as types. Room and transport ids are
//! snake_case fields; mediasoup objects keep their camelCase names and are the engine's own types,
//! read from the client's text in one pass and written back as they are.
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sfu::rtp_parameters::{DtlsParameters, IceParameters, MediaKind, RtpCapabilities, RtpParameters};
use sfu::{ConsumerId, ConsumerOptions, ProducerId, TransportId, WebRtcTransportOptions};

use crate::plugins::identity::UserView;
use crate::turn::IceServer;

pub use sfu::Direction;

/// What a client may send. Unknown fields are ignored; of `appData`, only `source` is read.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientMessage {
    Auth {
        token: String,
        phone_e164: Option<String>,
    },
    JoinRoom {
        room_id: String,
        join_token: String,
        /// The device's receive capabilities.
        #[serde(rename = "rtpCapabilities")]
        rtp_capabilities: RtpCapabilities,
    },
    CreateTransport {
        direction: Direction,
        /// `device.sendRtpCapabilities`, required for `send`.
        #[serde(rename = "rtpCapabilities", default)]
        rtp_capabilities: Option<RtpCapabilities>,
    },
    ConnectTransport {
        transport_id: TransportId,
        #[serde(rename = "dtlsParameters")]
        dtls_parameters: DtlsParameters,
    },
    Produce {
        transport_id: TransportId,
        kind: MediaKind,
        #[serde(rename = "rtpParameters")]
        rtp_parameters: RtpParameters,
        /// mediasoup's free-form `appData`; its `source` ("camera", "screen", ...) is kept
        /// and shown to the room (anything else in it, or any other shape, is ignored).
        #[serde(rename = "appData", default)]
        app_data: Option<serde_json::Value>,
    },
    Consume {
        transport_id: TransportId,
        producer_id: ProducerId,
    },
    ResumeConsumer {
        consumer_id: ConsumerId,
    },
    /// mediasoup's `consumer.setPreferredLayers` for one of the peer's consumers: the highest
    /// simulcast stream (`spatialLayer`, 0 = lowest) and temporal layer (absent: the highest) to
    /// receive; clamped to what the producer sends.
    SetConsumerPreferredLayers {
        consumer_id: ConsumerId,
        #[serde(rename = "spatialLayer")]
        spatial_layer: u8,
        #[serde(rename = "temporalLayer", default)]
        temporal_layer: Option<u8>,
    },
    /// mediasoup's `consumer.setPriority` for one of the peer's consumers: 1..=255 (0 counts
    /// as 1), its weight when its transport's downlink is shared among the consumers' layers.
    SetConsumerPriority {
        consumer_id: ConsumerId,
        priority: u8,
    },
    /// mediasoup's `consumer.requestKeyFrame`: asks the producer's stream this consumer
    /// receives for a keyframe (at most one per second and stream reaches the sender).
    RequestConsumerKeyFrame {
        consumer_id: ConsumerId,
    },
    PauseConsumer {
        consumer_id: ConsumerId,
    },
    PauseProducer {
        producer_id: ProducerId,
    },
    ResumeProducer {
        producer_id: ProducerId,
    },
    CloseProducer {
        producer_id: ProducerId,
    },
    LeaveRoom {
        #[serde(default)]
        room_id: Option<String>,
    },
    /// New ICE parameters for one of the peer's transports (mediasoup's
    /// `WebRtcTransport.restartIce()`); the client passes them to `transport.restartIce()`.
    RestartIce {
        transport_id: TransportId,
    },
    /// mediasoup's `WebRtcTransport.getStats()` of one of the peer's transports.
    GetTransportStats {
        transport_id: TransportId,
    },
    /// mediasoup's `Producer.getStats()` of one of the peer's producers.
    GetProducerStats {
        producer_id: ProducerId,
    },
    /// mediasoup's `Consumer.getStats()` of one of the peer's consumers.
    GetConsumerStats {
        consumer_id: ConsumerId,
    },
    /// Takes this user's place in `room_id` back on a new socket, transports and all: the
    /// `resume_token` of the `roomJoined` that made it. For a client whose signaling socket was
    /// lost (a network change) while its media may still run.
    ResumeSession {
        room_id: String,
        resume_token: String,
    },
    Ping,
}

impl ClientMessage {
    /// Its `type` as the client wrote it (`"auth"`, `"joinRoom"`, ...): the metrics' label.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Auth { .. } => "auth",
            ClientMessage::JoinRoom { .. } => "joinRoom",
            ClientMessage::CreateTransport { .. } => "createTransport",
            ClientMessage::ConnectTransport { .. } => "connectTransport",
            ClientMessage::Produce { .. } => "produce",
            ClientMessage::Consume { .. } => "consume",
            ClientMessage::ResumeConsumer { .. } => "resumeConsumer",
            ClientMessage::PauseConsumer { .. } => "pauseConsumer",
            ClientMessage::SetConsumerPreferredLayers { .. } => "setConsumerPreferredLayers",
            ClientMessage::RequestConsumerKeyFrame { .. } => "requestConsumerKeyFrame",
            ClientMessage::SetConsumerPriority { .. } => "setConsumerPriority",
            ClientMessage::PauseProducer { .. } => "pauseProducer",
            ClientMessage::ResumeProducer { .. } => "resumeProducer",
            ClientMessage::CloseProducer { .. } => "closeProducer",
            ClientMessage::LeaveRoom { .. } => "leaveRoom",
            ClientMessage::RestartIce { .. } => "restartIce",
            ClientMessage::ResumeSession { .. } => "resumeSession",
            ClientMessage::GetTransportStats { .. } => "getTransportStats",
            ClientMessage::GetProducerStats { .. } => "getProducerStats",
            ClientMessage::GetConsumerStats { .. } => "getConsumerStats",
            ClientMessage::Ping => "ping",
        }
    }
}

/// A message parsed from one WebSocket text frame: its `requestId` exactly as sent (any JSON
/// value, kept as raw text so that `18446744073709551616` or `-0` come back unchanged) and the
/// typed message, or why it could not be read.
pub struct Incoming {
    pub request_id: Option<Box<RawValue>>,
    pub msg: Result<ClientMessage, String>,
}

/// Reads a frame in one pass: the `requestId` is kept as raw text on the way, everything else
/// goes straight into [`ClientMessage`].
pub fn parse(text: &str) -> Incoming {
    let mut request_id = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = de.deserialize_map(FrameVisitor { request_id: &mut request_id }).and_then(|msg| de.end().map(|()| msg));
    match parsed {
        Ok(msg) => Incoming { request_id: request_id.map(ToOwned::to_owned), msg: Ok(msg) },
        Err(e) => refused(text, e),
    }
}

/// A frame that is not a valid message. Its `requestId` is found again with a read that skips
/// every other field, so that it is echoed whichever field was wrong (and wherever it stands).
fn refused(text: &str, error: serde_json::Error) -> Incoming {
    #[derive(Deserialize)]
    struct Envelope {
        // Not `Option`'s own deserializer: it would read `"requestId": null` as no requestId.
        #[serde(rename = "requestId", default, deserialize_with = "present")]
        request_id: Option<Box<RawValue>>,
    }
    fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
        Box::<RawValue>::deserialize(d).map(Some)
    }
    match serde_json::from_str::<Envelope>(text) {
        Ok(envelope) => Incoming { request_id: envelope.request_id, msg: Err(error.to_string()) },
        Err(e) if e.is_syntax() || e.is_eof() => Incoming { request_id: None, msg: Err(format!("invalid JSON: {e}")) },
        Err(_) => Incoming { request_id: None, msg: Err("a message is a JSON object with a `type`".into()) },
    }
}

/// The frame's object: hands its members to [`ClientMessage`]'s own deserializer through
/// [`Members`], which notes the raw `requestId` as it passes.
struct FrameVisitor<'r, 'de> {
    request_id: &'r mut Option<&'de RawValue>,
}

impl<'de> Visitor<'de> for FrameVisitor<'_, 'de> {
    type Value = ClientMessage;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with a `type`")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ClientMessage, A::Error> {
        ClientMessage::deserialize(Members { map, request_id: self.request_id, at_request_id: false })
    }
}

struct Members<'r, 'de, A> {
    map: A,
    request_id: &'r mut Option<&'de RawValue>,
    at_request_id: bool,
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for Members<'_, 'de, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Members<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.map.next_key::<String>()? else { return Ok(None) };
        self.at_request_id = key == "requestId";
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        if !std::mem::take(&mut self.at_request_id) {
            return self.map.next_value_seed(seed);
        }
        let raw: &'de RawValue = self.map.next_value()?;
        *self.request_id = Some(raw);
        // The message reads it too, as any member: a number no f64 holds is refused as before.
        seed.deserialize(raw).map_err(de::Error::custom)
    }
}

/// `existingProducers` entries and `newProducer` notifications.
#[derive(Debug, Clone, Serialize)]
pub struct ProducerInfo {
    pub producer_id: ProducerId,
    pub kind: MediaKind,
    pub peer_user_id: String,
    /// `{source}` when the producer's `appData` named one.
    #[serde(rename = "appData", skip_serializing_if = "Option::is_none")]
    pub app_data: Option<ProducerAppData>,
}

/// The part of a producer's `appData` the room hears.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProducerAppData {
    pub source: String,
}

impl ProducerAppData {
    /// `appData.source` when it is a short name (letters, digits, `-`, `_`; 1 to 32 of them).
    pub fn from_client(app_data: Option<&serde_json::Value>) -> Option<ProducerAppData> {
        let source = app_data?.get("source")?.as_str()?;
        let valid = (1..=32).contains(&source.len()) && source.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| ProducerAppData { source: source.to_string() })
    }
}

/// `peers` entries of `roomJoined`.
#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    pub peer_user_id: String,
    pub display_name: String,
}

/// What the server sends: replies (each echoing the request's `requestId`) and notifications.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    AuthOk {
        user: UserView,
    },
    AuthError {
        code: &'static str,
        error: String,
    },
    Error {
        code: &'static str,
        error: String,
    },
    Pong,
    RoomJoined {
        room_id: String,
        #[serde(rename = "rtpCapabilities")]
        rtp_capabilities: RtpCapabilities,
        #[serde(rename = "existingProducers")]
        existing_producers: Vec<ProducerInfo>,
        peers: Vec<PeerInfo>,
        /// TURN servers with this user's credentials; absent when the server has no TURN.
        #[serde(rename = "iceServers", skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
        /// The secret that lets a new socket of this client take this session back
        /// (`resumeSession`); `rt_` and 48 hex digits.
        resume_token: String,
    },
    /// This socket now holds the session `resumeSession` named: what is in the room now (what
    /// the client heard before may be stale: notifications sent to a lost socket are lost).
    SessionResumed {
        room_id: String,
        /// Every other peer's producers.
        #[serde(rename = "existingProducers")]
        existing_producers: Vec<ProducerInfo>,
        peers: Vec<PeerInfo>,
        #[serde(rename = "iceServers", skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    RoomLeft {
        room_id: String,
    },
    TransportCreated {
        direction: Direction,
        #[serde(rename = "transportOptions")]
        transport_options: WebRtcTransportOptions,
    },
    TransportConnected {
        transport_id: TransportId,
    },
    Produced {
        producer_id: ProducerId,
    },
    ConsumerCreated {
        #[serde(rename = "consumerOptions")]
        consumer_options: ConsumerOptions,
    },
    ConsumerResumed {
        consumer_id: ConsumerId,
    },
    ConsumerPaused {
        consumer_id: ConsumerId,
    },
    /// `setConsumerPreferredLayers` done: the layers now preferred (after clamping); both
    /// absent for a consumer of a single-stream producer (nothing to choose).
    ConsumerPreferredLayersSet {
        consumer_id: ConsumerId,
        #[serde(rename = "spatialLayer", skip_serializing_if = "Option::is_none")]
        spatial_layer: Option<u8>,
        #[serde(rename = "temporalLayer", skip_serializing_if = "Option::is_none")]
        temporal_layer: Option<u8>,
    },
    ConsumerKeyFrameRequested {
        consumer_id: ConsumerId,
    },
    /// `setConsumerPriority` done: the priority now (1..=255).
    ConsumerPrioritySet {
        consumer_id: ConsumerId,
        priority: u8,
    },
    /// To a consumer's owner when its score changes (mediasoup's `consumer.on("score")`, as
    /// mediasoup-demo forwards it): `score` 0..=10 from the loss the receiver reports,
    /// `producerScore` its producer's.
    ConsumerScore {
        consumer_id: ConsumerId,
        score: u8,
        #[serde(rename = "producerScore")]
        producer_score: u8,
    },
    /// To a consumer's owner when the layers it receives change (mediasoup's
    /// `consumer.on("layerschange")`, as mediasoup-demo forwards it).
    ConsumerLayersChanged {
        consumer_id: ConsumerId,
        #[serde(rename = "spatialLayer")]
        spatial_layer: u8,
        #[serde(rename = "temporalLayer")]
        temporal_layer: u8,
    },
    ProducerPaused {
        producer_id: ProducerId,
    },
    ProducerResumed {
        producer_id: ProducerId,
    },
    ProducerClosed {
        producer_id: ProducerId,
    },
    // Unprompted.
    NewProducer(ProducerInfo),
    ParticipantJoined(PeerInfo),
    ParticipantLeft {
        peer_user_id: String,
    },
    RoomClosed {
        room_id: String,
        reason: &'static str,
    },
    IceRestarted {
        transport_id: TransportId,
        #[serde(rename = "iceParameters")]
        ice_parameters: IceParameters,
        /// Fresh TURN credentials (the old ones may be near their end); absent without TURN.
        #[serde(rename = "iceServers", skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// `getTransportStats`: `stats` is mediasoup's array (one `webrtc-transport` entry).
    TransportStats {
        transport_id: TransportId,
        stats: Vec<sfu::stats::TransportStats>,
    },
    /// `getProducerStats`: one `inbound-rtp` entry.
    ProducerStats {
        producer_id: ProducerId,
        stats: Vec<sfu::stats::RtpStreamStats>,
    },
    /// `getConsumerStats`: `outbound-rtp`, then the producer's `inbound-rtp`.
    ConsumerStats {
        consumer_id: ConsumerId,
        stats: Vec<sfu::stats::RtpStreamStats>,
    },
    /// To a producer's owner when its score changes (mediasoup's `producer.on("score")`, as
    /// mediasoup-demo forwards it): one entry per encoding.
    ProducerScore {
        producer_id: ProducerId,
        score: Vec<sfu::stats::EncodingScore>,
    },
    /// This socket's place in the room went to a newer session of the same user: a join (a
    /// reload, a second tab; reason `new_session`) or a `resumeSession` (`resumed`); the socket
    /// is closed after it.
    SessionReplaced {
        room_id: String,
        reason: &'static str,
    },
}

impl ServerMessage {
    /// The message as text, `requestId` first and written as it came.
    pub fn render(&self, request_id: Option<&RawValue>) -> String {
        let body = match serde_json::to_string(self) {
            Ok(body) => body,
            // Only a map with non-string keys fails to serialize, and none of ours has one.
            Err(e) => format!(r#"{{"type":"error","code":"internal","error":{}}}"#, serde_json::Value::from(e.to_string())),
        };
        match request_id {
            None => body,
            // `body` is a serialized object with a `type`: it starts with the one-byte `{`.
            Some(raw) => format!("{{\"requestId\":{},{}", raw.get(), &body[1..]),
        }
    }
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
