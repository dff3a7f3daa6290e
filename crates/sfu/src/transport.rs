//! WebRtcTransport: one str0m `Rtc` in ICE-lite, RTP mode, with the quirks mediasoup-client
//! needs (see DESIGN.md): sniffed remote ufrag, and for send transports an Rtc (re)built with
//! the header-extension ids of the first `produce`, datagrams buffered until then.
use std::net::SocketAddr;
use std::time::Instant;

use str0m::config::{DtlsCert, Fingerprint};
use str0m::format::{Codec, FormatParams};
use str0m::ice::IceCreds;
use str0m::media::{Frequency, Pt};
use str0m::rtp::Extension;
use str0m::{Candidate, Rtc, RtcConfig};

use crate::ids::{Key, TransportId};
use crate::ortc;
use crate::rtp_parameters::{DtlsParameters, ParamValue, RtpCapabilities, RtpCodecCapability, RtpHeaderExtensionParameters};
use crate::seq_guard::{Admit, SeqGuard};
use crate::{Direction, EngineError};

/// Datagrams kept for a send transport while it waits for its first `produce`.
const MAX_PENDING: usize = 512;

pub(crate) fn extension_from_uri(uri: &str) -> Option<Extension> {
    Some(match uri {
        ortc::URI_MID => Extension::RtpMid,
        ortc::URI_RID => Extension::RtpStreamId,
        ortc::URI_RRID => Extension::RepairedRtpStreamId,
        ortc::URI_ABS_SEND_TIME => Extension::AbsoluteSendTime,
        ortc::URI_TWCC => Extension::TransportSequenceNumber,
        ortc::URI_AUDIO_LEVEL => Extension::AudioLevel,
        ortc::URI_VIDEO_ORIENTATION => Extension::VideoOrientation,
        ortc::URI_TOFFSET => Extension::TransmissionTimeOffset,
        ortc::URI_ABS_CAPTURE_TIME => Extension::AbsoluteCaptureTime,
        ortc::URI_PLAYOUT_DELAY => Extension::PlayoutDelay,
        _ => return None,
    })
}

fn str0m_codec(c: &RtpCodecCapability) -> Option<(Codec, FormatParams)> {
    let int = |k: &str| c.parameters.get(k).and_then(ParamValue::as_i64);
    let mime = c.mime_type.to_ascii_lowercase();
    Some(match mime.as_str() {
        "audio/opus" => (Codec::Opus, FormatParams { min_p_time: Some(10), use_inband_fec: Some(true), ..Default::default() }),
        "video/vp8" => (Codec::Vp8, FormatParams::default()),
        "video/vp9" => {
            (Codec::Vp9, FormatParams { profile_id: int("profile-id").and_then(|p| u32::try_from(p).ok()), ..Default::default() })
        }
        "video/h264" => {
            let profile_level_id = match c.parameters.get("profile-level-id") {
                Some(ParamValue::String(s)) => u32::from_str_radix(s, 16).ok(),
                Some(ParamValue::Number(n)) => u32::from_str_radix(&n.to_string(), 16).ok(),
                Some(ParamValue::Decimal(_)) => None,
                None => None,
            };
            (
                Codec::H264,
                FormatParams {
                    packetization_mode: int("packetization-mode").and_then(|p| u8::try_from(p).ok()),
                    profile_level_id,
                    level_asymmetry_allowed: int("level-asymmetry-allowed").map(|v| v == 1),
                    ..Default::default()
                },
            )
        }
        _ => return None,
    })
}

