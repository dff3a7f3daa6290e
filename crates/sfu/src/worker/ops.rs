//! The worker's operations (mediasoup's requests): create and close routers and transports,
//! produce, consume, pause and resume. Each resolves its public ids, checks mediasoup's rules
//! and returns its own error type.
use std::net::SocketAddr;
use std::time::Instant;

use str0m::media::Mid;

use super::Worker;
use crate::codec::VideoCodec;
use crate::consumer::Consumer;
use crate::error::{
    ConnectError, ConsumeError, ConsumerError, CreateTransportError, ProduceError, ProducerError, RouterError, TransportError,
};
use crate::ids::{ConsumerId, Key, ProducerId, RouterId, TransportId};
use crate::ortc;
use crate::producer::{check_unique, Producer};
use crate::router::Router;
use crate::rtp_parameters::{DtlsParameters, IceParameters, MediaKind, RtpCapabilities, RtpParameters};
use crate::transport::webrtc::Local;
use crate::transport::{Kind, PlainTransport, Transport, WebRtcTransport};
use crate::{ConsumerOptions, Direction, WebRtcTransportOptions};

/// Most packets a video consumer keeps to answer NACKs (its age limit is the engine's
/// `nack_history`). str0m's default (2,000 packets, 3 s) costs ~400 KiB per 1 Mbit/s consumer.
const RTX_CACHE_PACKETS: usize = 500;
/// Share of a consumer's bytes over the last second that retransmissions may take; above it
/// str0m drops the NACKed packets queued. mediasoup has no such cap (it only skips a packet
/// resent within the last round trip). str0m's default, 0.15, is too low for a low-bitrate
/// stream under loss: at 5% loss three lost packets of a keyframe on a 150 kbit/s stream pass it,
/// the repairs asked for within that second were dropped, and the subscriber, left with a hole
/// once the packets left the cache ([`crate::EngineConfig::nack_history`]), stalled until its
/// own keyframe request (about 3 s in Chromium). Half still bounds what a client that NACKs
/// everything can make the engine send.
const RTX_RATIO_CAP: f32 = 0.5;

impl Worker {
    pub fn create_router(&mut self) -> RouterId {
        let key = self.next_key();
        let id = RouterId::new(self.config.index, key);
        self.routers.insert(key, Router::new(id.clone()));
        id
    }

    /// Closes a router and everything in it.
    pub fn close_router(&mut self, id: &RouterId) -> Result<(), RouterError> {
        let router = self.router_key(id).and_then(|k| self.routers.remove(&k)).ok_or(RouterError::UnknownRouter)?;
        for t in router.into_transports() {
            self.close_transport_key(t);
        }
        Ok(())
    }

    fn local(&self) -> Local {
        Local { addr: self.config.addr, tcp: self.config.tcp, downlink_bwe: self.config.downlink_bwe }
    }

    /// A WebRTC transport (`caps`: see [`crate::Engine::create_webrtc_transport`]).
    pub fn create_webrtc_transport(
        &mut self,
        now: Instant,
        router: &RouterId,
        direction: Direction,
        caps: Option<RtpCapabilities>,
    ) -> Result<WebRtcTransportOptions, CreateTransportError> {
        self.advance(now);
        let router = self.router_key(router).ok_or(CreateTransportError::UnknownRouter)?;
        let cert = self.cert.get(now)?;
        let mut t = WebRtcTransport::new(direction, &self.config.caps, caps, self.local(), cert, now)?;
        let key = self.next_key();
        let id = TransportId::new(self.config.index, key);
        let options = t.options(id.clone());
        self.by_ufrag.insert(t.ufrag().to_string(), key);
        self.next_due = self.next_due.min(t.next_timeout());
        self.add_transport(router, key, Transport::new(id, router, Kind::WebRtc(Box::new(t))));
        Ok(options)
    }

    /// A plain RTP transport that sends to `remote` (a local recorder such as FFmpeg).
    pub fn create_plain_transport(&mut self, router: &RouterId, remote: SocketAddr) -> Result<TransportId, CreateTransportError> {
        let router = self.router_key(router).ok_or(CreateTransportError::UnknownRouter)?;
        let key = self.next_key();
        let id = TransportId::new(self.config.index, key);
        self.add_transport(router, key, Transport::new(id.clone(), router, Kind::Plain(PlainTransport::new(remote))));
        Ok(id)
    }

