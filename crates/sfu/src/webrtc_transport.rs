//! WebRtcTransport: one str0m `Rtc` in ICE-lite, RTP mode, with the quirks mediasoup-client
//! needs (DESIGN.md): the remote ufrag sniffed from the first binding request, and for send
//! transports an Rtc (re)built with the header-extension ids of the first `produce`, with the
//! datagrams that arrive before it buffered and replayed.
use std::net::SocketAddr;
use std::time::Instant;

use str0m::config::{DtlsCert, Fingerprint};
use str0m::format::{Codec, FormatParams};
use str0m::ice::IceCreds;
use str0m::media::{Frequency, Pt};
use str0m::rtp::{Extension, ExtensionValues, RtpWrite, Ssrc};
use str0m::{Candidate, Input, Rtc, RtcConfig};

use crate::error::TransportError;
use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::ortc;
use crate::rtp_parameters::{
    DtlsFingerprint, DtlsParameters, DtlsRole, IceCandidate, IceParameters, ParamValue, RtpCapabilities,
    RtpCodecCapability, RtpHeaderExtensionParameters,
};
use crate::{Direction, WebRtcTransportOptions};

/// Datagrams kept for a send transport while it waits for its first `produce`.
const MAX_PENDING: usize = 512;
/// str0m reads header extension ids 1..=16.
const MAX_EXT_ID: u8 = 16;
/// Ids we pick ourselves stay in the one-byte form (1..=14).
const MAX_ONE_BYTE_ID: u8 = 14;

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
            let profile_id = int("profile-id").and_then(|p| u32::try_from(p).ok());
            (Codec::Vp9, FormatParams { profile_id, ..Default::default() })
        }
        "video/h264" => {
            let profile_level_id = match c.parameters.get("profile-level-id") {
                Some(ParamValue::String(s)) => u32::from_str_radix(s, 16).ok(),
                Some(ParamValue::Number(n)) => u32::from_str_radix(&n.to_string(), 16).ok(),
                Some(ParamValue::Other(_)) | None => None,
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

/// One forwarded RTP packet, ready for a consumer's transport.
pub(crate) struct OutgoingRtp<'a> {
    pub ssrc: Ssrc,
    pub pt: u8,
    pub seq: u64,
    pub timestamp: u32,
    pub wallclock: Instant,
    pub marker: bool,
    pub payload: &'a [u8],
    pub ext: &'a ExtensionValues,
    pub nackable: bool,
}

pub(crate) struct WebRtcTransport {
    pub id: TransportId,
    pub router: RouterId,
    pub direction: Direction,
    pub rtc: Rtc,
    creds: IceCreds,
    cert: DtlsCert,
    candidate_addr: SocketAddr,
    /// Codecs of the Rtc: the client's (send) or the router's (recv).
    codecs: RtpCapabilities,
    /// The Rtc's extension map (id, uri).
    ext_ids: Vec<(u8, String)>,
    remote_fp: Option<Fingerprint>,
    dtls_active: Option<bool>,
    /// Send transport before its first produce: datagrams wait in `pending`.
    pub frozen: bool,
    pending: Vec<(SocketAddr, Vec<u8>)>,
    /// Whether the remote ICE ufrag has been set on the current Rtc.
    pub sniffed: bool,
    /// Whether TransportConnected was reported.
    pub connected: bool,
    pub next_timeout: Instant,
    next_mid: u32,
    pub producers: Vec<ProducerId>,
    pub consumers: Vec<ConsumerId>,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
}

impl WebRtcTransport {
    pub fn new(
        id: TransportId,
        router: RouterId,
        direction: Direction,
        router_caps: &RtpCapabilities,
        send_caps: Option<RtpCapabilities>,
        candidate_addr: SocketAddr,
    ) -> Result<WebRtcTransport, TransportError> {
        let creds = IceCreds { ufrag: random_token(16), pass: random_token(32) };
        let cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| TransportError::Dtls("certificate generation failed".into()))?;
        let (codecs, ext_ids, frozen) = match direction {
            Direction::Send => {
                let caps = send_caps.ok_or(TransportError::MissingSendCapabilities)?;
                let mut ids: Vec<(u8, String)> = Vec::new();
                for e in &caps.header_extensions {
                    if (1..=MAX_EXT_ID).contains(&e.preferred_id)
                        && extension_from_uri(&e.uri).is_some()
                        && !ids.iter().any(|(i, u)| *i == e.preferred_id || *u == e.uri)
                    {
                        ids.push((e.preferred_id, e.uri.clone()));
                    }
                }
                (caps, ids, true)
            }
            Direction::Recv => {
                let mut ids: Vec<(u8, String)> = Vec::new();
                for e in &router_caps.header_extensions {
                    if extension_from_uri(&e.uri).is_some() && !ids.iter().any(|(i, _)| *i == e.preferred_id) {
                        ids.push((e.preferred_id, e.uri.clone()));
                    }
                }
                (router_caps.clone(), ids, false)
            }
        };
        let now = Instant::now();
        let mut t = WebRtcTransport {
            rtc: Rtc::new(now),
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
            connected: false,
            next_timeout: now,
            next_mid: 0,
            producers: Vec::new(),
            consumers: Vec::new(),
            packets_in: 0,
            bytes_in: 0,
            packets_out: 0,
            bytes_out: 0,
        };
        t.rtc = t.build_rtc()?;
        Ok(t)
    }

    /// Builds the Rtc from the current codec table and extension ids.
    fn build_rtc(&self) -> Result<Rtc, TransportError> {
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
        let candidate =
            Candidate::host(self.candidate_addr, "udp").map_err(|e| TransportError::Candidate(e.to_string()))?;
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
                api.start_dtls(self.dtls_active.unwrap_or(false)).map_err(|e| TransportError::Dtls(e.to_string()))?;
            }
        }
        Ok(rtc)
    }

    pub fn ufrag(&self) -> &str {
        &self.creds.ufrag
    }

    /// What mediasoup-client's `device.createSendTransport/createRecvTransport` takes.
    pub fn options(&mut self) -> WebRtcTransportOptions {
        let fp = self.rtc.direct_api().local_dtls_fingerprint().to_string();
        let (algorithm, value) = fp.split_once(' ').unwrap_or(("sha-256", fp.as_str()));
        let ip = self.candidate_addr.ip().to_string();
        WebRtcTransportOptions {
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

    /// connectTransport: the client's fingerprint and role; we take the other role (Chrome
    /// says `client` or `auto`, which makes us the DTLS server).
    pub fn connect(&mut self, dtls: &DtlsParameters) -> Result<(), TransportError> {
        if self.remote_fp.is_some() {
            return Err(TransportError::AlreadyConnected);
        }
        let fp = dtls
            .fingerprints
            .iter()
            .find(|f| f.algorithm.eq_ignore_ascii_case("sha-256"))
            .or(dtls.fingerprints.first())
            .ok_or(TransportError::NoFingerprint)?;
        let text = format!("{} {}", fp.algorithm.to_ascii_lowercase(), fp.value);
        let fingerprint: Fingerprint = text.parse().map_err(|_| TransportError::BadFingerprint(fp.value.clone()))?;
        let active = dtls.role == Some(DtlsRole::Server);
        {
            let mut api = self.rtc.direct_api();
            api.set_remote_fingerprint(fingerprint.clone());
            api.start_dtls(active).map_err(|e| TransportError::Dtls(e.to_string()))?;
        }
        self.remote_fp = Some(fingerprint);
        self.dtls_active = Some(active);
        let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
        Ok(())
    }

    /// Sets the client's ICE ufrag from its first binding request (any password: our replies
    /// are signed with ours).
    pub fn sniff_remote_ufrag(&mut self, ufrag: &str) {
        if self.sniffed || self.frozen {
            return;
        }
        self.rtc.direct_api().set_remote_ice_credentials(IceCreds { ufrag: ufrag.to_string(), pass: String::new() });
        self.sniffed = true;
    }

    /// First produce on a send transport: rebuild the Rtc with the producer's real extension
    /// ids (Chrome numbers them by media section order, not as sendRtpCapabilities said) and
    /// unfreeze. Returns the buffered datagrams to replay. Later produces return nothing; an
    /// extension id that disagrees with the map is logged (str0m cannot remap a live Rtc).
    pub fn thaw(
        &mut self,
        produce_exts: &[RtpHeaderExtensionParameters],
    ) -> Result<Vec<(SocketAddr, Vec<u8>)>, TransportError> {
        if !self.frozen {
            for e in produce_exts.iter().filter(|e| extension_from_uri(&e.uri).is_some()) {
                if !self.ext_ids.iter().any(|(id, uri)| *id == e.id && *uri == e.uri) {
                    tracing::warn!(transport = %self.id, uri = %e.uri, id = e.id, map = ?self.ext_ids,
                        "a later producer uses an extension id the connection does not have; that extension is not read");
                }
            }
            return Ok(Vec::new());
        }
        let plan = plan_extension_ids(produce_exts, &self.ext_ids);
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

    pub fn is_connected(&self) -> bool {
        self.rtc.is_connected()
    }

    /// The next mid of a consumer on this transport ("0", "1", ...).
    pub fn next_consumer_mid(&mut self) -> String {
        let mid = self.next_mid.to_string();
        self.next_mid += 1;
        mid
    }

    /// Queues one forwarded packet on the consumer's stream; it leaves on the next poll.
    pub fn write_rtp(&mut self, p: &OutgoingRtp<'_>) -> bool {
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx(&p.ssrc) else { return false };
        let write = RtpWrite::new(Pt::from(p.pt), p.seq.into(), p.timestamp, p.wallclock, p.payload.to_vec())
            .marker(p.marker)
            .ext_vals(p.ext.clone())
            .nackable(p.nackable);
        tx.write_rtp(write);
        true
    }
}

/// The extension map of a send transport at its first produce: the produce's (uri, id) pairs,
/// then the other known URIs of the capabilities at their capability id if free, else at the
/// highest free id (what Chrome does for a URI first used by a later media section).
fn plan_extension_ids(produce_exts: &[RtpHeaderExtensionParameters], caps_ids: &[(u8, String)]) -> Vec<(u8, String)> {
    let mut plan: Vec<(u8, String)> = Vec::new();
    for e in produce_exts {
        let usable = (1..=MAX_EXT_ID).contains(&e.id) && extension_from_uri(&e.uri).is_some();
        if usable && !plan.iter().any(|(i, u)| *i == e.id || *u == e.uri) {
            plan.push((e.id, e.uri.clone()));
        }
    }
    for (id, uri) in caps_ids {
        if plan.iter().any(|(_, u)| u == uri) {
            continue;
        }
        let free = |i: &u8| !plan.iter().any(|(x, _)| x == i);
        let chosen = if free(id) { Some(*id) } else { (1..=MAX_ONE_BYTE_ID).rev().find(free) };
        if let Some(i) = chosen {
            plan.push((i, uri.clone()));
        }
    }
    plan.sort();
    plan
}

pub(crate) fn random_token(len: usize) -> String {
    (0..len).map(|_| fastrand::alphanumeric()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(uri: &str, id: u8) -> RtpHeaderExtensionParameters {
        RtpHeaderExtensionParameters { uri: uri.into(), id, encrypt: false, parameters: Default::default() }
    }

    #[test]
    fn produce_ids_win_and_other_uris_keep_or_move() {
        // Capabilities said mid 1, abs-send-time 4, twcc 5, audio level 10, toffset 12.
        let caps: Vec<(u8, String)> = [
            (1, ortc::URI_MID),
            (4, ortc::URI_ABS_SEND_TIME),
            (5, ortc::URI_TWCC),
            (10, ortc::URI_AUDIO_LEVEL),
            (12, ortc::URI_TOFFSET),
        ]
        .iter()
        .map(|(i, u)| (*i, u.to_string()))
        .collect();
        // Chrome's video produce: mid 9, twcc 4, abs-send-time 2, toffset 10.
        let produce =
            [ext(ortc::URI_MID, 9), ext(ortc::URI_TWCC, 4), ext(ortc::URI_ABS_SEND_TIME, 2), ext(ortc::URI_TOFFSET, 10)];
        let plan = plan_extension_ids(&produce, &caps);
        let id_of = |uri: &str| plan.iter().find(|(_, u)| u == uri).map(|(i, _)| *i);
        assert_eq!(id_of(ortc::URI_MID), Some(9));
        assert_eq!(id_of(ortc::URI_TWCC), Some(4));
        assert_eq!(id_of(ortc::URI_ABS_SEND_TIME), Some(2));
        assert_eq!(id_of(ortc::URI_TOFFSET), Some(10));
        assert_eq!(id_of(ortc::URI_AUDIO_LEVEL), Some(14), "its capability id 10 is taken: highest free");
        let mut ids: Vec<u8> = plan.iter().map(|(i, _)| *i).collect();
        ids.dedup();
        assert_eq!(ids.len(), plan.len(), "ids are unique");
    }

    #[test]
    fn unusable_ids_and_unknown_uris_are_skipped() {
        let produce = [ext(ortc::URI_MID, 0), ext(ortc::URI_TWCC, 17), ext("urn:x-unknown", 3), ext(ortc::URI_MID, 3)];
        let plan = plan_extension_ids(&produce, &[]);
        assert_eq!(plan, vec![(3, ortc::URI_MID.to_string())]);
    }
}
