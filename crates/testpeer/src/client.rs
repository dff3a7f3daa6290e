//! The client side of one server transport: a str0m Rtc that behaves like Chrome under
//! mediasoup-client (full ICE, controlling; DTLS client unless asked otherwise), on a real UDP
//! socket or in memory (datagrams handed over by a [`crate::sim::Sim`]).
use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use serde_json::{json, Value};
use str0m::bwe::Bitrate;
use str0m::config::Fingerprint;
use str0m::format::{Codec, FormatParams};
use str0m::ice::IceCreds;
use str0m::media::{Frequency, Pt};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use crate::{OPUS_PT, VP8_PT, VP8_RTX_PT, VP9_PT, VP9_RTX_PT};

/// Where a client's datagrams go.
enum Net {
    Udp(UdpSocket),
    /// In memory: `inbox` is filled by the simulation, `outbox` emptied by it.
    Memory {
        inbox: VecDeque<(Protocol, SocketAddr, Vec<u8>)>,
        outbox: Vec<(Protocol, SocketAddr, Vec<u8>)>,
    },
}

/// A client side of one server transport: its Rtc, on its own socket or in memory.
pub struct ClientTransport {
    pub id: String,
    pub rtc: Rtc,
    net: Net,
    local: SocketAddr,
    /// Percentage of outgoing video RTP datagrams to drop (simulated loss).
    pub drop_pct: u32,
    pub dropped: u64,
}

impl ClientTransport {
    /// Builds the client for `options` (the server's transportOptions JSON); returns it and the
    /// dtlsParameters to send with `connectTransport`.
    pub fn new(options: &Value, send: bool) -> Result<(ClientTransport, Value), String> {
        Self::with_bwe(options, send, send)
    }

    /// As [`ClientTransport::new`]; `bwe` turns str0m's bandwidth estimation (and its pacer) on
    /// for a sending client, transport-cc feedback for a receiving one.
    /// Load runs leave it off so that the client's pacer adds no delay of its own.
    pub fn with_bwe(options: &Value, send: bool, bwe: bool) -> Result<(ClientTransport, Value), String> {
        Self::on_udp(options, send, bwe, true)
    }

    /// As [`ClientTransport::new`], but this client is the DTLS server (it waits for the
    /// server's handshake); the dtlsParameters returned say `"role": "server"`.
    pub fn dtls_server(options: &Value, send: bool) -> Result<(ClientTransport, Value), String> {
        Self::on_udp(options, send, send, false)
    }

    /// A client without a socket, at address `local`, whose clock starts at `now`: a
    /// [`crate::sim::Sim`] carries its datagrams ([`ClientTransport::deliver`],
    /// [`ClientTransport::take_outgoing`]).
    pub fn in_memory(options: &Value, send: bool, bwe: bool, local: SocketAddr, now: Instant) -> Result<(ClientTransport, Value), String> {
        let net = Net::Memory { inbox: VecDeque::new(), outbox: Vec::new() };
        Self::build(options, send, bwe, true, net, (local, Protocol::Udp), now)
    }

    /// As [`ClientTransport::in_memory`], for a client whose UDP is blocked: its only candidate
    /// is TCP active, paired with the server's TCP passive one (ICE-TCP, RFC 6544).
    pub fn in_memory_tcp(options: &Value, send: bool, local: SocketAddr, now: Instant) -> Result<(ClientTransport, Value), String> {
        let net = Net::Memory { inbox: VecDeque::new(), outbox: Vec::new() };
        Self::build(options, send, false, true, net, (local, Protocol::Tcp), now)
    }

