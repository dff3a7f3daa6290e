//! The signaling target: sequences of client messages through the same code a WebSocket runs
//! (`atome::fuzzing::Driven`: parsing, authentication, rate limits, joining, the room's checks
//! of what a peer owns, the engine's operations), on the real server with a real SQLite file.
//!
//! Input: a flags byte, then the messages.
//! - bit 0 clear: text, one frame per line (at most [`MAX_FRAMES`]); `$TOKEN`, `$TOKENB`,
//!   `$ROOM`, `$JOIN`, `$JOINB` (fresh join tokens of users A and B), `$CAPS` (the router's
//!   capabilities as JSON), `$SENDCAPS` (a Chrome device's send capabilities) and `$T0`..`$T9`, `$P0`.., `$C0`.. (the transport, producer and
//!   consumer ids seen so far, in order) are replaced before the frame is sent.
//! - bit 0 set: structured, built with `arbitrary`: ORTC values (capabilities, RTP and DTLS
//!   parameters) from the `ortc` target's builders inside well-formed messages, ids picked from
//!   those seen, and any JSON text now and then.
//! - bit 1 set: no prelude; otherwise the session first authenticates as A and joins the room
//!   with the router's capabilities, as the web client does.
//!
//! A second peer, B, stays in the room between inputs with a send transport and an audio and a
//! video producer (A can consume them; an input may also take B's place, then B is made again).
//!
//! `ATOME_FUZZ_VERBOSE=1` prints every frame and what came back (`cargo run --example replay`).
//!
//! Checked beyond "no panic": every frame is answered, and a frame carrying a `requestId` gets
//! exactly one reply echoing it; every message is a JSON object with a `type`; no error is
//! `internal`; after the socket closes, the engine holds exactly what B holds (nothing A made
//! outlives its session).
use std::cell::RefCell;

use arbitrary::{Result, Unstructured};
use atome::fuzzing::{Driven, World};
use serde_json::{json, Value};
use sfu::rtp_parameters::MediaKind;

/// Frames per input at most (the session's burst allowance is 2x its per-second rate).
pub const MAX_FRAMES: usize = 48;

struct State {
    rt: tokio::runtime::Runtime,
    world: World,
    /// What does not change in a world: the router's capabilities and a device's send
    /// capabilities as JSON.
    fixed: Fixed,
    /// B's session and the ids it owns (producers first).
    b: Option<(Driven, Ids)>,
}

struct Fixed {
    caps_text: String,
    send_caps_text: String,
}

impl Fixed {
    fn new(world: &World) -> Fixed {
        let caps = world.rtp_capabilities();
        let send_caps = testpeer::send_rtp_capabilities(caps);
        Fixed {
            caps_text: serde_json::to_string(caps).expect("capabilities serialize"),
            send_caps_text: serde_json::to_string(&send_caps).expect("capabilities serialize"),
        }
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Ids seen in the server's messages.
#[derive(Default, Clone)]
pub struct Ids {
    pub transports: Vec<String>,
    pub producers: Vec<String>,
    pub consumers: Vec<String>,
    /// `resume_token`s of `roomJoined` replies (B's too: A may authenticate as B and take B's
    /// session back).
    pub resume_tokens: Vec<String>,
}

impl Ids {
    fn learn(&mut self, v: &Value) {
        match v {
            Value::Object(map) => {
                for (k, x) in map {
                    match k.as_str() {
                        "transportOptions" => add(&mut self.transports, &x["id"]),
                        "consumerOptions" => add(&mut self.consumers, &x["id"]),
                        "transport_id" => add(&mut self.transports, x),
                        "producer_id" | "producerId" => add(&mut self.producers, x),
                        "consumer_id" => add(&mut self.consumers, x),
                        "resume_token" => add(&mut self.resume_tokens, x),
                        _ => {}
                    }
                    self.learn(x);
                }
            }
            Value::Array(items) => items.iter().for_each(|x| self.learn(x)),
            _ => {}
        }
    }

    fn pick(list: &[String], i: u8) -> String {
        if list.is_empty() {
            return format!("unknown-{i}");
        }
        list[usize::from(i) % list.len()].clone()
    }
}

/// Remembers an id (at most 10 per kind).
fn add(list: &mut Vec<String>, id: &Value) {
    if let Some(id) = id.as_str() {
        if !list.iter().any(|x| x == id) && list.len() < 10 {
            list.push(id.to_string());
        }
    }
}

/// Runs one input (see the module's documentation).
pub fn run(data: &[u8]) {
    STATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let state = slot.get_or_insert_with(State::build);
        state.run(data);
    });
}

