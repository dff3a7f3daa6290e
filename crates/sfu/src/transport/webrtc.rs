//! WebRtcTransport: one str0m `Rtc` in ICE-lite, RTP mode, with the quirks mediasoup-client
//! needs (docs/architecture.md, "Transports"): the remote ufrag sniffed from the first STUN
//! request, and for send transports an Rtc (re)built with the header-extension ids of the first
//! `produce`, datagrams buffered until then. Time comes in as `now`; nothing here reads a clock.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::config::DtlsCert;
use str0m::ice::IceCreds;
use str0m::media::{Frequency, Pt};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use super::codecs::{extension_from_uri, str0m_codec};
use super::fingerprint::remote_fingerprint;
use super::path::{MediaPath, PeerAddrs};
use super::quality::{Quality, STATS_INTERVAL};
use crate::error::{ConnectError, CreateTransportError};
use crate::ids::TransportId;
use crate::ortc;
use crate::rtp_parameters::{DtlsParameters, DtlsRole, IceParameters, ParamValue, RtpCapabilities, RtpHeaderExtensionParameters};
use crate::seq_guard::{SeqGuard, TwccGuard};
use crate::transmit::Outbox;
use crate::{Direction, WebRtcTransportOptions};

/// Datagrams kept for a send transport while it waits for its first `produce`.
const MAX_PENDING: usize = 512;
/// How long to wait before polling an Rtc again after it reported an error.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(50);
/// Most extra ticks one poll gives an Rtc that wants one at once (see [`WebRtcTransport::poll`]).
const MAX_TICKS_PER_POLL: u32 = 64;

/// What [`WebRtcTransport::receive`] did with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Kept until the first `produce` (send transport not yet thawed).
    Buffered,
    /// For the Rtc: pass it through the sequence guard and [`WebRtcTransport::feed`].
    Ready,
}

/// What one [`WebRtcTransport::poll`] found.
pub(crate) struct Polled {
    /// When the Rtc wants its next timeout.
    pub next_timeout: Instant,
    /// False once the peer closed DTLS (or its fingerprint did not match).
    pub alive: bool,
}

pub(crate) struct WebRtcTransport {
    direction: Direction,
    rtc: Rtc,
    creds: IceCreds,
    cert: DtlsCert,
    candidate_addr: SocketAddr,
    /// Whether a passive ICE-TCP candidate is offered on the same address (RFC 6544).
    tcp: bool,
    /// Codecs of the Rtc: the client's (send) or the router's (recv).
    codecs: RtpCapabilities,
    ext_ids: Vec<(u8, String)>,
    remote_fp: Option<str0m::config::Fingerprint>,
    dtls_active: Option<bool>,
    /// Send transport before its first produce: datagrams wait in `pending`.
    frozen: bool,
    pending: Vec<(Protocol, SocketAddr, Vec<u8>)>,
    /// The client's ufrag, taken from its STUN requests (mediasoup-client never signals it).
    remote_ufrag: Option<String>,
    next_timeout: Instant,
    /// When a datagram from the peer last arrived (None: never).
    last_heard: Option<Instant>,
    /// Give the Rtc an `Input::Timeout` before polling it: str0m only schedules what was written
    /// through its direct API (RTP, keyframe requests) when time moves forward.
    needs_tick: bool,
    next_mid: u32,
    /// The cname every producer of this transport carries (mediasoup: the first one given).
    cname_for_producers: Option<String>,
    /// Sequence guards of the SSRCs produced here (media and RTX), see [`SeqGuard`].
    guards: Vec<(u32, SeqGuard)>,
    /// The transport-cc numbers str0m records, see [`TwccGuard`] (made again with the Rtc).
    twcc: TwccGuard,
    /// The addresses the worker maps to this transport.
    peer_addrs: PeerAddrs,
    /// Where its media goes.
    path: MediaPath,
    /// str0m's latest statistics.
    quality: Quality,
    ice_state: str0m::IceConnectionState,
    dtls_connected: bool,
    /// The downlink estimation of a receive transport with estimation on (see `bwe`).
    downlink: Option<bwe::Downlink>,
    /// Bytes of every datagram sent (str0m's own figure leaves out the estimator's padding).
    bytes_sent: u64,
}

