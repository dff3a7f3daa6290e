//! WebSocket signaling messages (PROTOCOL.md). Room and transport ids are snake_case fields,
//! mediasoup objects keep their camelCase names and are passed to the engine as typed values.
use serde::Deserialize;
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

/// A message parsed from one WebSocket text frame: its `requestId` (any JSON value, echoed
/// as given) and the typed message, or why it could not be read.
pub struct Incoming {
    pub request_id: Value,
    pub msg: Result<ClientMsg, String>,
}

pub fn parse(text: &str) -> Incoming {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Incoming { request_id: Value::Null, msg: Err(format!("invalid JSON: {e}")) },
    };
    let request_id = value.get("requestId").cloned().unwrap_or(Value::Null);
    if !value.is_object() {
        return Incoming { request_id, msg: Err("a message is a JSON object with a `type`".into()) };
    }
    let msg = serde_json::from_value(value).map_err(|e| e.to_string());
    Incoming { request_id, msg }
}

/// A server message `{type, requestId?, ...fields}`.
pub fn reply(kind: &str, request_id: &Value, fields: Value) -> Value {
    let mut map = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    map.insert("type".into(), json!(kind));
    if !request_id.is_null() {
        map.insert("requestId".into(), request_id.clone());
    }
    Value::Object(map)
}

pub fn error(request_id: &Value, code: &str, message: &str) -> Value {
    reply("error", request_id, json!({"code": code, "error": message}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typed_messages_and_keeps_the_request_id() {
        let m = parse(r#"{"type":"createTransport","requestId":7,"direction":"send","rtpCapabilities":{"codecs":[]}}"#);
        assert_eq!(m.request_id, json!(7));
        assert!(matches!(m.msg, Ok(ClientMsg::CreateTransport { direction: Direction::Send, rtp_capabilities: Some(_) })));
        let m = parse(r#"{"type":"leaveRoom","requestId":"a"}"#);
        assert!(matches!(m.msg, Ok(ClientMsg::LeaveRoom { room_id: None })));
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        for text in ["", "null", "[]", "{", r#"{"type":"nope"}"#, r#"{"type":"consume","transport_id":5}"#, r#"{"requestId":1}"#] {
            assert!(parse(text).msg.is_err(), "{text}");
        }
        assert_eq!(parse(r#"{"type":1,"requestId":"x"}"#).request_id, json!("x"));
    }

    #[test]
    fn replies_echo_the_request_id() {
        let r = reply("produced", &json!("r1"), json!({"producer_id": "p"}));
        assert_eq!(r, json!({"type": "produced", "requestId": "r1", "producer_id": "p"}));
        let e = error(&Value::Null, "bad", "Bad.");
        assert_eq!(e, json!({"type": "error", "code": "bad", "error": "Bad."}));
    }
}
