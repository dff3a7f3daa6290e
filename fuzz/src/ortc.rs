//! The ORTC half of the signaling, at the engine: mediasoup's `rtpParameters`,
//! `rtpCapabilities` and `dtlsParameters` from a client, fed to a worker's operations and to
//! `sfu::ortc`. Two front ends make the same [`Op`]s:
//!
//! - structured: values built with `arbitrary`, mostly realistic (mediasoup-client's own
//!   parameters, the router's capabilities) with mutations of any field;
//! - JSON (input starting with `#`): one JSON value per line, as a socket would hand it to
//!   serde: an op (`{"op": "produce", ...}`), or bare `rtpParameters` (produced),
//!   `rtpCapabilities` (a send transport, and every producer consumed with them) or
//!   `dtlsParameters` (a new transport connected with them).
//!
//! Checks: no panic; every error names a client mistake (no `internal`); what the engine accepts
//! is consistent (an accepted producer is consumable with the router's own capabilities, a
//! consumer's parameters pass the producer validation, values survive a JSON round trip);
//! closing everything leaves nothing behind.
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::{Result, Unstructured};
use serde::{Deserialize, Serialize};
use sfu::error::ErrorCode;
use sfu::ortc::{consumer_rtp_parameters, default_media_codecs, producer_plan, router_rtp_capabilities, validate_rtp_parameters};
use sfu::rtp_parameters::{
    CodecParameters, DtlsFingerprint, DtlsParameters, DtlsRole, ExtensionDirection, MediaKind, ParamValue, RtcpFeedback, RtpCapabilities,
    RtpCodecCapability, RtpCodecParameters, RtpEncodingParameters, RtpHeaderExtension, RtpHeaderExtensionParameters, RtpParameters,
    RtxSsrc,
};
use sfu::worker::{Worker, WorkerConfig};
use sfu::{ConsumerId, Direction, EngineConfig, ProducerId, RouterId, TransportId};

/// One operation a signaling session can make the engine do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
pub enum Op {
    CreateRouter,
    CloseRouter {
        router: u8,
    },
    /// `caps: None`: mediasoup-client's sendRtpCapabilities for this router.
    CreateSendTransport {
        router: u8,
        caps: Option<RtpCapabilities>,
    },
    CreateRecvTransport {
        router: u8,
    },
    CreatePlainTransport {
        router: u8,
        port: u16,
    },
    Connect {
        transport: u8,
        dtls: DtlsParameters,
    },
    Produce {
        transport: u8,
        kind: MediaKind,
        params: RtpParameters,
    },
    Consume {
        transport: u8,
        producer: u8,
        caps: RtpCapabilities,
    },
    PauseConsumer {
        consumer: u8,
        paused: bool,
    },
    PauseProducer {
        producer: u8,
        paused: bool,
    },
    RequestKeyframe {
        producer: u8,
    },
    CloseTransport {
        transport: u8,
    },
    CloseProducer {
        producer: u8,
    },
    /// An operation on an id the client made up (0 router, 1 transport, 2 producer, 3 consumer).
    Forged {
        kind: u8,
        id: String,
    },
    Advance {
        ms: u16,
    },
}

/// Codes a client's mistake may get (docs/signaling-errors.md); never `internal`.
const CLIENT_CODES: &[&str] = &[
    "not_found",
    "invalid_parameters",
    "unsupported_codec",
    "unsupported_simulcast",
    "cannot_consume",
    "wrong_direction",
    "duplicate_ssrc",
    "duplicate_mid",
    "already_connected",
    "unsupported_fingerprint",
];

fn client_error(e: impl ErrorCode + std::fmt::Display) {
    assert!(CLIENT_CODES.contains(&e.code()), "a client input got {:?}: {e}", e.code());
}

/// A worker and the ids it handed out (closed ones stay: they must find nothing).
pub struct Session {
    pub now: Instant,
    pub worker: Worker,
    pub routers: Vec<RouterId>,
    pub transports: Vec<TransportId>,
    pub producers: Vec<ProducerId>,
    pub consumers: Vec<ConsumerId>,
    /// Transports made by the op list (each costs a DTLS certificate): capped per input.
    pub made: usize,
    /// The base objects every input starts from (router 0, send transport 0, plain 1), if any.
    pub base: Option<(RouterId, TransportId, TransportId)>,
    /// Whether an input changed a base object (then the base is made again).
    pub base_changed: bool,
}

/// Transports one input may create.
pub const MAX_TRANSPORTS: usize = 3;