/// Where a transport listens and what it runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Local {
    /// The announced address (the ICE candidate).
    pub addr: SocketAddr,
    /// Offer a passive ICE-TCP candidate on the same address (RFC 6544).
    pub tcp: bool,
    /// Estimate the downlink of receive transports (`bwe`).
    pub downlink_bwe: bool,
}

impl WebRtcTransport {
    /// A transport announcing `candidate_addr` (UDP, and TCP passive if `tcp`), with the
    /// worker's DTLS certificate (`super::cert`). A send transport needs the client's
    /// `sendRtpCapabilities` (its payload types); a receive transport uses the router's, and
    /// estimates its downlink if `local.downlink_bwe` and the client's capabilities, when given,
    /// include transport-cc (without its feedback the estimate would stay at its start and the
    /// pacer hold the consumers to it).
    pub fn new(
        direction: Direction,
        router_caps: &RtpCapabilities,
        client_caps: Option<RtpCapabilities>,
        local: Local,
        cert: DtlsCert,
        now: Instant,
    ) -> Result<WebRtcTransport, CreateTransportError> {
        let Local { addr: candidate_addr, tcp, downlink_bwe } = local;
        let downlink_bwe = downlink_bwe
            && direction == Direction::Recv
            && client_caps.as_ref().is_none_or(|c| c.header_extensions.iter().any(|e| e.uri == ortc::URI_TWCC));
        let creds = IceCreds { ufrag: random_token(16), pass: random_token(32) };
        let (codecs, ext_ids, frozen) = match direction {
            Direction::Send => {
                let caps = client_caps.ok_or(CreateTransportError::MissingSendCapabilities)?;
                ortc::validate_send_capabilities(router_caps, &caps)?;
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
                // Transport-wide sequence numbers on what we send only to estimate the
                // downlink: otherwise str0m's 1,000 send records per transport and the client's
                // feedback every ~100 ms would be pure cost (the consumer's parameters still
                // allow the extension; a negotiated extension may go unused).
                let mut ids: Vec<(u8, String)> = Vec::new();
                for e in &router_caps.header_extensions {
                    let wanted = e.uri != ortc::URI_TWCC || downlink_bwe;
                    if wanted && extension_from_uri(&e.uri).is_some() && !ids.iter().any(|(i, _)| *i == e.preferred_id) {
                        ids.push((e.preferred_id, e.uri.clone()));
                    }
                }
                (router_caps.clone(), ids, false)
            }
        };
        let mut t = WebRtcTransport {
            // A placeholder until `build_rtc` below (with the certificate: `Rtc::new` would make
            // one of its own).
            rtc: RtcConfig::new().set_dtls_cert(cert.clone()).build(now),
            direction,
            creds,
            cert,
            candidate_addr,
            tcp,
            codecs,
            ext_ids,
            remote_fp: None,
            dtls_active: None,
            frozen,
            pending: Vec::new(),
            remote_ufrag: None,
            next_timeout: now,
            last_heard: None,
            needs_tick: false,
            next_mid: 0,
            cname_for_producers: None,
            guards: Vec::new(),
            twcc: TwccGuard::default(),
            peer_addrs: PeerAddrs::default(),
            path: MediaPath::default(),
            quality: Quality::default(),
            ice_state: str0m::IceConnectionState::New,
            dtls_connected: false,
            downlink: downlink_bwe.then(bwe::Downlink::default),
            bytes_sent: 0,
        };
        t.rtc = t.build_rtc(now).map_err(CreateTransportError::Setup)?;
        Ok(t)
    }

