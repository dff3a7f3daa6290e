//! Producers: a client's incoming stream on a send transport, its payload types mapped to the
//! router's, the consumers fed from it, and the keyframe requests sent back to it.
use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaKind as StrMediaKind, Mid};
use str0m::rtp::Ssrc;

use crate::error::ProduceError;
use crate::events::EngineEvent;
use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::keyframe::KeyframeThrottle;
use crate::ortc;
use crate::rtp_parameters::{MediaKind, RtpParameters};
use crate::transport::Transport;
use crate::worker::Worker;
use crate::{Direction, ProducerStats};

pub(crate) struct Producer {
    pub router: RouterId,
    pub transport: TransportId,
    pub kind: MediaKind,
    pub mid: Mid,
    pub ssrc: Ssrc,
    pub rtx_ssrc: Option<Ssrc>,
    pub cname: Option<String>,
    /// (client payload type, router payload type), media and RTX.
    pub pt_map: Vec<(u8, u8)>,
    /// The router payload types this producer sends.
    pub router_pts: Vec<u8>,
    pub consumers: Vec<ConsumerId>,
    pub paused: bool,
    pub keyframes: KeyframeThrottle,
    pub packets: u64,
    pub bytes: u64,
    pub keyframe_requests: u64,
}

impl Producer {
    pub fn router_pt(&self, client_pt: u8) -> Option<u8> {
        self.pt_map.iter().find(|(c, _)| *c == client_pt).map(|(_, r)| *r)
    }

    pub fn stats(&self, id: &ProducerId) -> ProducerStats {
        ProducerStats {
            id: id.clone(),
            kind: self.kind,
            paused: self.paused,
            consumers: self.consumers.len(),
            packets: self.packets,
            bytes: self.bytes,
            keyframe_requests: self.keyframe_requests,
        }
    }
}

pub(crate) fn str0m_kind(kind: MediaKind) -> StrMediaKind {
    match kind {
        MediaKind::Audio => StrMediaKind::Audio,
        MediaKind::Video => StrMediaKind::Video,
    }
}

impl Worker {
    pub(crate) fn produce(&mut self, tid: &TransportId, kind: MediaKind, params: RtpParameters) -> Result<ProducerId, ProduceError> {
        let mapping = ortc::map_producer_codecs(&self.caps, kind, &params)?;
        let enc = params.encodings.first().ok_or(ProduceError::NoEncoding)?;
        let ssrc = enc.ssrc.ok_or(ProduceError::NoSsrc)?;
        let rtx_ssrc = enc.rtx.map(|r| r.ssrc).filter(|r| *r != ssrc);
        let mid_text = params.mid.as_deref().ok_or(ProduceError::NoMid)?;
        if mid_text.is_empty() || mid_text.len() > 16 {
            return Err(ProduceError::BadMid);
        }
        let mid = Mid::from(mid_text);
        let id = ProducerId::new(self.index, self.next_counter());
        let t = match self.transports.get_mut(tid) {
            Some(Transport::WebRtc(t)) => t,
            Some(Transport::Plain(_)) => return Err(ProduceError::NotSendTransport),
            None => return Err(ProduceError::UnknownTransport),
        };
        if t.direction != Direction::Send {
            return Err(ProduceError::NotSendTransport);
        }
        for other in t.producers.iter().filter_map(|p| self.producers.get(p)) {
            if other.mid == mid {
                return Err(ProduceError::MidInUse(mid_text.to_string()));
            }
            let taken = [Some(other.ssrc), other.rtx_ssrc];
            if let Some(s) = [Some(ssrc), rtx_ssrc].into_iter().flatten().find(|s| taken.contains(&Some(Ssrc::from(*s)))) {
                return Err(ProduceError::SsrcInUse(s));
            }
        }
        if let Some(m) = mapping.iter().find(|m| !t.knows_pt(m.client_pt)) {
            return Err(ProduceError::UnknownPayloadType(m.client_pt));
        }
        let replay = t.thaw(&params.header_extensions)?;
        {
            let mut api = t.rtc.direct_api();
            api.declare_media(mid, str0m_kind(kind));
            api.expect_stream_rx(Ssrc::from(ssrc), rtx_ssrc.map(Ssrc::from), mid, None);
        }
        t.producers.push(id.clone());
        let router = t.router.clone();
        self.producers.insert(
            id.clone(),
            Producer {
                router,
                transport: tid.clone(),
                kind,
                mid,
                ssrc: Ssrc::from(ssrc),
                rtx_ssrc: rtx_ssrc.map(Ssrc::from),
                cname: params.rtcp.cname.clone(),
                pt_map: mapping.iter().map(|m| (m.client_pt, m.router_pt)).collect(),
                router_pts: mapping.iter().map(|m| m.router_pt).collect(),
                consumers: Vec::new(),
                paused: false,
                keyframes: KeyframeThrottle::default(),
                packets: 0,
                bytes: 0,
                keyframe_requests: 0,
            },
        );
        self.dirty.push(tid.clone());
        let now = Instant::now();
        for (src, data) in replay {
            self.on_datagram(now, src, &data);
        }
        Ok(id)
    }

