//! Routers: a room's media. A router owns transports (and through them producers and
//! consumers); an RTP packet of one of its producers fans out to that producer's consumers.
use str0m::rtp::{ExtensionValues, RtpPacket};

use crate::error::RouterError;
use crate::ids::{RouterId, TransportId};
use crate::keyframe::starts_keyframe;
use crate::rtp_parameters::MediaKind;
use crate::transport::Transport;
use crate::webrtc_transport::OutgoingRtp;
use crate::worker::Worker;

#[derive(Default)]
pub(crate) struct Router {
    pub transports: Vec<TransportId>,
}

impl Worker {
    pub(crate) fn create_router(&mut self) -> RouterId {
        let id = RouterId::new(self.index, self.next_counter());
        self.routers.insert(id.clone(), Router::default());
        id
    }

    /// Closes a router and everything in it.
    pub(crate) fn close_router(&mut self, id: &RouterId) -> Result<(), RouterError> {
        let router = self.routers.remove(id).ok_or(RouterError::UnknownRouter)?;
        for t in router.transports {
            self.close_transport(&t, None);
        }
        Ok(())
    }

    /// Fan-out of one producer packet (from transport `tid`) to its consumers, each with its
    /// SSRC, the router's payload type and its own sequence numbers. Timestamps keep the
    /// producer's clock (one source per consumer: nothing to splice).
    pub(crate) fn on_rtp(&mut self, tid: &TransportId, packet: RtpPacket) {
        let Some(Transport::WebRtc(t)) = self.transports.get(tid) else { return };
        let ssrc = packet.header.ssrc;
        let Some(pid) = t.producers.iter().find(|p| self.producers.get(*p).is_some_and(|p| p.ssrc == ssrc)).cloned() else {
            return;
        };
        let Some(producer) = self.producers.get_mut(&pid) else { return };
        producer.packets += 1;
        producer.bytes += packet.payload.len() as u64;
        if producer.paused {
            return;
        }
        let Some(router_pt) = producer.router_pt(*packet.header.payload_type) else { return };
        let video = producer.kind == MediaKind::Video;
        // Taken for the loop (nothing below changes the list) and put back after it.
        let consumers = std::mem::take(&mut producer.consumers);
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let seq = *packet.seq_no;
        let mut want_keyframe = false;
        for cid in &consumers {
            let Some(c) = self.consumers.get_mut(cid) else { continue };
            if c.paused || !c.pts.contains(&router_pt) {
                continue;
            }
            let Some(t) = self.transports.get_mut(&c.transport) else { continue };
            if !t.is_connected() {
                continue; // no sequence numbers are spent before SRTP is up
            }
            if c.awaiting_keyframe {
                if !starts_keyframe(&c.mime, &packet.payload) {
                    want_keyframe = true;
                    continue;
                }
                c.awaiting_keyframe = false;
            }
            if packet.payload.is_empty() {
                // Padding only (bandwidth probes): not forwarded, and no gap left for it.
                c.seq.skip(seq);
                continue;
            }
            let Some(out_seq) = c.seq.rewrite(seq) else { continue };
            let out = OutgoingRtp {
                ssrc: c.ssrc,
                pt: router_pt,
                seq: out_seq,
                timestamp: packet.header.timestamp,
                wallclock: packet.timestamp,
                marker: packet.header.marker,
                payload: &packet.payload,
                ext: &ext,
                nackable: video,
            };
            let Some(n) = t.send_rtp(&self.socket, &out) else { continue };
            c.packets += 1;
            c.bytes += out.payload.len() as u64;
            self.totals.rtp_forwarded += 1;
            match t {
                Transport::WebRtc(_) => self.dirty.push(c.transport.clone()),
                Transport::Plain(_) => {
                    self.totals.packets_out += 1;
                    self.totals.bytes_out += n as u64;
                }
            }
        }
        if let Some(p) = self.producers.get_mut(&pid) {
            p.consumers = consumers;
        }
        if want_keyframe {
            self.request_keyframe(&pid);
        }
    }
}