    fn on_udp(options: &Value, send: bool, bwe: bool, dtls_client: bool) -> Result<(ClientTransport, Value), String> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        Self::build(options, send, bwe, dtls_client, Net::Udp(socket), (local, Protocol::Udp), Instant::now())
    }

    fn build(
        options: &Value,
        send: bool,
        bwe: bool,
        dtls_client: bool,
        net: Net,
        (local, proto): (SocketAddr, Protocol),
        now: Instant,
    ) -> Result<(ClientTransport, Value), String> {
        let id = options["id"].as_str().ok_or("options.id")?.to_string();
        let ice = &options["iceParameters"];
        let creds = IceCreds {
            ufrag: ice["usernameFragment"].as_str().ok_or("ufrag")?.into(),
            pass: ice["password"].as_str().ok_or("password")?.into(),
        };
        let protocol = if proto == Protocol::Tcp { "tcp" } else { "udp" };
        let cand = options["iceCandidates"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["protocol"] == protocol))
            .ok_or(format!("no {protocol} candidate"))?;
        let server: SocketAddr =
            format!("{}:{}", cand["address"].as_str().ok_or("address")?, cand["port"]).parse().map_err(|e| format!("candidate: {e}"))?;
        // The server may list several algorithms in any order (mediasoup lists five, its order
        // changing from worker to worker): take one str0m can verify.
        let fps = options["dtlsParameters"]["fingerprints"].as_array().ok_or("dtlsParameters.fingerprints")?;
        let fp = ["sha-256", "sha-1"]
            .iter()
            .find_map(|alg| fps.iter().find(|f| f["algorithm"].as_str().is_some_and(|a| a.eq_ignore_ascii_case(alg))))
            .ok_or("no sha-256 or sha-1 fingerprint")?;
        let fingerprint: Fingerprint = format!("{} {}", fp["algorithm"].as_str().unwrap_or(""), fp["value"].as_str().unwrap_or(""))
            .parse()
            .map_err(|_| "fingerprint".to_string())?;
        let mut cfg = RtcConfig::new().set_rtp_mode(true).clear_codecs().clear_extension_map();
        let exts: Vec<(u8, Extension)> = if send {
            vec![
                (9, Extension::RtpMid),
                (4, Extension::TransportSequenceNumber),
                (2, Extension::AbsoluteSendTime),
                (10, Extension::AudioLevel),
                // Simulcast by rid (only streams declared with a rid carry them).
                (11, Extension::RtpStreamId),
                (12, Extension::RepairedRtpStreamId),
            ]
        } else {
            vec![
                (1, Extension::RtpMid),
                (4, Extension::AbsoluteSendTime),
                (5, Extension::TransportSequenceNumber),
                (10, Extension::AudioLevel),
            ]
        };
        for (i, e) in exts {
            cfg = cfg.set_extension(i, e);
        }
        if bwe && send {
            cfg = cfg.enable_bwe(Some(Bitrate::kbps(300)));
        }
        let opus = FormatParams { min_p_time: Some(10), use_inband_fec: Some(true), ..Default::default() };
        // The router's payload types on receive transports (sfu::ortc::default_media_codecs).
        let (opus_pt, vp8_pt, rtx_pt) = if send { (OPUS_PT, VP8_PT, VP8_RTX_PT) } else { (100, 101, 102) };
        let (vp9_pt, vp9_rtx_pt) = if send { (VP9_PT, VP9_RTX_PT) } else { (103, 104) };
        let cc = cfg.codec_config();
        cc.add_config(Pt::from(opus_pt), None, Codec::Opus, Frequency::FORTY_EIGHT_KHZ, Some(2), opus);
        cc.add_config(Pt::from(vp8_pt), Some(Pt::from(rtx_pt)), Codec::Vp8, Frequency::NINETY_KHZ, None, FormatParams::default());
        let vp9 = FormatParams { profile_id: Some(0), ..Default::default() };
        cc.add_config(Pt::from(vp9_pt), Some(Pt::from(vp9_rtx_pt)), Codec::Vp9, Frequency::NINETY_KHZ, None, vp9);
        let mut rtc = cfg.build(now);
        let (mine, theirs) = match proto {
            Protocol::Tcp => (
                Candidate::builder().tcp().host(local).tcptype(TcpType::Active).build(),
                Candidate::builder().tcp().host(server).tcptype(TcpType::Passive).build(),
            ),
            _ => (Candidate::host(local, "udp"), Candidate::host(server, "udp")),
        };
        rtc.add_local_candidate(mine.map_err(|e| e.to_string())?);
        rtc.add_remote_candidate(theirs.map_err(|e| e.to_string())?);
        let my_fp = {
            let mut api = rtc.direct_api();
            api.set_ice_controlling(true);
            api.set_remote_ice_credentials(creds);
            api.set_remote_fingerprint(fingerprint);
            api.start_dtls(dtls_client).map_err(|e| e.to_string())?;
            if bwe && !send {
                // What a browser does: the server estimates its downlink from this feedback.
                api.enable_twcc_feedback();
            }
            api.local_dtls_fingerprint().to_string()
        };
        let (alg, val) = my_fp.split_once(' ').ok_or("own fingerprint")?;
        let role = if dtls_client { "client" } else { "server" };
        let dtls = json!({"role": role, "fingerprints": [{"algorithm": alg, "value": val}]});
        Ok((ClientTransport { id, rtc, net, local, drop_pct: 0, dropped: 0 }, dtls))
    }

    /// The Rtc, its socket (non-blocking) and local address, for callers with their own loop.
    /// None for an in-memory client.
    pub fn into_parts(self) -> Option<(Rtc, UdpSocket, SocketAddr)> {
        match self.net {
            Net::Udp(socket) => Some((self.rtc, socket, self.local)),
            Net::Memory { .. } => None,
        }
    }

    /// The client's address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// In memory: the client's network changes (Wi-Fi to mobile): it has a new address, where
    /// it gathers a new UDP host candidate, and the old one is gone.
    pub fn move_to(&mut self, local: SocketAddr) -> Result<(), String> {
        if !matches!(self.net, Net::Memory { .. }) {
            return Err("only an in-memory client can move".into());
        }
        let candidate = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
        self.rtc.add_local_candidate(candidate).ok_or("the new candidate was refused")?;
        self.local = local;
        Ok(())
    }

    /// In memory: a datagram (or TCP frame) from `src` arrives (taken at the next pump).
    pub fn deliver(&mut self, proto: Protocol, src: SocketAddr, data: Vec<u8>) {
        if let Net::Memory { inbox, .. } = &mut self.net {
            inbox.push_back((proto, src, data));
        }
    }

    /// In memory: the datagrams (or TCP frames) sent since the last call, with their
    /// destinations.
    pub fn take_outgoing(&mut self) -> Vec<(Protocol, SocketAddr, Vec<u8>)> {
        match &mut self.net {
            Net::Memory { outbox, .. } => std::mem::take(outbox),
            Net::Udp(_) => Vec::new(),
        }
    }

    /// Sends what the Rtc wants to send, feeds what arrived; returns the events.
    pub fn pump(&mut self) -> Vec<Event> {
        self.pump_at(Instant::now())
    }

    /// As [`ClientTransport::pump`], at `now` (a simulated clock for in-memory clients).
    pub fn pump_at(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let (proto, src, data): (Protocol, SocketAddr, Vec<u8>) = match &mut self.net {
                Net::Udp(socket) => match socket.recv_from(&mut buf) {
                    Ok((n, src)) => (Protocol::Udp, src, buf[..n].to_vec()),
                    Err(_) => break,
                },
                Net::Memory { inbox, .. } => match inbox.pop_front() {
                    Some(d) => d,
                    None => break,
                },
            };
            if let Ok(r) = Receive::new(proto, src, self.local, &data) {
                let _ = self.rtc.handle_input(Input::Receive(now, r));
            }
            // In RTP mode str0m keeps one received packet for the next poll_output: poll after
            // every datagram or the next one overwrites it.
            self.poll_into(&mut events);
        }
        let _ = self.rtc.handle_input(Input::Timeout(now));
        self.poll_into(&mut events);
        events
    }

    fn poll_into(&mut self, events: &mut Vec<Event>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let is_rtp = t.contents.len() > 400 && (t.contents[0] & 0xc0) == 0x80;
                    if is_rtp && self.drop_pct > 0 && fastrand::u32(0..100) < self.drop_pct {
                        self.dropped += 1;
                        continue;
                    }
                    match &mut self.net {
                        Net::Udp(socket) => {
                            let _ = socket.send_to(&t.contents, t.destination);
                        }
                        Net::Memory { outbox, .. } => outbox.push((t.proto, t.destination, t.contents.to_vec())),
                    }
                }
                Ok(Output::Event(e)) => events.push(e),
                Ok(Output::Timeout(_)) | Err(_) => break,
            }
        }
    }
}