impl State {
    fn build() -> State {
        crate::dtls::install();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let world = rt.block_on(World::build()).unwrap_or_else(|e| panic!("the signaling world cannot start: {e}"));
        State { rt, fixed: Fixed::new(&world), world, b: None }
    }

    fn run(&mut self, data: &[u8]) {
        let Some((&flags, rest)) = data.split_first() else { return };
        let State { rt, world, fixed, b } = self;
        rt.block_on(async {
            // B (made again if an input took its place).
            if b.as_mut().is_none_or(|(s, _)| s.replaced()) {
                if let Some((old, _)) = b.take() {
                    old.close(false).await;
                }
                *b = Some(peer_b(world).await);
            }
            let (b_session, b_ids) = b.as_mut().expect("made above");
            let baseline = world.objects().await.expect("engine stats");
            let mut ids = b_ids.clone();
            let mut a = world.session();
            let mut frames = Vec::new();
            if flags & 2 == 0 {
                frames.push(json!({"type": "auth", "token": world.a.token, "requestId": "auth"}).to_string());
                // As `json!` would write it, the capabilities serialized once per world.
                frames.push(format!(
                    r#"{{"join_token":{},"requestId":"join","room_id":{},"rtpCapabilities":{},"type":"joinRoom"}}"#,
                    json!(world.join_token(&world.a)),
                    json!(world.room_id),
                    fixed.caps_text
                ));
            }
            let structured = flags & 1 == 1;
            let text = String::from_utf8_lossy(rest);
            let mut lines = text.lines();
            let mut u = Unstructured::new(rest);
            let mut sent = 0;
            let verbose = std::env::var_os("ATOME_FUZZ_VERBOSE").is_some();
            loop {
                let frame = if let Some(f) = (!frames.is_empty()).then(|| frames.remove(0)) {
                    f
                } else if sent >= MAX_FRAMES {
                    break;
                } else if structured {
                    match message(&mut u, world, &ids, sent) {
                        Ok(m) => m,
                        Err(_) => break,
                    }
                } else {
                    match lines.next() {
                        Some(line) => substitute(line, world, fixed, &ids),
                        None => break,
                    }
                };
                sent += 1;
                let open = a.frame(&frame).await;
                let out = a.take();
                if verbose {
                    eprintln!("> {frame}");
                    out.iter().for_each(|m| eprintln!("< {m}"));
                }
                for v in check_replies(&frame, &out) {
                    ids.learn(&v);
                }
                b_session.take();
                if !open || a.replaced() {
                    break;
                }
            }
            a.close(false).await;
            b_session.take();
            if !b_session.replaced() {
                let after = world.objects().await.expect("engine stats");
                assert_eq!(after, baseline, "(transports, producers, consumers) after the session closed");
            }
        });
    }
}

/// B joins the room and produces audio and video on a send transport.
async fn peer_b(world: &World) -> (Driven, Ids) {
    let mut b = world.session();
    let mut ids = Ids::default();
    let caps = world.rtp_capabilities();
    let mut frames = vec![
        json!({"type": "auth", "token": world.b.token}),
        json!({"type": "joinRoom", "room_id": world.room_id, "join_token": world.join_token(&world.b), "rtpCapabilities": caps}),
        json!({"type": "createTransport", "direction": "send", "rtpCapabilities": testpeer::send_rtp_capabilities(caps)}),
    ];
    for frame in frames.drain(..) {
        let open = b.frame(&frame.to_string()).await;
        let out = b.take();
        assert!(open, "B's {frame}: {out:?}");
        for m in out {
            ids.learn(&serde_json::from_str(&m).expect("JSON from the server"));
        }
    }
    let transport = ids.transports.first().unwrap_or_else(|| panic!("B's transport: {:?}", b.take())).clone();
    for (kind, mid, ssrc) in [(MediaKind::Audio, "0", 1111), (MediaKind::Video, "1", 2222)] {
        let params = testpeer::produce_parameters(kind, mid, ssrc);
        let frame = json!({"type": "produce", "transport_id": transport, "kind": kind, "rtpParameters": params});
        assert!(b.frame(&frame.to_string()).await);
        for m in b.take() {
            let v: Value = serde_json::from_str(&m).expect("JSON from the server");
            assert_eq!(v["type"], "produced", "B produces: {v}");
            ids.learn(&v);
        }
    }
    (b, ids)
}