    pub(crate) fn set_producer_paused(&mut self, id: &ProducerId, paused: bool) -> Result<(), ProduceError> {
        let p = self.producers.get_mut(id).ok_or(ProduceError::UnknownProducer)?;
        if p.paused == paused {
            return Ok(());
        }
        p.paused = paused;
        let video = p.kind == MediaKind::Video;
        for c in p.consumers.clone() {
            if let Some(c) = self.consumers.get_mut(&c) {
                // Resynchronise: the next forwarded packet continues the consumer's numbering
                // and (video) starts with a keyframe.
                c.resync(video);
            }
        }
        if !paused && video {
            self.request_keyframe(id);
        }
        Ok(())
    }

    /// Closes a producer and its consumers (each with a ConsumerClosed event). `cascade`: the
    /// producer closes because its transport or router does (a ProducerClosed event).
    pub(crate) fn close_producer(&mut self, id: &ProducerId, cascade: bool) -> bool {
        let Some(p) = self.producers.remove(id) else { return false };
        if cascade {
            self.emit(EngineEvent::ProducerClosed { router: p.router.clone(), transport: p.transport.clone(), producer: id.clone() });
        }
        for c in &p.consumers {
            if let Some(consumer) = self.consumers.get(c) {
                let event = EngineEvent::ConsumerClosed {
                    router: p.router.clone(),
                    transport: consumer.transport.clone(),
                    consumer: c.clone(),
                    producer: id.clone(),
                };
                self.close_consumer(c);
                self.emit(event);
            }
        }
        self.deferred_keyframes.retain(|x| x != id);
        if let Some(Transport::WebRtc(t)) = self.transports.get_mut(&p.transport) {
            t.producers.retain(|x| x != id);
            t.rtc.direct_api().remove_media(p.mid);
            self.dirty.push(p.transport.clone());
        }
        true
    }

    /// Asks a video producer for a keyframe (PLI), at most once per second; a request inside
    /// the window is sent when it ends.
    pub(crate) fn request_keyframe(&mut self, pid: &ProducerId) {
        let now = Instant::now();
        let Some(p) = self.producers.get_mut(pid) else { return };
        if p.kind != MediaKind::Video {
            return;
        }
        if p.keyframes.request(now) {
            self.send_pli(pid);
        } else if !self.deferred_keyframes.contains(pid) {
            self.deferred_keyframes.push(pid.clone());
        }
    }

    /// Sends the deferred keyframe requests that are due.
    pub(crate) fn send_deferred_keyframe_requests(&mut self, now: Instant) {
        if self.deferred_keyframes.is_empty() {
            return;
        }
        let mut due = Vec::new();
        self.deferred_keyframes.retain(|pid| match self.producers.get_mut(pid) {
            Some(p) => {
                if p.keyframes.poll(now) {
                    due.push(pid.clone());
                    false
                } else {
                    p.keyframes.due_at().is_some()
                }
            }
            None => false,
        });
        for pid in due {
            self.send_pli(&pid);
        }
    }

    /// When the next deferred keyframe request is due.
    pub(crate) fn next_deferred_keyframe(&self) -> Option<Instant> {
        self.deferred_keyframes.iter().filter_map(|p| self.producers.get(p)?.keyframes.due_at()).min()
    }

    fn send_pli(&mut self, pid: &ProducerId) {
        let Some(p) = self.producers.get_mut(pid) else { return };
        let (ssrc, tid) = (p.ssrc, p.transport.clone());
        let Some(Transport::WebRtc(t)) = self.transports.get_mut(&tid) else { return };
        if let Some(rx) = t.rtc.direct_api().stream_rx(&ssrc) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
            p.keyframe_requests += 1;
            self.totals.keyframe_requests += 1;
        }
        let _ = t.rtc.handle_input(str0m::Input::Timeout(Instant::now()));
        self.dirty.push(tid);
    }
}