fn pick<T: Clone>(list: &[T], i: u8) -> Option<T> {
    (!list.is_empty()).then(|| list[usize::from(i) % list.len()].clone())
}

fn forged<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_value(serde_json::Value::String(text.into())).expect("ids deserialise from any string")
}

impl Session {
    pub fn new(caps: RtpCapabilities) -> Session {
        let now = Instant::now();
        let config = WorkerConfig {
            index: 0,
            addr: "198.18.0.1:40000".parse().expect("a literal address"),
            caps: Arc::new(caps),
            nack_history: EngineConfig::DEFAULT_NACK_HISTORY,
            idle_timeout: EngineConfig::DEFAULT_IDLE_TIMEOUT,
            tcp: false,
            downlink_bwe: true,
        };
        Session {
            now,
            worker: Worker::new(config, now),
            routers: Vec::new(),
            transports: Vec::new(),
            producers: Vec::new(),
            consumers: Vec::new(),
            made: 0,
            base: None,
            base_changed: false,
        }
    }

    fn is_base_transport(&self, id: &TransportId) -> bool {
        self.base.as_ref().is_some_and(|(_, s, p)| s == id || p == id)
    }

    fn router(&self, i: u8) -> RouterId {
        pick(&self.routers, i).unwrap_or_else(|| forged("w0-r1-00000000"))
    }
    fn transport(&self, i: u8) -> TransportId {
        pick(&self.transports, i).unwrap_or_else(|| forged("w0-t1-00000000"))
    }
    fn producer(&self, i: u8) -> ProducerId {
        pick(&self.producers, i).unwrap_or_else(|| forged("w0-p1-00000000"))
    }
    fn consumer(&self, i: u8) -> ConsumerId {
        pick(&self.consumers, i).unwrap_or_else(|| forged("w0-c1-00000000"))
    }