    fn add_transport(&mut self, router: Key, key: Key, transport: Transport) {
        self.transports.insert(key, transport);
        if let Some(r) = self.routers.get_mut(&router) {
            r.add_transport(key);
        }
    }

    /// connectTransport: the client's DTLS fingerprint and role.
    pub fn connect_transport(&mut self, id: &TransportId, dtls: &DtlsParameters) -> Result<(), ConnectError> {
        let key = self.transport_key(id).ok_or(ConnectError::UnknownTransport)?;
        let t = self.transports.get_mut(&key).and_then(Transport::webrtc_mut).ok_or(ConnectError::UnknownTransport)?;
        t.connect(dtls)?;
        self.dirty.push(key);
        Ok(())
    }

    /// restartIce: new ICE ufrag and password for a WebRTC transport (mediasoup's
    /// `WebRtcTransport.restartIce()`); the old ufrag stops being answered.
    pub fn restart_ice(&mut self, id: &TransportId) -> Result<IceParameters, TransportError> {
        let key = self.transport_key(id).ok_or(TransportError::UnknownTransport)?;
        let t = self.transports.get_mut(&key).and_then(Transport::webrtc_mut).ok_or(TransportError::UnknownTransport)?;
        let old = t.ufrag().to_string();
        let params = t.restart_ice();
        self.by_ufrag.remove(&old);
        self.by_ufrag.insert(params.username_fragment.clone(), key);
        self.dirty.push(key);
        Ok(params)
    }

    /// Closes a transport and everything on it (a plain one says RTCP BYE first).
    pub fn close_transport(&mut self, id: &TransportId) -> Result<(), TransportError> {
        let key = self.transport_key(id).ok_or(TransportError::UnknownTransport)?;
        self.close_transport_key(key);
        Ok(())
    }

    /// A producer of `kind` on a send transport, from mediasoup-client's `rtpParameters`.
    pub fn produce(&mut self, now: Instant, tid: &TransportId, kind: MediaKind, params: RtpParameters) -> Result<ProducerId, ProduceError> {
        self.advance(now);
        ortc::validate_rtp_parameters(kind, &params)?;
        let plan = ortc::producer_plan(&self.config.caps, kind, &params)?;
        let tkey = self.transport_key(tid).ok_or(ProduceError::UnknownTransport)?;
        let transport = self.transports.get(&tkey).ok_or(ProduceError::UnknownTransport)?;
        let t = transport.webrtc().ok_or(ProduceError::UnknownTransport)?;
        if t.direction() != Direction::Send {
            return Err(ProduceError::WrongDirection(Direction::Send));
        }
        check_unique(transport.producers().iter().filter_map(|p| self.producers.get(p)), &plan)?;
        if let Some(m) = plan.mapping.iter().find(|m| !t.knows_pt(m.client_pt)) {
            return Err(ProduceError::UnknownPayloadType(m.client_pt));
        }
        let key = self.next_key();
        let id = ProducerId::new(self.config.index, key);
        let transport = self.transports.get_mut(&tkey).ok_or(ProduceError::UnknownTransport)?;
        let router = transport.router();
        let t = transport.webrtc_mut().ok_or(ProduceError::UnknownTransport)?;
        let replay = t.thaw(now, &params.header_extensions).map_err(ProduceError::Setup)?;
        // mediasoup (Transport.produce): every producer of a transport carries the first cname
        // given on it, or a random one.
        let cname = t.cname_for_producers(params.rtcp.cname.as_ref());
        t.expect_incoming(&plan.mid, kind, &plan.encodings);
        transport.add_producer(key);
        self.next_due = now;
        self.producers.insert(key, Producer::new(id.clone(), tkey, router, kind, cname, plan, now));
        for (proto, src, data) in replay {
            self.on_datagram(now, proto, src, &data);
        }
        Ok(id)
    }