pub(crate) struct WebRtcTransport {
    pub id: TransportId,
    pub router: Key,
    pub direction: Direction,
    pub rtc: Rtc,
    creds: IceCreds,
    cert: DtlsCert,
    candidate_addr: SocketAddr,
    /// Codecs of the Rtc: the client's (send) or the router's (recv).
    codecs: RtpCapabilities,
    pub ext_ids: Vec<(u8, String)>,
    remote_fp: Option<Fingerprint>,
    dtls_active: Option<bool>,
    /// Send transport before its first produce: datagrams wait in `pending`.
    pub frozen: bool,
    pub pending: Vec<(SocketAddr, Vec<u8>)>,
    pub sniffed: bool,
    pub next_timeout: Instant,
    /// When a datagram from the peer last arrived (None: never).
    pub last_heard: Option<Instant>,
    /// Give the Rtc an `Input::Timeout` before polling it: str0m only schedules what was written
    /// through its direct API (RTP, keyframe requests) when time moves forward.
    pub needs_tick: bool,
    pub next_mid: u32,
    pub producers: Vec<Key>,
    pub consumers: Vec<Key>,
    /// The cname every producer of this transport carries (mediasoup: the first one given).
    pub cname_for_producers: Option<String>,
    /// Sequence guards of the SSRCs produced here (media and RTX), see [`SeqGuard`].
    guards: Vec<(u32, SeqGuard)>,
}