    pub fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::CreateRouter => self.routers.push(self.worker.create_router()),
            Op::CloseRouter { router } => {
                let r = self.router(*router);
                match self.worker.close_router(&r) {
                    Ok(()) => self.base_changed |= self.base.as_ref().is_some_and(|b| b.0 == r),
                    Err(e) => client_error(e),
                }
            }
            Op::CreateSendTransport { router, caps } => {
                if self.made >= MAX_TRANSPORTS {
                    return;
                }
                self.made += 1;
                let router = self.router(*router);
                let w = &mut self.worker;
                let caps = caps.clone().unwrap_or_else(|| testpeer::send_rtp_capabilities(w.rtp_capabilities()));
                roundtrip(&caps);
                match w.create_webrtc_transport(now, &router, Direction::Send, Some(caps)) {
                    Ok(t) => self.transports.push(t.id),
                    Err(e) => client_error(e),
                }
            }
            Op::CreateRecvTransport { router } => {
                if self.made >= MAX_TRANSPORTS {
                    return;
                }
                self.made += 1;
                let router = self.router(*router);
                match self.worker.create_webrtc_transport(now, &router, Direction::Recv, None) {
                    Ok(t) => self.transports.push(t.id),
                    Err(e) => client_error(e),
                }
            }
            Op::CreatePlainTransport { router, port } => {
                let router = self.router(*router);
                let remote = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
                match self.worker.create_plain_transport(&router, remote) {
                    Ok(t) => self.transports.push(t),
                    Err(e) => client_error(e),
                }
            }
            Op::Connect { transport, dtls } => {
                roundtrip(dtls);
                let _ = sfu::fuzzing::remote_fingerprint(dtls);
                let t = self.transport(*transport);
                match self.worker.connect_transport(&t, dtls) {
                    Ok(()) => self.base_changed |= self.is_base_transport(&t),
                    Err(e) => client_error(e),
                }
            }
            Op::Produce { transport, kind, params } => {
                roundtrip(params);
                let plan = producer_plan(self.worker.rtp_capabilities(), *kind, params);
                let t = self.transport(*transport);
                match self.worker.produce(now, &t, *kind, params.clone()) {
                    Ok(p) => {
                        self.base_changed |= self.is_base_transport(&t);
                        let plan = plan.expect("the engine produced what the ORTC plan refused");
                        self.check_consumable(&plan, *kind);
                        self.producers.push(p);
                    }
                    Err(e) => client_error(e),
                }
            }
            Op::Consume { transport, producer, caps } => {
                roundtrip(caps);
                match self.worker.consume(&self.transport(*transport), &self.producer(*producer), caps) {
                    Ok(c) => {
                        roundtrip(&c.rtp_parameters);
                        let mut params = c.rtp_parameters.clone();
                        params.mid.get_or_insert_with(|| "plain".into());
                        if let Err(e) = validate_rtp_parameters(c.kind, &params) {
                            panic!("a consumer's parameters fail the producer validation ({e}): {params:?}");
                        }
                        self.consumers.push(c.id);
                    }
                    Err(e) => client_error(e),
                }
            }
            Op::PauseConsumer { consumer, paused } => {
                if let Err(e) = self.worker.set_consumer_paused(now, &self.consumer(*consumer), *paused) {
                    client_error(e);
                }
            }
            Op::PauseProducer { producer, paused } => {
                if let Err(e) = self.worker.set_producer_paused(now, &self.producer(*producer), *paused) {
                    client_error(e);
                }
            }
            Op::RequestKeyframe { producer } => {
                if let Err(e) = self.worker.request_keyframe(now, &self.producer(*producer)) {
                    client_error(e);
                }
            }
            Op::CloseTransport { transport } => {
                let t = self.transport(*transport);
                match self.worker.close_transport(&t) {
                    Ok(()) => self.base_changed |= self.is_base_transport(&t),
                    Err(e) => client_error(e),
                }
            }
            Op::CloseProducer { producer } => {
                if let Err(e) = self.worker.close_producer(&self.producer(*producer)) {
                    client_error(e);
                }
            }
            Op::Forged { kind, id } => {
                let _ = (forged::<RouterId>(id).worker(), forged::<TransportId>(id).worker());
                let result = match kind % 4 {
                    0 => self.worker.close_router(&forged(id)).map_err(|e| e.code()),
                    1 => self.worker.close_transport(&forged(id)).map_err(|e| e.code()),
                    2 => self.worker.request_keyframe(now, &forged(id)).map_err(|e| e.code()),
                    _ => self.worker.set_consumer_paused(now, &forged(id), false).map_err(|e| e.code()),
                };
                // An id the client made up finds nothing, unless it is one the worker minted.
                let minted = self.routers.iter().any(|r| r.as_str() == id)
                    || self.transports.iter().any(|t| t.as_str() == id)
                    || self.producers.iter().any(|p| p.as_str() == id)
                    || self.consumers.iter().any(|c| c.as_str() == id);
                assert!(minted || result == Err("not_found"), "forged id {id:?} found something: {result:?}");
                // A guessed id of a base object is as good as the real one.
                let base = self.base.as_ref().is_some_and(|(r, s, p)| r.as_str() == id || s.as_str() == id || p.as_str() == id);
                self.base_changed |= base && result.is_ok();
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.worker.handle_timeout(self.now);
            }
        }
        self.drain();
    }

    fn drain(&mut self) {
        while self.worker.poll_transmit().is_some() {}
        while self.worker.poll_event().is_some() {}
    }

    /// mediasoup's guarantee: a device with the router's own capabilities consumes any producer.
    fn check_consumable(&self, plan: &sfu::ortc::ProducerPlan, kind: MediaKind) {
        let caps = self.worker.rtp_capabilities();
        match consumer_rtp_parameters(plan, kind, caps, 123_456_789, Some("cname".into())) {
            Ok(mut p) => {
                p.mid = Some("0".into());
                if let Err(e) = validate_rtp_parameters(kind, &p) {
                    panic!("consumer parameters fail validation ({e}): {p:?}");
                }
            }
            Err(e) => panic!("an accepted producer is not consumable with the router's capabilities: {e}; {plan:?}"),
        }
    }

    /// Closes every router: nothing may be left.
    pub fn close_all(&mut self) {
        for r in self.routers.clone() {
            let _ = self.worker.close_router(&r);
        }
        self.drain();
        let f = self.worker.fuzz_footprint();
        assert_eq!(
            (f.routers, f.transports, f.producers, f.consumers, f.by_ufrag, f.by_addr, f.dirty, f.dead, f.transmits, f.events),
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
            "closing every router leaves nothing behind: {f:?}"
        );
    }
}

/// A value the engine takes from JSON must come back the same through JSON. Decimals may move
/// in their last digits: serde_json (without its `float_roundtrip` feature) parses floats only
/// that closely, see README.md.
pub fn roundtrip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let json = serde_json::to_string(v).expect("serialises");
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json} does not parse back: {e}"));
    if &back != v {
        let (a, b) = (serde_json::to_value(v).expect("serialises"), serde_json::to_value(&back).expect("serialises"));
        assert!(same_json(&a, &b), "JSON round trip changed {json}: {back:?}");
    }
}

fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::{Array, Number, Object};
    match (a, b) {
        (Number(x), Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            // Subnormals keep fewer digits still: any two are as good as equal here.
            x == y || (x - y).abs() <= 1e-14 * x.abs().max(y.abs()) || x.abs().max(y.abs()) < f64::MIN_POSITIVE
        }
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Object(x), Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w))),
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// Structured values with `arbitrary`: realistic bases, then mutations of any field.

const MIMES: &[&str] = &[
    "audio/opus",
    "video/VP8",
    "video/VP9",
    "video/H264",
    "video/rtx",
    "audio/rtx",
    "video/vp8",
    "AUDIO/OPUS",
    "audio/PCMU",
    "video/AV1",
    "video/H264-SVC",
    "audio/",
    "video",
    "/",
    "",
];
const PARAM_KEYS: &[&str] = &[
    "apt",
    "profile-level-id",
    "packetization-mode",
    "level-asymmetry-allowed",
    "profile-id",
    "minptime",
    "useinbandfec",
    "x-google-start-bitrate",
];
const PARAM_STRINGS: &[&str] = &["42e01f", "42001f", "4d001f", "640032", "640c1f", "f4001f", "42f00b", "42e0ff", "1", "0", "", "é"];
const URIS: &[&str] = &[
    sfu::ortc::URI_MID,
    sfu::ortc::URI_RID,
    sfu::ortc::URI_RRID,
    sfu::ortc::URI_ABS_SEND_TIME,
    sfu::ortc::URI_TWCC,
    sfu::ortc::URI_AUDIO_LEVEL,
    sfu::ortc::URI_VIDEO_ORIENTATION,
    sfu::ortc::URI_TOFFSET,
    sfu::ortc::URI_ABS_CAPTURE_TIME,
    sfu::ortc::URI_PLAYOUT_DELAY,
    "urn:example:unknown",
];
const MODES: &[&str] = &["L1T1", "L1T3", "L3T3_KEY", "S3T3", "L1T3_KEY_SHIFT", "L0T1", "L1T", "LT1", "L99T99", "S1T1_KEY"];
const ALGORITHMS: &[&str] = &["sha-256", "sha-1", "SHA-256", "sha-224", "sha-384", "sha-512", "md5", ""];
const FEEDBACK: &[(&str, &str)] =
    &[("nack", ""), ("nack", "pli"), ("ccm", "fir"), ("goog-remb", ""), ("transport-cc", ""), ("nack", "sli"), ("", "")];

/// One of `list`, or (one time in `1 + list.len()`) any string.
fn text(u: &mut Unstructured, list: &[&str]) -> Result<String> {
    let i = u.choose_index(list.len() + 1)?;
    Ok(match list.get(i) {
        Some(s) => s.to_string(),
        None => u.arbitrary()?,
    })
}

fn small_u8(u: &mut Unstructured, usual: &[u8]) -> Result<u8> {
    Ok(if u.ratio(3, 4)? { *u.choose(usual)? } else { u.arbitrary()? })
}

fn param_value(u: &mut Unstructured) -> Result<ParamValue> {
    Ok(match u.choose_index(5)? {
        0 => ParamValue::Number(i64::from(small_u8(u, &[0, 1, 2, 96, 100, 101, 111, 127])?)),
        1 => ParamValue::Number(u.arbitrary()?),
        2 => ParamValue::String(text(u, PARAM_STRINGS)?),
        3 => {
            // Decimals as JSON gives them: non-integers, or integers beyond i64.
            let f: f64 = u.arbitrary()?;
            match serde_json::Number::from_f64(f) {
                Some(n) if f.fract() != 0.0 || f.abs() > 9.3e18 => ParamValue::Decimal(n),
                _ => ParamValue::Decimal(serde_json::Number::from(u64::MAX - u64::from(u.arbitrary::<u16>()?))),
            }
        }
        _ => ParamValue::String(u.arbitrary()?),
    })
}

fn codec_parameters(u: &mut Unstructured) -> Result<CodecParameters> {
    let mut p = CodecParameters::new();
    for _ in 0..u.choose_index(4)? {
        p.insert(text(u, PARAM_KEYS)?, param_value(u)?);
    }
    Ok(p)
}

fn feedback(u: &mut Unstructured) -> Result<Vec<RtcpFeedback>> {
    let mut fb = Vec::new();
    for _ in 0..u.choose_index(4)? {
        let (k, p) = *u.choose(FEEDBACK)?;
        fb.push(RtcpFeedback::new(k, p));
    }
    Ok(fb)
}