    /// A consumer of `producer` on `transport` for a device with `caps`; starts paused.
    pub fn consume(&mut self, tid: &TransportId, pid: &ProducerId, caps: &RtpCapabilities) -> Result<ConsumerOptions, ConsumeError> {
        let pkey = self.producer_key(pid).ok_or(ConsumeError::UnknownProducer)?;
        let tkey = self.transport_key(tid).ok_or(ConsumeError::UnknownTransport)?;
        let key = self.next_key();
        let id = ConsumerId::new(self.config.index, key);
        let p = self.producers.get(&pkey).ok_or(ConsumeError::UnknownProducer)?;
        let transport = self.transports.get_mut(&tkey).ok_or(ConsumeError::UnknownTransport)?;
        let (plain, kind) = (transport.plain().is_some(), p.kind());
        if transport.webrtc().is_some_and(|t| t.direction() != Direction::Recv) {
            return Err(ConsumeError::WrongDirection(Direction::Recv));
        }
        if transport.router() != p.router() {
            return Err(ConsumeError::OtherRouter);
        }
        let ssrc = fastrand::u32(100_000_000..=999_999_999);
        let mut params = ortc::consumer_rtp_parameters(p.plan(), kind, caps, ssrc, Some(p.cname().to_string()))?;
        let mut mid = Mid::from("plain");
        if let Some(t) = transport.webrtc_mut() {
            let text = t.allocate_mid();
            mid = Mid::from(text.as_str());
            params.mid = Some(text);
            let rtx = params.encodings[0].rtx.map(|r| r.ssrc); // one encoding, built above
                                                               // Audio is written not nackable (a late Opus frame is useless): str0m caches none of it.
            let cache = (kind == MediaKind::Video).then_some((RTX_CACHE_PACKETS, self.config.nack_history, RTX_RATIO_CAP));
            t.declare_outgoing(mid, kind, ssrc, rtx, cache);
        } else {
            // Plain RTP: no retransmissions, no header extensions.
            params.codecs.retain(|c| !c.is_rtx());
            params.header_extensions.clear();
            params.encodings[0].rtx = None; // one encoding, built above
        }
        let pts = params.codecs.iter().filter(|c| !c.is_rtx()).map(|c| c.payload_type).collect();
        let mime = params.codecs.first().map(|c| c.mime_type.clone()).unwrap_or_default();
        transport.add_consumer(key);
        let mut consumer = Consumer::new(id.clone(), pkey, tkey, kind, ssrc, mid, pts, mime, plain);
        if p.plan().is_simulcast() {
            // At most MAX_ENCODINGS streams (validated).
            consumer = consumer.with_layers(p.stream_count() as u8, p.plan().temporal_layers(), p.codec());
        } else if let (VideoCodec::Vp9, Some((spatial, temporal, ksvc))) = (p.codec(), p.plan().svc_layers()) {
            consumer = consumer.with_svc(spatial, temporal, ksvc);
        }
        self.consumers.insert(key, consumer);
        if let Some(p) = self.producers.get_mut(&pkey) {
            p.add_consumer(key);
        }
        Ok(ConsumerOptions { id, producer_id: pid.clone(), kind, rtp_parameters: params })
    }

    /// Pauses or resumes a consumer. A resumed video consumer asks its producer for a keyframe
    /// once its transport is up (one sent before would be wasted).
    pub fn set_consumer_paused(&mut self, now: Instant, id: &ConsumerId, paused: bool) -> Result<(), ConsumerError> {
        self.advance(now);
        let key = self.consumer_key(id).ok_or(ConsumerError::UnknownConsumer)?;
        let c = self.consumers.get_mut(&key).ok_or(ConsumerError::UnknownConsumer)?;
        if !c.set_paused(paused) || paused {
            return Ok(());
        }
        let (transport, video) = (c.transport(), c.kind() == MediaKind::Video);
        if video && self.transports.get(&transport).is_some_and(Transport::is_connected) {
            self.request_keyframe_for(key, true, now);
        }
        Ok(())
    }

    /// mediasoup's `consumer.setPreferredLayers`: the highest spatial layer (simulcast stream)
    /// and temporal layer (None: the highest) the consumer should forward, clamped to what its
    /// producer has; the preferred layers now, or None for a consumer without layers (its
    /// producer has one stream: mediasoup's SimpleConsumer ignores the call too).
    pub fn set_consumer_preferred_layers(
        &mut self,
        id: &ConsumerId,
        spatial: u8,
        temporal: Option<u8>,
    ) -> Result<Option<(u8, u8)>, ConsumerError> {
        let key = self.consumer_key(id).ok_or(ConsumerError::UnknownConsumer)?;
        let c = self.consumers.get_mut(&key).ok_or(ConsumerError::UnknownConsumer)?;
        Ok(c.layers_mut().map(|l| {
            l.set_preferred(spatial, temporal);
            l.preferred()
        }))
    }

