//! Tests of messages.rs.
use super::*;
use serde_json::{json, Value};

#[test]
fn parses_typed_messages_and_keeps_the_request_id() {
    let m = parse(r#"{"type":"createTransport","requestId":7,"direction":"send","rtpCapabilities":{"codecs":[]}}"#);
    assert_eq!(m.request_id.unwrap().get(), "7");
    assert!(matches!(m.msg, Ok(ClientMessage::CreateTransport { direction: Direction::Send, rtp_capabilities: Some(_) })));
    let m = parse(r#"{"type":"leaveRoom","requestId":"a"}"#);
    assert!(matches!(m.msg, Ok(ClientMessage::LeaveRoom { room_id: None })));
    // The tag may come last; appData and other unknown members are ignored.
    let m = parse(
        r#"{"requestId":[1],"transport_id":"w0-t1-a","kind":"audio","appData":{"x":1},"rtpParameters":{"codecs":[]},"type":"produce"}"#,
    );
    assert_eq!(m.request_id.unwrap().get(), "[1]");
    assert!(matches!(m.msg, Ok(ClientMessage::Produce { kind: MediaKind::Audio, .. })));
}

#[test]
fn bad_messages_are_errors_not_panics() {
    for text in [
        "",
        "null",
        "[]",
        "{",
        r#"{"type":"nope"}"#,
        r#"{"type":"consume","transport_id":5}"#,
        r#"{"requestId":1}"#,
        r#"{"type":"produce","transport_id":"t","kind":"data","rtpParameters":{"codecs":[]}}"#,
        r#"{"type":"ping"} x"#,
    ] {
        assert!(parse(text).msg.is_err(), "{text}");
    }
    assert_eq!(parse(r#"{"type":1,"requestId":"x"}"#).request_id.unwrap().get(), r#""x""#);
    // Whichever member is wrong and wherever the requestId stands, it is echoed.
    assert_eq!(parse(r#"{"type":"nope","requestId":5}"#).request_id.unwrap().get(), "5");
    let m = parse(r#"{"type":"produce","rtpParameters":{"codecs":[{"x":1e400}]},"requestId":6}"#);
    assert!(m.msg.is_err());
    assert_eq!(m.request_id.unwrap().get(), "6");
}

#[test]
fn request_ids_come_back_byte_for_byte() {
    for id in ["18446744073709551616", "-0", "1.0", r#""x""#, r#"{"a":[1, 2]}"#, "[]", "0.30000000000000004", "null"] {
        let m = parse(&format!(r#"{{"type":"ping","requestId":{id}}}"#));
        assert!(m.msg.is_ok(), "{id}");
        let reply = ServerMessage::Pong.render(m.request_id.as_deref());
        assert_eq!(reply, format!(r#"{{"requestId":{id},"type":"pong"}}"#));
        // Refused messages echo it the same way (fuzz/regressions/signaling/request-id-null).
        let m = parse(&format!(r#"{{"type":"createTransport","direction":"sideways","requestId":{id}}}"#));
        assert!(m.msg.is_err(), "{id}");
        assert_eq!(m.request_id.map(|r| r.get().to_string()), Some(id.to_string()));
    }
    // A number no f64 holds: the message is refused, its requestId still echoed as sent.
    let m = parse(r#"{"type":"ping","requestId":1e400}"#);
    assert!(m.msg.is_err());
    assert_eq!(m.request_id.unwrap().get(), "1e400");
}

#[test]
fn replies_echo_the_request_id() {
    let id = RawValue::from_string(r#""r1""#.into()).unwrap();
    let producer_id: ProducerId = serde_json::from_value(json!("w0-p1-0")).unwrap();
    let r: Value = serde_json::from_str(&ServerMessage::Produced { producer_id }.render(Some(&id))).unwrap();
    assert_eq!(r, json!({"type": "produced", "requestId": "r1", "producer_id": "w0-p1-0"}));
    let e: Value = serde_json::from_str(&ServerMessage::Error { code: "bad", error: "Bad.".into() }.render(None)).unwrap();
    assert_eq!(e, json!({"type": "error", "code": "bad", "error": "Bad."}));
}

#[test]
fn only_a_short_source_name_is_kept_of_app_data() {
    let keep = |v: Value| ProducerAppData::from_client(Some(&v)).map(|a| a.source);
    assert_eq!(keep(json!({"source": "screen"})), Some("screen".into()));
    assert_eq!(keep(json!({"source": "x".repeat(33)})), None);
    assert_eq!(keep(json!({"source": "<b>"})), None);
    assert_eq!(keep(json!({"source": ""})), None);
    assert_eq!(keep(json!({"source": 5})), None);
    assert_eq!(keep(json!([1, 2])), None);
    assert_eq!(keep(json!("screen")), None);
    assert_eq!(ProducerAppData::from_client(None), None);
}

#[test]
fn notifications_have_the_documented_shapes() {
    let producer_id: ProducerId = serde_json::from_value(json!("w0-p1-0")).unwrap();
    let note = ServerMessage::NewProducer(ProducerInfo {
        producer_id: producer_id.clone(),
        kind: MediaKind::Video,
        peer_user_id: "u".into(),
        app_data: None,
    });
    let v: Value = serde_json::from_str(&note.render(None)).unwrap();
    assert_eq!(v, json!({"type": "newProducer", "producer_id": "w0-p1-0", "kind": "video", "peer_user_id": "u"}));
    let app_data = ProducerAppData::from_client(Some(&json!({"source": "screen", "other": [1]})));
    let note = ServerMessage::NewProducer(ProducerInfo { producer_id, kind: MediaKind::Video, peer_user_id: "u".into(), app_data });
    let v: Value = serde_json::from_str(&note.render(None)).unwrap();
    assert_eq!(v["appData"], json!({"source": "screen"}));
    let note = ServerMessage::ParticipantJoined(PeerInfo { peer_user_id: "u".into(), display_name: "U".into() });
    let v: Value = serde_json::from_str(&note.render(None)).unwrap();
    assert_eq!(v, json!({"type": "participantJoined", "peer_user_id": "u", "display_name": "U"}));
    let v: Value = serde_json::from_str(&ServerMessage::RoomClosed { room_id: "r".into(), reason: "why" }.render(None)).unwrap();
    assert_eq!(v, json!({"type": "roomClosed", "room_id": "r", "reason": "why"}));
    let note = ServerMessage::SessionReplaced { room_id: "r".into(), reason: "new_session" };
    let v: Value = serde_json::from_str(&note.render(None)).unwrap();
    assert_eq!(v, json!({"type": "sessionReplaced", "room_id": "r", "reason": "new_session"}));
    let m = parse(r#"{"type":"restartIce","requestId":1,"transport_id":"w0-t1-a"}"#);
    assert!(matches!(m.msg, Ok(ClientMessage::RestartIce { .. })));
}