fn kind(u: &mut Unstructured) -> Result<MediaKind> {
    Ok(if u.arbitrary()? { MediaKind::Video } else { MediaKind::Audio })
}

fn clock_rate(u: &mut Unstructured) -> Result<u32> {
    Ok(if u.ratio(3, 4)? { *u.choose(&[48000, 90000, 8000])? } else { u.arbitrary()? })
}

fn codec(u: &mut Unstructured) -> Result<RtpCodecParameters> {
    Ok(RtpCodecParameters {
        mime_type: text(u, MIMES)?,
        payload_type: small_u8(u, &[96, 97, 98, 100, 101, 102, 111, 127, 0, 128, 255])?,
        clock_rate: clock_rate(u)?,
        channels: if u.arbitrary()? { Some(small_u8(u, &[1, 2, 0])?) } else { None },
        parameters: codec_parameters(u)?,
        rtcp_feedback: feedback(u)?,
    })
}

fn codec_capability(u: &mut Unstructured) -> Result<RtpCodecCapability> {
    let c = codec(u)?;
    Ok(RtpCodecCapability {
        kind: kind(u)?,
        mime_type: c.mime_type,
        preferred_payload_type: if u.ratio(7, 8)? { Some(c.payload_type) } else { None },
        clock_rate: c.clock_rate,
        channels: c.channels,
        parameters: c.parameters,
        rtcp_feedback: c.rtcp_feedback,
    })
}

fn ssrc(u: &mut Unstructured) -> Result<u32> {
    Ok(if u.ratio(3, 4)? { *u.choose(&[1111, 1112, 2222, 2223, 0, u32::MAX])? } else { u.arbitrary()? })
}

fn encoding(u: &mut Unstructured) -> Result<RtpEncodingParameters> {
    Ok(RtpEncodingParameters {
        ssrc: if u.ratio(3, 4)? { Some(ssrc(u)?) } else { None },
        rid: if u.ratio(1, 4)? { Some(text(u, &["r0", "r1", "", "q"])?) } else { None },
        codec_payload_type: if u.ratio(1, 4)? { Some(small_u8(u, &[96, 97, 100, 111])?) } else { None },
        rtx: if u.arbitrary()? { Some(RtxSsrc { ssrc: ssrc(u)? }) } else { None },
        dtx: u.arbitrary()?,
        scalability_mode: if u.ratio(1, 3)? { Some(text(u, MODES)?) } else { None },
        max_bitrate: u.arbitrary()?,
    })
}

fn header_extension(u: &mut Unstructured) -> Result<RtpHeaderExtensionParameters> {
    Ok(RtpHeaderExtensionParameters {
        uri: text(u, URIS)?,
        id: small_u8(u, &[1, 2, 3, 4, 5, 9, 10, 14, 15, 16, 0, 17, 255])?,
        encrypt: u.arbitrary()?,
        parameters: if u.ratio(1, 8)? { codec_parameters(u)? } else { CodecParameters::new() },
    })
}

/// Producer parameters: mediasoup-client's (testpeer's), or built from nothing; then mutated.
pub fn rtp_parameters(u: &mut Unstructured, kind: MediaKind) -> Result<RtpParameters> {
    let mut p = if u.ratio(3, 4)? {
        let mid: String = text(u, &["0", "1", "2", "audio", "video", "", "0123456789abcdefg", " "])?;
        // testpeer's RTX SSRC is the media SSRC + 1: u32::MAX is for the mutations below.
        let mut p = testpeer::produce_parameters(kind, "0", ssrc(u)?.min(u32::MAX - 1));
        p.mid = Some(mid);
        p
    } else {
        RtpParameters {
            mid: if u.ratio(7, 8)? { Some(text(u, &["0", "1"])?) } else { None },
            codecs: (0..u.choose_index(4)?).map(|_| codec(u)).collect::<Result<_>>()?,
            header_extensions: (0..u.choose_index(4)?).map(|_| header_extension(u)).collect::<Result<_>>()?,
            encodings: (0..u.choose_index(3)?).map(|_| encoding(u)).collect::<Result<_>>()?,
            rtcp: Default::default(),
        }
    };
    for _ in 0..u.choose_index(5)? {
        mutate_parameters(u, &mut p)?;
    }
    Ok(p)
}