impl WebRtcTransport {
    pub fn new(
        id: TransportId,
        router: Key,
        direction: Direction,
        router_caps: &RtpCapabilities,
        send_caps: Option<RtpCapabilities>,
        candidate_addr: SocketAddr,
    ) -> Result<WebRtcTransport, EngineError> {
        let creds = IceCreds { ufrag: random_token(16), pass: random_token(32) };
        let cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| EngineError::Dtls("certificate generation failed".into()))?;
        let (codecs, ext_ids, frozen) = match direction {
            Direction::Send => {
                let caps = send_caps.ok_or(EngineError::MissingSendCapabilities)?;
                let mut ids: Vec<(u8, String)> = Vec::new();
                for e in &caps.header_extensions {
                    if (1..=16).contains(&e.preferred_id)
                        && extension_from_uri(&e.uri).is_some()
                        && !ids.iter().any(|(i, u)| *i == e.preferred_id || *u == e.uri)
                    {
                        ids.push((e.preferred_id, e.uri.clone()));
                    }
                }
                (caps, ids, true)
            }
            Direction::Recv => {
                // No transport-wide sequence numbers on what we send: the engine estimates no
                // downlink bandwidth, so str0m's 1,000 send records per transport and the
                // client's feedback every ~100 ms would be pure cost (the consumer's parameters
                // still allow the extension; a negotiated extension may go unused).
                let mut ids: Vec<(u8, String)> = Vec::new();
                for e in &router_caps.header_extensions {
                    if e.uri != ortc::URI_TWCC && extension_from_uri(&e.uri).is_some() && !ids.iter().any(|(i, _)| *i == e.preferred_id) {
                        ids.push((e.preferred_id, e.uri.clone()));
                    }
                }
                (router_caps.clone(), ids, false)
            }
        };
        let mut t = WebRtcTransport {
            rtc: Rtc::new(Instant::now()),
            id,
            router,
            direction,
            creds,
            cert,
            candidate_addr,
            codecs,
            ext_ids,
            remote_fp: None,
            dtls_active: None,
            frozen,
            pending: Vec::new(),
            sniffed: false,
            next_timeout: Instant::now(),
            last_heard: None,
            needs_tick: false,
            next_mid: 0,
            producers: Vec::new(),
            consumers: Vec::new(),
            cname_for_producers: None,
            guards: Vec::new(),
        };
        t.rtc = t.build_rtc()?;
        Ok(t)
    }

    /// Builds the Rtc from the current codec table and extension ids.
    fn build_rtc(&self) -> Result<Rtc, EngineError> {
        let mut cfg = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .clear_extension_map()
            .set_dtls_cert(self.cert.clone())
            .set_local_ice_credentials(self.creds.clone());
        for (id, uri) in &self.ext_ids {
            if let Some(ext) = extension_from_uri(uri) {
                cfg = cfg.set_extension(*id, ext);
            }
        }
        let codec_config = cfg.codec_config();
        for c in self.codecs.codecs.iter().filter(|c| !c.is_rtx()) {
            let (Some(pt), Some((codec, fmtp))) = (c.preferred_payload_type, str0m_codec(c)) else { continue };
            let rtx = self
                .codecs
                .codecs
                .iter()
                .find(|r| r.is_rtx() && r.parameters.get("apt").and_then(ParamValue::as_i64) == Some(i64::from(pt)))
                .and_then(|r| r.preferred_payload_type);
            let freq = if c.clock_rate == 48000 { Frequency::FORTY_EIGHT_KHZ } else { Frequency::NINETY_KHZ };
            codec_config.add_config(Pt::from(pt), rtx.map(Pt::from), codec, freq, c.channels, fmtp);
        }
        let mut rtc = cfg.build(Instant::now());
        let candidate = Candidate::host(self.candidate_addr, "udp").map_err(|e| EngineError::Invalid(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        {
            let mut api = rtc.direct_api();
            api.set_ice_lite(true);
            api.set_ice_controlling(false);
            if self.direction == Direction::Send {
                // Without transport-cc feedback the browser's send bitrate never ramps up.
                api.enable_twcc_feedback();
            }
            if let Some(fp) = &self.remote_fp {
                api.set_remote_fingerprint(fp.clone());
                api.start_dtls(self.dtls_active.unwrap_or(false)).map_err(|e| EngineError::Dtls(e.to_string()))?;
            }
        }
        Ok(rtc)
    }

    pub fn ufrag(&self) -> &str {
        &self.creds.ufrag
    }

    pub fn options(&mut self) -> crate::WebRtcTransportOptions {
        use crate::rtp_parameters::{DtlsFingerprint, DtlsParameters, DtlsRole, IceCandidate, IceParameters};
        let fp = self.rtc.direct_api().local_dtls_fingerprint().to_string();
        let (algorithm, value) = fp.split_once(' ').unwrap_or(("sha-256", fp.as_str()));
        let ip = self.candidate_addr.ip().to_string();
        crate::WebRtcTransportOptions {
            id: self.id.clone(),
            ice_parameters: IceParameters {
                username_fragment: self.creds.ufrag.clone(),
                password: self.creds.pass.clone(),
                ice_lite: true,
            },
            ice_candidates: vec![IceCandidate {
                foundation: "udpcandidate".into(),
                priority: 1_076_302_079,
                address: ip.clone(),
                ip,
                protocol: "udp".into(),
                port: self.candidate_addr.port(),
                kind: "host".into(),
            }],
            dtls_parameters: DtlsParameters {
                role: Some(DtlsRole::Auto),
                fingerprints: vec![DtlsFingerprint { algorithm: algorithm.into(), value: value.into() }],
            },
        }
    }

    /// connectTransport: the client's fingerprint, and whether we are the DTLS client.
    pub fn connect(&mut self, fingerprint: Fingerprint, we_are_client: bool) -> Result<(), EngineError> {
        if self.remote_fp.is_some() {
            return Err(EngineError::AlreadyConnected);
        }
        let active = we_are_client;
        {
            let mut api = self.rtc.direct_api();
            api.set_remote_fingerprint(fingerprint.clone());
            api.start_dtls(active).map_err(|e| EngineError::Dtls(e.to_string()))?;
        }
        self.remote_fp = Some(fingerprint);
        self.dtls_active = Some(active);
        Ok(())
    }

    /// First produce on a send transport: rebuild the Rtc with the producer's real extension ids
    /// (Chrome numbers them by media section order, not as sendRtpCapabilities said) and unfreeze.
    /// Returns the buffered datagrams to replay.
    pub fn thaw(&mut self, produce_exts: &[RtpHeaderExtensionParameters]) -> Result<Vec<(SocketAddr, Vec<u8>)>, EngineError> {
        if !self.frozen {
            return Ok(Vec::new());
        }
        let mut plan: Vec<(u8, String)> = produce_exts
            .iter()
            .filter(|e| (1..=16).contains(&e.id) && extension_from_uri(&e.uri).is_some())
            .map(|e| (e.id, e.uri.clone()))
            .collect();
        // Other URIs keep their capability id if free, else take the highest free id.
        for (id, uri) in &self.ext_ids {
            if plan.iter().any(|(_, u)| u == uri) {
                continue;
            }
            let free = |i: &u8| !plan.iter().any(|(x, _)| x == i);
            let chosen = if free(id) { Some(*id) } else { (1..=14u8).rev().find(free) };
            if let Some(i) = chosen {
                plan.push((i, uri.clone()));
            }
        }
        plan.sort();
        let mut old = self.ext_ids.clone();
        old.sort();
        if plan != old {
            tracing::debug!(transport = %self.id, ?old, new = ?plan, "rebuilding send transport with produce's extension ids");
            self.ext_ids = plan;
            self.rtc = self.build_rtc()?;
        }
        self.frozen = false;
        self.sniffed = false;
        Ok(std::mem::take(&mut self.pending))
    }

    pub fn buffer(&mut self, src: SocketAddr, data: &[u8]) {
        if self.pending.len() < MAX_PENDING {
            self.pending.push((src, data.to_vec()));
        }
    }

    /// Whether the Rtc knows payload type `pt` (send transports: from sendRtpCapabilities).
    pub fn knows_pt(&self, pt: u8) -> bool {
        self.codecs.codecs.iter().any(|c| c.preferred_payload_type == Some(pt) && (c.is_rtx() || str0m_codec(c).is_some()))
    }

    /// Guards the sequence numbers of a new producer's SSRCs.
    pub fn guard_ssrcs(&mut self, ssrc: u32, rtx: Option<u32>) {
        for s in std::iter::once(ssrc).chain(rtx) {
            if !self.guards.iter().any(|(g, _)| *g == s) {
                self.guards.push((s, SeqGuard::default()));
            }
        }
    }

    /// The guard's verdict on an RTP packet of `ssrc`; SSRCs not produced here pass (str0m
    /// drops what it cannot map).
    pub fn admit(&mut self, ssrc: u32, seq: u16, data: &[u8], kept_away: &mut u64) -> Admit {
        match self.guards.iter_mut().find(|(g, _)| *g == ssrc) {
            Some((_, guard)) => guard.admit(seq, data, kept_away),
            None => Admit::Pass,
        }
    }

    /// str0m accepted a packet of `ssrc` with sequence number `seq`.
    pub fn accepted(&mut self, ssrc: u32, seq: u16) {
        if let Some((_, guard)) = self.guards.iter_mut().find(|(g, _)| *g == ssrc) {
            guard.accepted(seq);
        }
    }

    pub fn is_connected(&self) -> bool {
        self.rtc.is_connected()
    }
}

pub(crate) fn random_token(len: usize) -> String {
    (0..len).map(|_| fastrand::alphanumeric()).collect()
}

/// DTLS fingerprint algorithms (RFC 8122 names, as mediasoup's `DtlsTransport` lists them).
const FINGERPRINT_ALGORITHMS: [&str; 5] = ["sha-1", "sha-224", "sha-256", "sha-384", "sha-512"];

/// The client's DTLS fingerprint that str0m can verify: sha-256, else sha-1, with the digest
/// length of its algorithm. Other known algorithms are refused by name (str0m checks no
/// others); unknown ones are invalid, as in mediasoup.
pub(crate) fn remote_fingerprint(dtls: &DtlsParameters) -> Result<Fingerprint, EngineError> {
    if let Some(f) = dtls.fingerprints.iter().find(|f| !FINGERPRINT_ALGORITHMS.iter().any(|a| f.algorithm.eq_ignore_ascii_case(a))) {
        return Err(EngineError::Invalid(format!("unknown DTLS fingerprint algorithm {:?}", f.algorithm)));
    }
    let pick = |alg: &str| dtls.fingerprints.iter().find(|f| f.algorithm.eq_ignore_ascii_case(alg));
    let (fp, len) = match (pick("sha-256"), pick("sha-1")) {
        (Some(fp), _) => (fp, 32),
        (None, Some(fp)) => (fp, 20),
        (None, None) => {
            return Err(match dtls.fingerprints.first() {
                Some(f) => EngineError::UnsupportedFingerprint(f.algorithm.clone()),
                None => EngineError::Invalid("dtlsParameters.fingerprints is empty".into()),
            })
        }
    };
    let text = format!("{} {}", fp.algorithm.to_ascii_lowercase(), fp.value);
    let unreadable = || EngineError::Invalid(format!("unreadable {} fingerprint {:?}", fp.algorithm, fp.value));
    let fingerprint: Fingerprint = text.parse().map_err(|_| unreadable())?;
    if fingerprint.bytes.len() != len {
        return Err(unreadable());
    }
    Ok(fingerprint)
}