    /// Builds the Rtc from the current codec table and extension ids.
    fn build_rtc(&self, now: Instant) -> Result<Rtc, String> {
        let mut cfg = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .clear_extension_map()
            .set_dtls_cert(self.cert.clone())
            .set_local_ice_credentials(self.creds.clone())
            .set_stats_interval(Some(STATS_INTERVAL));
        if self.estimates_downlink() {
            cfg = cfg.enable_bwe(Some(str0m::bwe::Bitrate::bps(bwe::INITIAL_ESTIMATE_BPS)));
        }
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
        let mut rtc = cfg.build(now);
        let candidate = Candidate::host(self.candidate_addr, "udp").map_err(|e| e.to_string())?;
        rtc.add_local_candidate(candidate);
        if self.tcp {
            let passive = Candidate::builder().tcp().host(self.candidate_addr).tcptype(TcpType::Passive).build();
            rtc.add_local_candidate(passive.map_err(|e| e.to_string())?);
        }
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
                api.start_dtls(self.dtls_active.unwrap_or(false)).map_err(|e| format!("DTLS: {e}"))?;
            }
        }
        Ok(rtc)
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn ufrag(&self) -> &str {
        &self.creds.ufrag
    }

    /// What the client needs to build its side (mediasoup's transport options).
    pub fn options(&mut self, id: TransportId) -> WebRtcTransportOptions {
        use crate::rtp_parameters::DtlsFingerprint;
        let fp = self.rtc.direct_api().local_dtls_fingerprint().to_string();
        let (algorithm, value) = fp.split_once(' ').unwrap_or(("sha-256", fp.as_str()));
        WebRtcTransportOptions {
            id,
            ice_parameters: IceParameters {
                username_fragment: self.creds.ufrag.clone(),
                password: self.creds.pass.clone(),
                ice_lite: true,
            },
            ice_candidates: self.ice_candidates(),
            dtls_parameters: DtlsParameters {
                role: Some(DtlsRole::Auto),
                fingerprints: vec![DtlsFingerprint { algorithm: algorithm.into(), value: value.into() }],
            },
        }
    }

    /// connectTransport: the client's fingerprint and DTLS role. mediasoup's rule
    /// (WebRtcTransport::Connect): a client that says `client` makes us the DTLS server;
    /// `server`, `auto` or no role make us the client (we are ICE-controlled).
    pub fn connect(&mut self, dtls: &DtlsParameters) -> Result<(), ConnectError> {
        let fingerprint = remote_fingerprint(dtls)?;
        if self.remote_fp.is_some() {
            return Err(ConnectError::AlreadyConnected);
        }
        let active = dtls.role != Some(DtlsRole::Client);
        {
            let mut api = self.rtc.direct_api();
            api.set_remote_fingerprint(fingerprint.clone());
            api.start_dtls(active).map_err(|e| ConnectError::Dtls(e.to_string()))?;
        }
        self.remote_fp = Some(fingerprint);
        self.dtls_active = Some(active);
        self.needs_tick = true;
        Ok(())
    }

    /// What str0m reported (statistics, ICE and DTLS state changes); the worker hands over
    /// these events.
    pub fn quality_mut(&mut self) -> &mut Quality {
        &mut self.quality
    }

    pub fn quality(&self) -> &Quality {
        &self.quality
    }

    pub fn set_ice_state(&mut self, state: str0m::IceConnectionState) {
        self.ice_state = state;
    }

    pub fn set_dtls_connected(&mut self) {
        self.dtls_connected = true;
    }

    /// A datagram from the peer arrived: it counts as heard; it is buffered while frozen.
    pub fn receive(&mut self, now: Instant, proto: Protocol, src: SocketAddr, data: &[u8]) -> Arrival {
        self.last_heard = Some(now);
        self.path.heard(proto, src, now);
        if !self.frozen {
            return Arrival::Ready;
        }
        if self.pending.len() < MAX_PENDING {
            self.pending.push((proto, src, data.to_vec()));
        }
        Arrival::Buffered
    }

    /// Hands one datagram (or ICE-TCP frame) to the Rtc; Err says why str0m refused it (counted
    /// as dropped).
    pub fn feed(&mut self, now: Instant, proto: Protocol, src: SocketAddr, data: &[u8]) -> Result<(), String> {
        let receive = Receive::new(proto, src, self.candidate_addr, data).map_err(|e| e.to_string())?;
        self.rtc.handle_input(Input::Receive(now, receive)).map_err(|e| e.to_string())
    }

    /// Ticks the Rtc if asked, then takes everything it has to say: datagrams into `out`,
    /// events into `events`.
    pub fn poll(&mut self, now: Instant, out: &mut Outbox, events: &mut Vec<Event>) -> Polled {
        if std::mem::take(&mut self.needs_tick) {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!("timeout: {e}");
            }
        }
        let mut ticks = 0;
        loop {
            match self.rtc.poll_output() {
                // With downlink estimation str0m's pacer releases one packet per tick and then
                // asks for a tick at once: ticked here, the rest go out in this turn instead of one
                // per turn (a few ms later each).
                Ok(Output::Timeout(at)) if at <= now && ticks < MAX_TICKS_PER_POLL => {
                    ticks += 1;
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!("timeout: {e}");
                    }
                }
                Ok(Output::Timeout(at)) => {
                    self.next_timeout = at;
                    break;
                }
                Ok(Output::Transmit(tx)) => {
                    self.path.sent(tx.proto, tx.destination, tx.contents.first().copied());
                    self.bytes_sent += tx.contents.len() as u64;
                    out.push_via(tx.proto, tx.destination, tx.contents.into())
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => {
                    tracing::debug!("poll_output: {e}");
                    self.next_timeout = now + RETRY_AFTER_ERROR;
                    break;
                }
            }
        }
        Polled { next_timeout: self.next_timeout, alive: self.rtc.is_alive() }
    }

    /// When the Rtc wants its next timeout.
    pub fn next_timeout(&self) -> Instant {
        self.next_timeout
    }

    /// Marks the Rtc for a tick if its timeout has come; whether it has.
    pub fn tick_if_due(&mut self, now: Instant) -> bool {
        let due = self.next_timeout <= now;
        self.needs_tick |= due;
        due
    }

    /// Whether the peer was heard once and then nothing for `idle`. A transport never
    /// contacted is not silent: mediasoup-client connects a receive transport only with its
    /// first consumer, which may come much later.
    pub fn silent(&self, now: Instant, idle: Duration) -> bool {
        self.last_heard.is_some_and(|at| now.saturating_duration_since(at) > idle)
    }

    /// First produce on a send transport: rebuild the Rtc with the producer's real extension ids
    /// (Chrome numbers them by media section order, not as sendRtpCapabilities said) and unfreeze.
    /// Returns the buffered datagrams to replay.
    pub fn thaw(
        &mut self,
        now: Instant,
        produce_exts: &[RtpHeaderExtensionParameters],
    ) -> Result<Vec<(Protocol, SocketAddr, Vec<u8>)>, String> {
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
            tracing::debug!(?old, new = ?plan, "rebuilding send transport with produce's extension ids");
            self.ext_ids = plan;
            self.rtc = self.build_rtc(now)?;
            self.twcc = TwccGuard::default();
            self.next_timeout = now;
        }
        self.frozen = false;
        self.remote_ufrag = None;
        Ok(std::mem::take(&mut self.pending))
    }

    /// Whether the Rtc knows payload type `pt` (send transports: from sendRtpCapabilities).
    pub fn knows_pt(&self, pt: u8) -> bool {
        self.codecs.codecs.iter().any(|c| c.preferred_payload_type == Some(pt) && (c.is_rtx() || str0m_codec(c).is_some()))
    }

    /// The cname of this transport's producers: the first one given, or a random one.
    pub fn cname_for_producers(&mut self, given: Option<&String>) -> String {
        // mediasoup takes a missing or empty cname alike (`if (!rtpParameters.rtcp.cname)`):
        // Chrome's rid simulcast has no `a=ssrc` lines, so mediasoup-client sends "" then.
        let given = given.filter(|c| !c.is_empty());
        self.cname_for_producers.get_or_insert_with(|| given.cloned().unwrap_or_else(|| random_token(8))).clone()
    }

    /// The mid of the next consumer ("0", "1", ...).
    pub fn allocate_mid(&mut self) -> String {
        let mid = self.next_mid.to_string();
        self.next_mid += 1;
        mid
    }

    pub fn is_connected(&self) -> bool {
        self.rtc.is_connected()
    }
}

#[cfg(feature = "fuzzing")]
impl WebRtcTransport {
    /// Replaces the SRTP keys DTLS gave (str0m's test export): a fuzzer then encrypts what it
    /// sends as this transport's peer.
    pub fn set_srtp_keys(&mut self, material: &[u8], profile: str0m::crypto::dtls::SrtpProfile, active: bool) {
        let material = str0m::crypto::dtls::KeyingMaterial::new(material);
        self.rtc._set_srtp_keys(material, profile, active);
    }

    /// Datagrams buffered until the first produce.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Datagrams held by the sequence guards.
    pub fn held_len(&self) -> usize {
        self.guards.iter().map(|(_, g)| g.held_len()).sum()
    }

    /// SSRCs with a sequence guard.
    pub fn guards_len(&self) -> usize {
        self.guards.len()
    }
}

pub(crate) fn random_token(len: usize) -> String {
    (0..len).map(|_| fastrand::alphanumeric()).collect()
}

mod bwe;
mod ice;
mod report;
mod streams;

#[cfg(test)]
#[path = "webrtc_tests.rs"]
mod tests;