fn mutate_parameters(u: &mut Unstructured, p: &mut RtpParameters) -> Result<()> {
    match u.choose_index(12)? {
        0 => p.codecs.push(codec(u)?),
        1 if !p.codecs.is_empty() => {
            let i = u.choose_index(p.codecs.len())?;
            p.codecs.remove(i);
        }
        2 if !p.codecs.is_empty() => {
            let i = u.choose_index(p.codecs.len())?;
            let c = &mut p.codecs[i];
            match u.choose_index(5)? {
                0 => c.mime_type = text(u, MIMES)?,
                1 => c.payload_type = small_u8(u, &[96, 97, 100, 101, 111, 127, 128])?,
                2 => c.clock_rate = clock_rate(u)?,
                3 => c.channels = if u.arbitrary()? { Some(u.arbitrary()?) } else { None },
                _ => {
                    c.parameters.insert(text(u, PARAM_KEYS)?, param_value(u)?);
                }
            }
        }
        3 => p.header_extensions.push(header_extension(u)?),
        4 if !p.header_extensions.is_empty() => {
            let i = u.choose_index(p.header_extensions.len())?;
            p.header_extensions[i].id = u.arbitrary()?;
        }
        5 => p.encodings.push(encoding(u)?),
        6 if !p.encodings.is_empty() => {
            let i = u.choose_index(p.encodings.len())?;
            p.encodings[i] = encoding(u)?;
        }
        7 => p.encodings.clear(),
        8 => p.mid = if u.ratio(1, 4)? { None } else { Some(u.arbitrary()?) },
        9 => p.rtcp.cname = if u.arbitrary()? { Some(u.arbitrary()?) } else { None },
        10 if !p.codecs.is_empty() => {
            let i = u.choose_index(p.codecs.len())?;
            p.codecs[i].parameters = codec_parameters(u)?;
        }
        _ => {
            let n = p.codecs.len();
            if n > 1 {
                p.codecs.swap(0, n - 1);
            }
        }
    }
    Ok(())
}

/// Device capabilities: the router's, mediasoup-client's send capabilities, or built; mutated.
pub fn rtp_capabilities(u: &mut Unstructured, router: &RtpCapabilities) -> Result<RtpCapabilities> {
    let mut c = match u.choose_index(3)? {
        0 => router.clone(),
        1 => testpeer::send_rtp_capabilities(router),
        _ => RtpCapabilities {
            codecs: (0..u.choose_index(5)?).map(|_| codec_capability(u)).collect::<Result<_>>()?,
            header_extensions: Vec::new(),
        },
    };
    for _ in 0..u.choose_index(5)? {
        match u.choose_index(7)? {
            0 => c.codecs.push(codec_capability(u)?),
            1 if !c.codecs.is_empty() => {
                let i = u.choose_index(c.codecs.len())?;
                c.codecs.remove(i);
            }
            2 if !c.codecs.is_empty() => {
                let i = u.choose_index(c.codecs.len())?;
                c.codecs[i] = codec_capability(u)?;
            }
            3 => c.header_extensions.push(RtpHeaderExtension {
                kind: if u.arbitrary()? { Some(kind(u)?) } else { None },
                uri: text(u, URIS)?,
                preferred_id: small_u8(u, &[1, 4, 5, 10, 16, 0, 17, 255])?,
                preferred_encrypt: u.arbitrary()?,
                direction: *u.choose(&[
                    ExtensionDirection::Sendrecv,
                    ExtensionDirection::Sendonly,
                    ExtensionDirection::Recvonly,
                    ExtensionDirection::Inactive,
                ])?,
            }),
            4 if !c.header_extensions.is_empty() => {
                let i = u.choose_index(c.header_extensions.len())?;
                c.header_extensions[i].preferred_id = u.arbitrary()?;
            }
            5 if !c.codecs.is_empty() => {
                let i = u.choose_index(c.codecs.len())?;
                c.codecs[i].parameters.insert(text(u, PARAM_KEYS)?, param_value(u)?);
            }
            _ => c.header_extensions.clear(),
        }
    }
    Ok(c)
}

pub fn dtls_parameters(u: &mut Unstructured) -> Result<DtlsParameters> {
    let role = match u.choose_index(4)? {
        0 => None,
        1 => Some(DtlsRole::Auto),
        2 => Some(DtlsRole::Client),
        _ => Some(DtlsRole::Server),
    };
    let mut fingerprints = Vec::new();
    for _ in 0..u.choose_index(4)? {
        let algorithm = text(u, ALGORITHMS)?;
        let value = match u.choose_index(4)? {
            0 => hex(u.choose_index(70)?, u.arbitrary()?),
            1 => hex(32, u.arbitrary()?),
            2 => hex(20, u.arbitrary()?),
            _ => u.arbitrary()?,
        };
        fingerprints.push(DtlsFingerprint { algorithm, value });
    }
    Ok(DtlsParameters { role, fingerprints })
}

