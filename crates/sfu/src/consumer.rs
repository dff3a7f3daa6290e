//! Consumers: one producer's stream sent to one peer, with its own SSRC and mid, the router's
//! payload types, and sequence numbers rewritten so pauses leave no gaps.
use str0m::media::Mid;
use str0m::rtp::Ssrc;

use crate::error::ConsumeError;
use crate::ids::{ConsumerId, ProducerId, TransportId};
use crate::ortc;
use crate::producer::str0m_kind;
use crate::rtp_parameters::{MediaKind, RtpCapabilities};
use crate::seq::SeqRewriter;
use crate::transport::Transport;
use crate::worker::Worker;
use crate::{ConsumerOptions, ConsumerStats, Direction};

pub(crate) struct Consumer {
    pub producer: ProducerId,
    pub transport: TransportId,
    pub kind: MediaKind,
    pub ssrc: Ssrc,
    pub mid: Mid,
    /// Router payload types of the media codecs this consumer accepts.
    pub pts: Vec<u8>,
    /// The first codec's MIME type (to spot keyframes).
    pub mime: String,
    pub paused: bool,
    /// Video waits for a keyframe after a start, a resume or a producer resume, so the
    /// receiver never gets undecodable frames first.
    pub awaiting_keyframe: bool,
    pub seq: SeqRewriter,
    pub packets: u64,
    pub bytes: u64,
}

impl Consumer {
    /// Forwarding restarts: numbering continues after the last sent packet; video waits for a
    /// keyframe.
    pub fn resync(&mut self, video: bool) {
        self.seq.pause();
        self.awaiting_keyframe = video;
    }

    pub fn stats(&self, id: &ConsumerId, producer_paused: bool) -> ConsumerStats {
        ConsumerStats {
            id: id.clone(),
            producer_id: self.producer.clone(),
            kind: self.kind,
            ssrc: *self.ssrc,
            paused: self.paused,
            producer_paused,
            packets: self.packets,
            bytes: self.bytes,
        }
    }
}

impl Worker {
    /// A consumer of `pid` on `tid` for a peer with `caps`; starts paused.
    pub(crate) fn consume(&mut self, tid: &TransportId, pid: &ProducerId, caps: &RtpCapabilities) -> Result<ConsumerOptions, ConsumeError> {
        let id = ConsumerId::new(self.index, self.next_counter());
        let p = self.producers.get(pid).ok_or(ConsumeError::UnknownProducer)?;
        let t = self.transports.get_mut(tid).ok_or(ConsumeError::UnknownTransport)?;
        if *t.router() != p.router {
            return Err(ConsumeError::OtherRouter);
        }
        let ssrc = fastrand::u32(100_000_000..=999_999_999);
        let mut params = ortc::consumer_rtp_parameters(&self.caps, p.kind, &p.router_pts, caps, ssrc, p.cname.clone())?;
        let mid = match t {
            Transport::WebRtc(t) => {
                if t.direction != Direction::Recv {
                    return Err(ConsumeError::WrongDirection(Direction::Recv));
                }
                let mid_text = t.next_consumer_mid();
                let mid = Mid::from(mid_text.as_str());
                params.mid = Some(mid_text);
                // ortc gives exactly one encoding.
                let rtx = params.encodings.first().and_then(|e| e.rtx).map(|r| Ssrc::from(r.ssrc));
                let mut api = t.rtc.direct_api();
                api.declare_media(mid, str0m_kind(p.kind));
                api.declare_stream_tx(Ssrc::from(ssrc), rtx, mid, None);
                mid
            }
            Transport::Plain(_) => {
                // Plain RTP: no retransmissions, no header extensions.
                params.codecs.retain(|c| !c.is_rtx());
                params.header_extensions.clear();
                for e in &mut params.encodings {
                    e.rtx = None;
                }
                Mid::from("plain")
            }
        };
        t.consumers_mut().push(id.clone());
        let kind = p.kind;
        let consumer = Consumer {
            producer: pid.clone(),
            transport: tid.clone(),
            kind,
            ssrc: Ssrc::from(ssrc),
            mid,
            pts: params.codecs.iter().filter(|c| !c.is_rtx()).map(|c| c.payload_type).collect(),
            mime: params.codecs.first().map(|c| c.mime_type.clone()).unwrap_or_default(),
            paused: true,
            awaiting_keyframe: kind == MediaKind::Video,
            // Below 65536 so the receiver's first sequence number is a plain u16, away from
            // both ends so an early reordered packet cannot wrap.
            seq: SeqRewriter::new(fastrand::u16(1000..30000)),
            packets: 0,
            bytes: 0,
        };
        self.consumers.insert(id.clone(), consumer);
        if let Some(p) = self.producers.get_mut(pid) {
            p.consumers.push(id.clone());
        }
        self.dirty.push(tid.clone());
        Ok(ConsumerOptions { id, producer_id: pid.clone(), kind, rtp_parameters: params })
    }

    pub(crate) fn set_consumer_paused(&mut self, id: &ConsumerId, paused: bool) -> Result<(), ConsumeError> {
        let c = self.consumers.get_mut(id).ok_or(ConsumeError::UnknownConsumer)?;
        if c.paused == paused {
            return Ok(());
        }
        c.paused = paused;
        let video = c.kind == MediaKind::Video;
        c.resync(video);
        if paused || !video {
            return Ok(());
        }
        let (producer, transport) = (c.producer.clone(), c.transport.clone());
        // A keyframe requested before the consumer's transport is up would be wasted: then
        // the request goes out on its Connected event instead.
        if self.transports.get(&transport).is_some_and(Transport::is_connected) {
            self.request_keyframe(&producer);
        }
        Ok(())
    }

    pub(crate) fn close_consumer(&mut self, id: &ConsumerId) -> bool {
        let Some(c) = self.consumers.remove(id) else { return false };
        if let Some(p) = self.producers.get_mut(&c.producer) {
            p.consumers.retain(|x| x != id);
        }
        if let Some(t) = self.transports.get_mut(&c.transport) {
            t.consumers_mut().retain(|x| x != id);
            if let Some(w) = t.webrtc_mut() {
                w.rtc.direct_api().remove_media(c.mid);
                self.dirty.push(c.transport.clone());
            }
        }
        true
    }
}
