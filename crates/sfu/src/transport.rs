//! The transports of a worker, behind one enum so a new kind slots in without touching the
//! worker loop: what every transport has (router, producers, consumers, a way to send a
//! forwarded packet) is answered here.
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use crate::error::TransportError;
use crate::events::{EngineEvent, TransportCloseReason};
use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::plain_transport::PlainTransport;
use crate::rtp_parameters::{DtlsParameters, RtpCapabilities};
use crate::webrtc_transport::{OutgoingRtp, WebRtcTransport};
use crate::worker::Worker;
use crate::{Direction, TransportStats, WebRtcTransportOptions};

pub(crate) enum Transport {
    WebRtc(Box<WebRtcTransport>),
    Plain(PlainTransport),
}

impl Transport {
    pub fn router(&self) -> &RouterId {
        match self {
            Transport::WebRtc(t) => &t.router,
            Transport::Plain(t) => &t.router,
        }
    }

    pub fn producers(&self) -> &[ProducerId] {
        match self {
            Transport::WebRtc(t) => &t.producers,
            Transport::Plain(_) => &[],
        }
    }

    pub fn consumers(&self) -> &[ConsumerId] {
        match self {
            Transport::WebRtc(t) => &t.consumers,
            Transport::Plain(t) => &t.consumers,
        }
    }

    pub fn consumers_mut(&mut self) -> &mut Vec<ConsumerId> {
        match self {
            Transport::WebRtc(t) => &mut t.consumers,
            Transport::Plain(t) => &mut t.consumers,
        }
    }

    /// Whether forwarded media can leave now (SRTP keys exist).
    pub fn is_connected(&self) -> bool {
        match self {
            Transport::WebRtc(t) => t.is_connected(),
            Transport::Plain(_) => true,
        }
    }

    pub fn webrtc_mut(&mut self) -> Option<&mut WebRtcTransport> {
        match self {
            Transport::WebRtc(t) => Some(t),
            Transport::Plain(_) => None,
        }
    }

    pub fn webrtc(&self) -> Option<&WebRtcTransport> {
        match self {
            Transport::WebRtc(t) => Some(t),
            Transport::Plain(_) => None,
        }
    }

    /// Hands one forwarded packet to the transport. WebRTC queues it in str0m (the caller
    /// polls the transport afterwards); plain sends it at once. Returns the payload bytes.
    pub fn send_rtp(&mut self, socket: &UdpSocket, p: &OutgoingRtp<'_>) -> Option<usize> {
        match self {
            Transport::WebRtc(t) => t.write_rtp(p).then_some(p.payload.len()),
            Transport::Plain(t) => t.send_rtp(socket, p),
        }
    }

    pub fn stats(&self, id: &TransportId) -> TransportStats {
        match self {
            Transport::WebRtc(t) => TransportStats {
                id: id.clone(),
                kind: "webrtc",
                direction: Some(t.direction),
                connected: t.is_connected(),
                producers: t.producers.len(),
                consumers: t.consumers.len(),
                packets_in: t.packets_in,
                bytes_in: t.bytes_in,
                packets_out: t.packets_out,
                bytes_out: t.bytes_out,
            },
            Transport::Plain(t) => TransportStats {
                id: id.clone(),
                kind: "plain",
                direction: Some(Direction::Recv),
                connected: true,
                producers: 0,
                consumers: t.consumers.len(),
                packets_in: 0,
                bytes_in: 0,
                packets_out: t.packets_out,
                bytes_out: t.bytes_out,
            },
        }
    }
}

impl Worker {
    pub(crate) fn create_webrtc_transport(
        &mut self,
        router: RouterId,
        direction: Direction,
        send_caps: Option<RtpCapabilities>,
    ) -> Result<WebRtcTransportOptions, TransportError> {
        if !self.routers.contains_key(&router) {
            return Err(TransportError::UnknownRouter);
        }
        let id = TransportId::new(self.index, self.next_counter());
        let mut t = WebRtcTransport::new(id.clone(), router.clone(), direction, &self.caps, send_caps, self.addr)?;
        let options = t.options();
        self.mux.add(t.ufrag(), id.clone());
        self.transports.insert(id.clone(), Transport::WebRtc(Box::new(t)));
        if let Some(r) = self.routers.get_mut(&router) {
            r.transports.push(id.clone());
        }
        self.dirty.push(id);
        Ok(options)
    }

    pub(crate) fn create_plain_transport(&mut self, router: RouterId, remote: SocketAddr) -> Result<TransportId, TransportError> {
        let r = self.routers.get_mut(&router).ok_or(TransportError::UnknownRouter)?;
        self.counter += 1;
        let id = TransportId::new(self.index, self.counter);
        r.transports.push(id.clone());
        self.transports.insert(id.clone(), Transport::Plain(PlainTransport::new(router, remote)));
        Ok(id)
    }

    pub(crate) fn connect_transport(&mut self, id: &TransportId, dtls: &DtlsParameters) -> Result<(), TransportError> {
        let t = self.transports.get_mut(id).ok_or(TransportError::UnknownTransport)?;
        t.webrtc_mut().ok_or(TransportError::NotWebRtc)?.connect(dtls)?;
        self.dirty.push(id.clone());
        Ok(())
    }

    /// Closes a transport with its producers (each closing its consumers) and consumers.
    /// `reason` is set when the engine closes it on its own (then the server hears of it).
    pub(crate) fn close_transport(&mut self, id: &TransportId, reason: Option<TransportCloseReason>) -> bool {
        let Some(t) = self.transports.remove(id) else { return false };
        let router = t.router().clone();
        if let Some(reason) = reason {
            self.emit(EngineEvent::TransportClosed { router: router.clone(), transport: id.clone(), reason });
        }
        for p in t.producers() {
            self.close_producer(p, true);
        }
        for c in t.consumers() {
            self.close_consumer(c);
        }
        if let Transport::WebRtc(w) = &t {
            self.mux.remove(w.ufrag(), id);
        }
        if let Some(r) = self.routers.get_mut(&router) {
            r.transports.retain(|x| x != id);
        }
        true
    }

    /// Closes transports whose ICE consent or DTLS has failed for good.
    pub(crate) fn reap_dead_transports(&mut self) {
        let dead: Vec<TransportId> = self
            .transports
            .iter()
            .filter(|(_, t)| t.webrtc().is_some_and(|w| !w.rtc.is_alive()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            tracing::info!(transport = %id, "transport disconnected; closing it");
            self.close_transport(&id, Some(TransportCloseReason::Disconnected));
        }
    }

    /// Feeds str0m's timers of every WebRTC transport that is due.
    pub(crate) fn handle_transport_timeouts(&mut self, now: Instant) {
        for (id, t) in self.transports.iter_mut() {
            let Some(w) = t.webrtc_mut() else { continue };
            if w.next_timeout <= now {
                if let Err(e) = w.rtc.handle_input(str0m::Input::Timeout(now)) {
                    tracing::debug!(transport = %id, "timeout: {e}");
                }
                self.dirty.push(id.clone());
            }
        }
    }
}