fn hex(n: usize, seed: u8) -> String {
    (0..n).map(|i| format!("{:02X}", (i as u8).wrapping_mul(seed))).collect::<Vec<_>>().join(":")
}

/// The router's media codecs: the default ones, or some built (the operator's configuration).
pub fn router_capabilities(u: &mut Unstructured) -> Result<RtpCapabilities> {
    let default = router_rtp_capabilities(&default_media_codecs()).expect("default codecs");
    if u.ratio(7, 8)? {
        return Ok(default);
    }
    let mut codecs = default_media_codecs();
    for _ in 0..u.choose_index(3)? {
        match u.choose_index(3)? {
            0 => codecs.push(codec_capability(u)?),
            1 if !codecs.is_empty() => {
                let i = u.choose_index(codecs.len())?;
                codecs.remove(i);
            }
            _ if !codecs.is_empty() => {
                let i = u.choose_index(codecs.len())?;
                codecs[i].parameters.insert(text(u, PARAM_KEYS)?, param_value(u)?);
            }
            _ => {}
        }
    }
    // An operator's mistake is refused at start-up: only usable configurations run.
    Ok(router_rtp_capabilities(&codecs).unwrap_or(default))
}

/// One structured op.
pub fn op(u: &mut Unstructured, router: &RtpCapabilities) -> Result<Op> {
    let i = |u: &mut Unstructured| u.arbitrary::<u8>();
    Ok(match u.choose_index(15)? {
        0 => Op::CreateRouter,
        1 => Op::CloseRouter { router: i(u)? },
        2 | 3 => Op::CreateSendTransport { router: i(u)?, caps: if u.ratio(1, 2)? { None } else { Some(rtp_capabilities(u, router)?) } },
        4 => Op::CreateRecvTransport { router: i(u)? },
        5 => Op::CreatePlainTransport { router: i(u)?, port: u.arbitrary()? },
        6 => Op::Connect { transport: i(u)?, dtls: dtls_parameters(u)? },
        7 | 8 => {
            let kind = kind(u)?;
            Op::Produce { transport: i(u)?, kind, params: rtp_parameters(u, kind)? }
        }
        9 => Op::Consume { transport: i(u)?, producer: i(u)?, caps: rtp_capabilities(u, router)? },
        10 => Op::PauseConsumer { consumer: i(u)?, paused: u.arbitrary()? },
        11 => Op::PauseProducer { producer: i(u)?, paused: u.arbitrary()? },
        12 => match u.choose_index(3)? {
            0 => Op::CloseTransport { transport: i(u)? },
            1 => Op::CloseProducer { producer: i(u)? },
            _ => Op::RequestKeyframe { producer: i(u)? },
        },
        13 => Op::Forged { kind: i(u)?, id: text(u, &["w0-t1-00000000", "w0-t1", "w0-p18446744073709551615-0", "w-t-", "w0-c00001-x"])? },
        _ => Op::Advance { ms: u.arbitrary()? },
    })
}

/// A structured input: the router's codecs, then ops until the data runs out. With the default
/// codecs (most inputs) it runs on the base session; else on a worker of its own.
pub fn run_structured(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(caps) = router_capabilities(&mut u) else { return };
    let default = caps == default_caps();
    let ops = |s: &mut Session, u: &mut Unstructured| {
        while !u.is_empty() {
            let Ok(op) = op(u, &caps) else { break };
            s.apply(&op);
        }
    };
    if default && u.ratio(7, 8).unwrap_or(false) {
        with_base(|s| ops(s, &mut u));
    } else {
        let mut s = Session::new(caps.clone());
        ops(&mut s, &mut u);
        s.close_all();
    }
}

fn default_caps() -> RtpCapabilities {
    router_rtp_capabilities(&default_media_codecs()).expect("default codecs")
}

