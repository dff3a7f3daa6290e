//! WebSocket signaling messages (PROTOCOL.md). Room and transport ids are snake_case fields,
//! mediasoup objects keep their camelCase names and are passed to the engine as typed values.
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Send,
    Recv,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientMsg {
    Auth {
        token: String,
        phone_e164: Option<String>,
    },
    JoinRoom {
        room_id: String,
        join_token: String,
        #[serde(rename = "rtpCapabilities")]
        rtp_capabilities: Value,
    },
    CreateTransport {
        direction: Direction,
        #[serde(rename = "rtpCapabilities", default)]
        rtp_capabilities: Option<Value>,
    },
    ConnectTransport {
        transport_id: String,
        #[serde(rename = "dtlsParameters")]
        dtls_parameters: Value,
    },
    Produce {
        transport_id: String,
        kind: String,
        #[serde(rename = "rtpParameters")]
        rtp_parameters: Value,
        #[serde(rename = "appData", default)]
        app_data: Option<Value>,
    },
    Consume {
        transport_id: String,
        producer_id: String,
    },
    ResumeConsumer {
        consumer_id: String,
    },
    PauseConsumer {
        consumer_id: String,
    },
    PauseProducer {
        producer_id: String,
    },
    ResumeProducer {
        producer_id: String,
    },
    CloseProducer {
        producer_id: String,
    },
    LeaveRoom {
        #[serde(default)]
        room_id: Option<String>,
    },
    Ping,
}

/// A message parsed from one WebSocket text frame: its `requestId` exactly as sent (any JSON
/// value, kept as raw text so that `18446744073709551616` or `-0` come back unchanged) and the
/// typed message, or why it could not be read.
pub struct Incoming {
    pub request_id: Option<Box<RawValue>>,
    pub msg: Result<ClientMsg, String>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "requestId", default)]
    request_id: Option<Box<RawValue>>,
}

pub fn parse(text: &str) -> Incoming {
    let request_id = match serde_json::from_str::<Envelope>(text) {
        Ok(envelope) => envelope.request_id,
        Err(e) if e.is_syntax() || e.is_eof() => return Incoming { request_id: None, msg: Err(format!("invalid JSON: {e}")) },
        Err(_) => return Incoming { request_id: None, msg: Err("a message is a JSON object with a `type`".into()) },
    };
    let msg = serde_json::from_str::<ClientMsg>(text).map_err(|e| e.to_string());
    Incoming { request_id, msg }
}

/// A server message `{requestId?, type, ...fields}` as text, `requestId` written as it came.
pub fn render(kind: &str, request_id: Option<&RawValue>, fields: Value) -> String {
    let mut map = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    map.remove("requestId");
    map.insert("type".into(), json!(kind));
    let body = Value::Object(map).to_string();
    match request_id {
        None => body,
        // `body` is a serialized object: it starts with the one-byte `{`, and has a member.
        Some(raw) => format!("{{\"requestId\":{},{}", raw.get(), &body[1..]),
    }
}

/// An error reply `{requestId?, type: "error", code, error}` as text.
pub fn error(request_id: Option<&RawValue>, code: &str, message: &str) -> String {
    render("error", request_id, json!({"code": code, "error": message}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typed_messages_and_keeps_the_request_id() {
        let m = parse(r#"{"type":"createTransport","requestId":7,"direction":"send","rtpCapabilities":{"codecs":[]}}"#);
        assert_eq!(m.request_id.unwrap().get(), "7");
        assert!(matches!(m.msg, Ok(ClientMsg::CreateTransport { direction: Direction::Send, rtp_capabilities: Some(_) })));
        let m = parse(r#"{"type":"leaveRoom","requestId":"a"}"#);
        assert!(matches!(m.msg, Ok(ClientMsg::LeaveRoom { room_id: None })));
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        for text in ["", "null", "[]", "{", r#"{"type":"nope"}"#, r#"{"type":"consume","transport_id":5}"#, r#"{"requestId":1}"#] {
            assert!(parse(text).msg.is_err(), "{text}");
        }
        assert_eq!(parse(r#"{"type":1,"requestId":"x"}"#).request_id.unwrap().get(), r#""x""#);
    }

    #[test]
    fn request_ids_come_back_byte_for_byte() {
        for id in ["18446744073709551616", "-0", "1.0", r#""x""#, r#"{"a":[1, 2]}"#, "[]", "0.30000000000000004"] {
            let m = parse(&format!(r#"{{"type":"ping","requestId":{id}}}"#));
            assert!(m.msg.is_ok(), "{id}");
            let reply = render("pong", m.request_id.as_deref(), json!({}));
            assert_eq!(reply, format!(r#"{{"requestId":{id},"type":"pong"}}"#));
        }
        // A number no f64 holds: the message is refused, its requestId still echoed as sent.
        let m = parse(r#"{"type":"ping","requestId":1e400}"#);
        assert!(m.msg.is_err());
        assert_eq!(m.request_id.unwrap().get(), "1e400");
    }

    #[test]
    fn replies_echo_the_request_id() {
        let id = RawValue::from_string(r#""r1""#.into()).unwrap();
        let r: Value = serde_json::from_str(&render("produced", Some(&id), json!({"producer_id": "p"}))).unwrap();
        assert_eq!(r, json!({"type": "produced", "requestId": "r1", "producer_id": "p"}));
        let e: Value = serde_json::from_str(&error(None, "bad", "Bad.")).unwrap();
        assert_eq!(e, json!({"type": "error", "code": "bad", "error": "Bad."}));
    }
}