fn substitute(line: &str, world: &World, fixed: &Fixed, ids: &Ids) -> String {
    if !line.contains('$') {
        return line.to_string();
    }
    // In this order (`$TOKENB` before `$TOKEN`, ...); a value is made only if its tag is there.
    let values: [(&str, &dyn Fn() -> String); 7] = [
        ("$TOKENB", &|| world.b.token.clone()),
        ("$TOKEN", &|| world.a.token.clone()),
        ("$ROOM", &|| world.room_id.clone()),
        ("$JOINB", &|| world.join_token(&world.b)),
        ("$JOIN", &|| world.join_token(&world.a)),
        ("$SENDCAPS", &|| fixed.send_caps_text.clone()),
        ("$CAPS", &|| fixed.caps_text.clone()),
    ];
    let mut out = line.to_string();
    for (tag, value) in values {
        if out.contains(tag) {
            out = out.replace(tag, &value());
        }
    }
    for (tag, list) in [("$T", &ids.transports), ("$P", &ids.producers), ("$C", &ids.consumers)] {
        for i in 0..10u8 {
            let key = format!("{tag}{i}");
            if out.contains(&key) {
                out = out.replace(&key, &Ids::pick(list, i));
            }
        }
    }
    out
}

/// Every message a JSON object with a `type`; no `internal` error; a frame with a `requestId`
/// answered exactly once, echoing it byte for byte. Messages are read by JSON's grammar
/// ([`members`]): a `requestId` such as `3e333333333` is JSON, and the server echoes it as sent,
/// though serde_json cannot hold it as a `Value` (fuzz/regressions/signaling/huge-request-id).
/// Returns the messages read, without their `requestId`.
fn check_replies(frame: &str, out: &[String]) -> Vec<Value> {
    assert!(!out.is_empty(), "no answer to {frame}");
    let mut messages = Vec::with_capacity(out.len());
    let mut echoed = Vec::new();
    for m in out {
        let (v, id) = members(m).unwrap_or_else(|e| panic!("not a JSON object ({e}): {m}"));
        assert!(v["type"].is_string(), "no type: {m}");
        assert_ne!(v["code"], "internal", "an internal error for {frame}: {m}");
        echoed.extend(id);
        messages.push(v);
    }
    // A frame naming `requestId` twice is refused as a whole (serde's duplicate field): which id
    // to echo is not defined, so only frames with one are checked.
    let once = frame.matches("\"requestId\"").count() == 1;
    if let Some(id) = once.then(|| members(frame).ok()).flatten().and_then(|(_, id)| id) {
        // Only a well-formed object is read for its requestId.
        let n = echoed.iter().filter(|r| **r == id).count();
        assert_eq!(n, 1, "{frame} answered {n} times: {out:?}");
    }
    messages
}

/// A JSON object's members as a `Value` (all but `requestId`) and its `requestId` as raw text.
fn members(text: &str) -> Result<(Value, Option<String>), serde_json::Error> {
    let raw: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> = serde_json::from_str(text)?;
    let mut object = serde_json::Map::new();
    let mut id = None;
    for (k, v) in raw {
        if k == "requestId" {
            id = Some(v.get().to_string());
        } else {
            object.insert(k, serde_json::from_str(v.get())?);
        }
    }
    Ok((Value::Object(object), id))
}