thread_local! {
    /// The base session of this thread: a worker with a router, a fresh send transport and a
    /// plain transport, kept between inputs (a WebRTC transport costs ~2 ms to make).
    static BASE: std::cell::RefCell<Option<(Session, sfu::worker::Footprint)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on the base session, as if it were new: ids of earlier inputs are forgotten, and
/// afterwards everything the input made is closed; the worker must then be back to the base
/// (nothing leaked). The base is made again when the input changed it (a produce or a connect
/// on the send transport, a base object closed).
pub fn with_base(f: impl FnOnce(&mut Session)) {
    BASE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(s, _)| s.base_changed) {
            let mut s = Session::new(default_caps());
            base(&mut s);
            s.base = Some((s.routers[0].clone(), s.transports[0].clone(), s.transports[1].clone()));
            let footprint = s.worker.fuzz_footprint();
            *slot = Some((s, footprint));
        }
        let (s, footprint) = slot.as_mut().expect("made above");
        let (router, send, plain) = s.base.clone().expect("a base session");
        s.routers = vec![router.clone()];
        s.transports = vec![send.clone(), plain.clone()];
        s.producers.clear();
        s.consumers.clear();
        s.made = 0;
        f(s);
        // Close what the input made, base objects last.
        for p in s.producers.clone() {
            let _ = s.worker.close_producer(&p);
        }
        for t in s.transports.clone().iter().filter(|t| **t != send && **t != plain) {
            let _ = s.worker.close_transport(t);
        }
        for r in s.routers.clone().iter().filter(|r| **r != router) {
            let _ = s.worker.close_router(r);
        }
        s.drain();
        if !s.base_changed {
            let now = s.worker.fuzz_footprint();
            assert_eq!(&now, footprint, "closing what an input made leaves the base as it was");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// JSON: one value per line.

/// What one line of a JSON input is.
pub fn json_line(s: &mut Session, line: &str) {
    if let Ok(op) = serde_json::from_str::<Op>(line) {
        roundtrip(&op);
        s.apply(&op);
        return;
    }
    if let Ok(params) = serde_json::from_str::<RtpParameters>(line) {
        roundtrip(&params);
        let kind = params.codecs.first().and_then(|c| c.mime_type.get(..5)).map_or(MediaKind::Audio, |k| {
            if k.eq_ignore_ascii_case("video") {
                MediaKind::Video
            } else {
                MediaKind::Audio
            }
        });
        s.apply(&Op::Produce { transport: 0, kind, params });
    }
    if let Ok(caps) = serde_json::from_str::<RtpCapabilities>(line) {
        roundtrip(&caps);
        for p in 0..s.producers.len().min(4) {
            s.apply(&Op::Consume { transport: 1, producer: p as u8, caps: caps.clone() });
        }
        s.apply(&Op::CreateSendTransport { router: 0, caps: Some(caps) });
    }
    if let Ok(dtls) = serde_json::from_str::<DtlsParameters>(line) {
        s.apply(&Op::CreateRecvTransport { router: 0 });
        let last = s.transports.len().saturating_sub(1) as u8;
        s.apply(&Op::Connect { transport: last, dtls });
    }
}

/// Where a call starts: a router, a send transport (mediasoup-client's capabilities) and a plain
/// transport (transports 0 and 1).
fn base(s: &mut Session) {
    s.apply(&Op::CreateRouter);
    s.apply(&Op::CreateSendTransport { router: 0, caps: None });
    s.apply(&Op::CreatePlainTransport { router: 0, port: 5004 });
}

/// A JSON input (after its leading `#`), on the base session: each line (bare values use
/// transports 0, the send transport, and 1, the plain one).
pub fn run_json(text: &str) {
    with_base(|s| {
        for line in text.lines().take(32) {
            json_line(s, line);
        }
    });
}

/// The ortc target: `#` and JSON lines, or structured.
pub fn run(data: &[u8]) {
    crate::dtls::install();
    match data.split_first() {
        Some((b'#', rest)) => run_json(&String::from_utf8_lossy(rest)),
        _ => run_structured(data),
    }
}

/// A structured input as the JSON input that runs the same ops (for reading a crash, and for the
/// regression replays). Inputs with other router codecs run on a worker of their own, which
/// JSON inputs cannot say: the codecs are given on a first line that is not run.
pub fn structured_to_json(data: &[u8]) -> String {
    let mut u = Unstructured::new(data);
    let Ok(caps) = router_capabilities(&mut u) else { return String::new() };
    let on_base = caps == default_caps() && u.ratio(7, 8).unwrap_or(false);
    let mut lines = vec![String::from("#")];
    if !on_base {
        lines.push(format!("not run: a worker of its own, router codecs {}", serde_json::to_string(&caps.codecs).expect("serialises")));
    }
    while !u.is_empty() {
        let Ok(op) = op(&mut u, &caps) else { break };
        lines.push(serde_json::to_string(&op).expect("ops serialise"));
    }
    lines.join("\n")
}