    /// mediasoup's `consumer.setPriority`: the consumer's weight (1..=255; 0 is taken as 1) when
    /// its transport's downlink is shared out ([`crate::allocator`]); the priority now.
    pub fn set_consumer_priority(&mut self, id: &ConsumerId, priority: u8) -> Result<u8, ConsumerError> {
        let key = self.consumer_key(id).ok_or(ConsumerError::UnknownConsumer)?;
        let c = self.consumers.get_mut(&key).ok_or(ConsumerError::UnknownConsumer)?;
        c.set_priority(priority);
        Ok(c.priority())
    }

    /// mediasoup's `consumer.requestKeyFrame`: a keyframe of the stream the consumer forwards
    /// (throttled to one per second and stream); nothing for audio.
    pub fn request_consumer_keyframe(&mut self, now: Instant, id: &ConsumerId) -> Result<(), ConsumerError> {
        self.advance(now);
        let key = self.consumer_key(id).ok_or(ConsumerError::UnknownConsumer)?;
        self.request_keyframe_for(key, false, now);
        Ok(())
    }

    /// Pauses or resumes a producer; a resumed video producer is asked for a keyframe.
    pub fn set_producer_paused(&mut self, now: Instant, id: &ProducerId, paused: bool) -> Result<(), ProducerError> {
        self.advance(now);
        let key = self.producer_key(id).ok_or(ProducerError::UnknownProducer)?;
        let p = self.producers.get_mut(&key).ok_or(ProducerError::UnknownProducer)?;
        p.set_paused(paused);
        for c in p.consumers() {
            if let Some(c) = self.consumers.get_mut(c) {
                c.producer_paused();
            }
        }
        if !paused {
            self.request_keyframe_key(key, true, now);
        }
        Ok(())
    }

    pub fn close_producer(&mut self, id: &ProducerId) -> Result<(), ProducerError> {
        let key = self.producer_key(id).ok_or(ProducerError::UnknownProducer)?;
        self.close_producer_key(key);
        Ok(())
    }

    /// Asks a video producer for a keyframe now (throttled to one per second).
    pub fn request_keyframe(&mut self, now: Instant, id: &ProducerId) -> Result<(), ProducerError> {
        self.advance(now);
        let key = self.producer_key(id).ok_or(ProducerError::UnknownProducer)?;
        self.request_keyframe_key(key, false, now);
        Ok(())
    }

    pub(super) fn close_consumer_key(&mut self, key: Key) {
        let Some(c) = self.consumers.remove(&key) else { return };
        if let Some(p) = self.producers.get_mut(&c.producer()) {
            p.remove_consumer(key);
        }
        if let Some(t) = self.transports.get_mut(&c.transport()) {
            t.remove(key);
            if let Some(w) = t.webrtc_mut() {
                w.quality_mut().forget(&c.mid());
            }
        }
    }

    pub(super) fn close_producer_key(&mut self, key: Key) {
        let Some(p) = self.producers.remove(&key) else { return };
        for &c in p.consumers() {
            self.close_consumer_key(c);
        }
        if let Some(t) = self.transports.get_mut(&p.transport()) {
            t.remove(key);
            if let Some(w) = t.webrtc_mut() {
                w.quality_mut().forget(&Mid::from(p.plan().mid.as_str()));
            }
        }
    }

    /// Closes a transport and everything on it; a plain transport's recorder hears RTCP BYE.
    pub(super) fn close_transport_key(&mut self, key: Key) {
        let Some(t) = self.transports.remove(&key) else { return };
        if let Some(plain) = t.plain() {
            let ssrcs: Vec<u32> = t.consumers().iter().filter_map(|c| self.consumers.get(c)).map(Consumer::ssrc).collect();
            if !ssrcs.is_empty() {
                self.out.push(plain.rtcp_addr(), crate::transport::plain::rtcp_bye(&ssrcs));
            }
        }
        for &p in t.producers() {
            self.close_producer_key(p);
        }
        for &c in t.consumers() {
            self.close_consumer_key(c);
        }
        if let Some(w) = t.webrtc() {
            self.by_ufrag.remove(w.ufrag());
            self.by_addr.retain(|_, k| *k != key);
        }
        if let Some(r) = self.routers.get_mut(&t.router()) {
            r.remove_transport(key);
        }
    }
}