/// One structured message.
fn message(u: &mut Unstructured, world: &World, ids: &Ids, n: usize) -> Result<String> {
    let caps = world.rtp_capabilities();
    let t = |u: &mut Unstructured| -> Result<String> { Ok(Ids::pick(&ids.transports, u.arbitrary()?)) };
    let p = |u: &mut Unstructured| -> Result<String> { Ok(Ids::pick(&ids.producers, u.arbitrary()?)) };
    let c = |u: &mut Unstructured| -> Result<String> { Ok(Ids::pick(&ids.consumers, u.arbitrary()?)) };
    let mut v = match u.choose_index(14)? {
        0 => {
            let len = usize::from(u.arbitrary::<u8>()?);
            return Ok(String::from_utf8_lossy(u.bytes(len)?).into_owned());
        }
        1 => {
            let token = [&world.a.token, &world.b.token, &"tok_forged".to_string()][u.choose_index(3)?].clone();
            json!({"type": "auth", "token": token})
        }
        2 => {
            let user = if u.arbitrary()? { &world.a } else { &world.b };
            let room = if u.arbitrary()? { world.room_id.clone() } else { "another-room".into() };
            let caps = crate::ortc::rtp_capabilities(u, caps)?;
            json!({"type": "joinRoom", "room_id": room, "join_token": world.join_token(user), "rtpCapabilities": caps})
        }
        3 => {
            let direction = ["send", "recv", "sendrecv", ""][u.choose_index(4)?];
            let mut m = json!({"type": "createTransport", "direction": direction});
            if u.arbitrary()? {
                m["rtpCapabilities"] = json!(crate::ortc::rtp_capabilities(u, caps)?);
            }
            m
        }
        4 => json!({"type": "connectTransport", "transport_id": t(u)?, "dtlsParameters": crate::ortc::dtls_parameters(u)?}),
        5 => {
            let kind = if u.arbitrary()? { MediaKind::Audio } else { MediaKind::Video };
            let params = crate::ortc::rtp_parameters(u, kind)?;
            let mut m = json!({"type": "produce", "transport_id": t(u)?, "kind": kind, "rtpParameters": params});
            if u.arbitrary()? {
                let source = ["camera", "screen", "mic"][u.choose_index(3)?];
                m["appData"] = json!({ "source": source });
            }
            m
        }
        6 => json!({"type": "consume", "transport_id": t(u)?, "producer_id": p(u)?}),
        7 => {
            let kind = ["resumeConsumer", "pauseConsumer"][u.choose_index(2)?];
            json!({"type": kind, "consumer_id": c(u)?})
        }
        8 => {
            let kind = ["pauseProducer", "resumeProducer", "closeProducer"][u.choose_index(3)?];
            json!({"type": kind, "producer_id": p(u)?})
        }
        9 if u.arbitrary()? => json!({"type": "restartIce", "transport_id": t(u)?}),
        9 => {
            let token = Ids::pick(&ids.resume_tokens, u.arbitrary()?);
            let room = if u.arbitrary()? { world.room_id.clone() } else { "another-room".into() };
            json!({"type": "resumeSession", "room_id": room, "resume_token": token})
        }
        10 => match u.choose_index(3)? {
            0 => json!({"type": "leaveRoom"}),
            1 => json!({"type": "leaveRoom", "room_id": world.room_id}),
            _ => json!({"type": "leaveRoom", "room_id": "another-room"}),
        },
        11 => json!({"type": "ping"}),
        // A known message with one field of any type.
        12 => {
            let kinds = ["produce", "consume", "connectTransport", "joinRoom", "createTransport", "resumeConsumer", "auth"];
            let fields =
                ["transport_id", "producer_id", "consumer_id", "kind", "rtpParameters", "dtlsParameters", "room_id", "direction", "token"];
            let mut m = json!({"type": kinds[u.choose_index(kinds.len())?], "transport_id": t(u)?, "producer_id": p(u)?});
            m[fields[u.choose_index(fields.len())?]] = any_json(u, 3)?;
            m
        }
        _ => any_json(u, 4)?,
    };
    if let Value::Object(map) = &mut v {
        if u.ratio(7, 8)? {
            map.insert("requestId".into(), json!(n));
        } else if u.arbitrary()? {
            map.insert("requestId".into(), any_json(u, 2)?);
        }
    }
    Ok(v.to_string())
}

/// Any JSON value, `depth` levels at most.
fn any_json(u: &mut Unstructured, depth: u8) -> Result<Value> {
    Ok(match u.choose_index(if depth == 0 { 5 } else { 7 })? {
        0 => Value::Null,
        1 => json!(u.arbitrary::<bool>()?),
        2 => json!(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        4 => json!(u.arbitrary::<String>()?),
        5 => Value::Array((0..u.choose_index(4)?).map(|_| any_json(u, depth - 1)).collect::<Result<_>>()?),
        _ => {
            let mut map = serde_json::Map::new();
            for _ in 0..u.choose_index(4)? {
                map.insert(u.arbitrary()?, any_json(u, depth - 1)?);
            }
            Value::Object(map)
        }
    })
}
