//! The packet path: demultiplexing datagrams to transports, the sequence guard, polling the
//! Rtcs, keyframe requests, timeouts and liveness (the fan-out to consumers: [`super::forward`]).
use std::net::SocketAddr;
use std::time::Instant;

use str0m::ice::StunMessage;
use str0m::Event;

use super::{Worker, LIVENESS_EVERY};
use crate::ids::Key;
use crate::rtp_parameters::MediaKind;
use crate::seq_guard::{rtp_ssrc_seq, Admit};
use crate::transmit::Protocol;
use crate::transport::plain::rtcp_empty_rr;
use crate::transport::webrtc::Arrival;
use crate::CloseReason;

/// Flush rounds per flush: forwarding can make more transports dirty, but not forever.
const MAX_FLUSH_ROUNDS: usize = 16;

impl Worker {
    /// udp_mux: find the transport by STUN username on first contact, then by source address.
    /// The transport is polled at once; the consumers it forwards to are polled at the flush.
    pub(super) fn on_datagram(&mut self, now: Instant, proto: Protocol, src: SocketAddr, data: &[u8]) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += data.len() as u64;
        self.current = None;
        let Some(key) = self.stun_target(now, proto, src, data).or_else(|| self.by_addr.get(&(src, proto)).copied()) else {
            self.stats.datagrams_dropped += 1;
            return;
        };
        self.current = Some(key);
        let Some(t) = self.transports.get_mut(&key).and_then(|t| t.webrtc_mut()) else { return };
        if t.receive(now, proto, src, data) == Arrival::Buffered {
            return;
        }
        let rtp = rtp_ssrc_seq(data);
        if let Some((ssrc, seq)) = rtp {
            if !t.twcc_admit(data) {
                self.stats.rtp_guarded += 1;
                return;
            }
            match t.admit(ssrc, seq, data, &mut self.stats.rtp_guarded) {
                Admit::Pass => {}
                Admit::Held | Admit::Drop => return,
                Admit::Release(held) => {
                    for (held_seq, bytes) in held {
                        self.feed(key, now, proto, src, &bytes, Some((ssrc, held_seq)));
                    }
                }
            }
        }
        self.feed(key, now, proto, src, data, rtp);
    }

    /// Hands one datagram to its transport's str0m and polls it; tells the sequence and
    /// transport-cc guards when an RTP packet came out (str0m authenticated it).
    fn feed(&mut self, key: Key, now: Instant, proto: Protocol, src: SocketAddr, data: &[u8], rtp: Option<(u32, u16)>) {
        let Some(t) = self.transports.get_mut(&key).and_then(|t| t.webrtc_mut()) else { return };
        if let Err(e) = t.feed(now, proto, src, data) {
            self.stats.datagrams_dropped += 1;
            tracing::debug!("input from {src}: {e}");
        }
        // In RTP mode str0m holds one received packet until the next poll_output: poll before
        // the next datagram or a burst of packets overwrites itself (tests/bursts.rs).
        self.rtp_delivered = false;
        self.poll(key, now);
        if let (true, Some((ssrc, seq))) = (self.rtp_delivered, rtp) {
            if let Some(t) = self.transports.get_mut(&key).and_then(|t| t.webrtc_mut()) {
                t.accepted(ssrc, seq, data);
            }
        }
    }

    /// The transport a STUN binding request is for (by our ufrag), remembering its source
    /// address. Only a request signed with that transport's ICE password counts (the ufrag
    /// travels in clear), and a transport keeps at most `MAX_PEER_ADDRS` addresses: what anyone
    /// sends cannot grow `by_addr`, nor keep a transport alive from addresses of its own.
    fn stun_target(&mut self, now: Instant, proto: Protocol, src: SocketAddr, data: &[u8]) -> Option<Key> {
        let msg = binding_request(data)?;
        let (local, remote) = ufrags(&msg)?;
        let key = *self.by_ufrag.get(local)?;
        let t = self.transports.get_mut(&key)?.webrtc_mut()?;
        if !t.stun_authentic(&msg) {
            return None;
        }
        t.learn_remote_ufrag(&msg, remote);
        t.peer_checked(now, &msg, proto, src);
        let forgotten = t.confirm_addr((src, proto));
        if let Some(old) = self.by_addr.insert((src, proto), key).filter(|old| *old != key) {
            // The address moved to another transport (a peer's NAT reused it).
            if let Some(t) = self.transports.get_mut(&old).and_then(|t| t.webrtc_mut()) {
                t.forget_addr((src, proto));
            }
        }
        if let Some(addr) = forgotten {
            if self.by_addr.get(&addr) == Some(&key) {
                self.by_addr.remove(&addr);
            }
        }
        Some(key)
    }

    /// Marks every transport whose str0m timeout has passed for a tick and a poll. The scan runs
    /// only once the earliest deadline known has come, not on every datagram.
    pub(super) fn fire_timeouts(&mut self, now: Instant) {
        if now < self.next_due {
            return;
        }
        // Polls move the deadlines of the transports ticked now into `next_due` again.
        let mut next = now + LIVENESS_EVERY;
        for (&key, t) in self.transports.iter_mut() {
            let Some(t) = t.webrtc_mut() else { continue };
            if t.tick_if_due(now) {
                self.dirty.push(key);
            } else {
                next = next.min(t.next_timeout());
            }
        }
        self.next_due = next;
    }

    /// Polls every transport marked dirty until none is left.
    pub(super) fn flush(&mut self, now: Instant) {
        for _round in 0..MAX_FLUSH_ROUNDS {
            if self.dirty.is_empty() {
                break;
            }
            std::mem::swap(&mut self.dirty, &mut self.polling);
            self.polling.sort_unstable();
            self.polling.dedup();
            for i in 0..self.polling.len() {
                let key = self.polling[i];
                self.poll(key, now);
            }
            self.polling.clear();
        }
    }

    fn poll(&mut self, key: Key, now: Instant) {
        self.current = Some(key);
        let Worker { transports, out, next_due, dead, rtc_events, .. } = self;
        let Some(t) = transports.get_mut(&key).and_then(|t| t.webrtc_mut()) else { return };
        let polled = t.poll(now, out, rtc_events);
        *next_due = (*next_due).min(polled.next_timeout);
        if !polled.alive {
            dead.push((key, CloseReason::PeerClosed));
        }
        let moved = t.take_path_moved();
        let mut events = std::mem::take(rtc_events);
        for e in events.drain(..) {
            self.on_rtc_event(key, e, now);
        }
        self.rtc_events = events;
        if moved {
            self.path_moved(key, now);
        }
    }

    /// The peer's media now goes to another address (it restarted ICE, its network changed):
    /// video it receives and video it sends lost packets on the way, so every video producer it
    /// consumes is asked for a keyframe now, and its own video producers too (their other
    /// subscribers may ask already: those requests are throttled). mediasoup does the same when
    /// a transport connects again (`Transport::Connected` -> `Consumer::TransportConnected`).
    fn path_moved(&mut self, tkey: Key, now: Instant) {
        let Some(t) = self.transports.get(&tkey) else { return };
        tracing::debug!(transport = %t.id(), "media path moved; asking for keyframes");
        let consumed = self.consumed_video(tkey);
        let own: Vec<Key> =
            t.producers().iter().copied().filter(|p| self.producers.get(p).is_some_and(|p| p.kind() == MediaKind::Video)).collect();
        for c in consumed {
            self.request_keyframe_for(c, true, now);
        }
        for p in own {
            self.request_keyframe_key(p, false, now);
        }
    }

    /// The video consumers (not paused) on transport `tkey`.
    fn consumed_video(&self, tkey: Key) -> Vec<Key> {
        let Some(t) = self.transports.get(&tkey) else { return Vec::new() };
        t.consumers()
            .iter()
            .copied()
            .filter(|c| self.consumers.get(c).is_some_and(|c| !c.is_paused() && c.kind() == MediaKind::Video))
            .collect()
    }

    fn on_rtc_event(&mut self, tkey: Key, event: Event, now: Instant) {
        match event {
            Event::RtpPacket(p) => {
                self.rtp_delivered = true;
                self.forward(tkey, p, now)
            }
            Event::KeyframeRequest(r) => {
                let consumer = self
                    .transports
                    .get(&tkey)
                    .and_then(|t| t.consumers().iter().copied().find(|c| self.consumers.get(c).is_some_and(|c| c.mid() == r.mid)));
                if let Some(c) = consumer {
                    tracing::debug!(consumer = ?self.consumers.get(&c).map(|c| c.id()), kind = ?r.kind, "keyframe request from a subscriber");
                    self.request_keyframe_for(c, false, now);
                }
            }
            Event::Connected => {
                if let Some(t) = self.transports.get_mut(&tkey).and_then(|t| t.webrtc_mut()) {
                    t.set_dtls_connected();
                }
                let Some(t) = self.transports.get(&tkey) else { return };
                tracing::debug!(transport = %t.id(), "DTLS connected");
                for c in self.consumed_video(tkey) {
                    self.request_keyframe_for(c, true, now);
                }
            }
            Event::IceConnectionStateChange(state) => {
                if let Some(t) = self.transports.get_mut(&tkey) {
                    tracing::debug!(transport = %t.id(), ?state, "ICE state");
                    if let Some(t) = t.webrtc_mut() {
                        t.set_ice_state(state);
                    }
                }
            }
            Event::PeerStats(s) => {
                if let Some(t) = self.transports.get_mut(&tkey).and_then(|t| t.webrtc_mut()) {
                    t.peer_stats(s);
                }
                self.update_scores(tkey);
            }
            Event::MediaIngressStats(s) => self.with_quality(tkey, |q| q.ingress(s)),
            Event::MediaEgressStats(s) => self.with_quality(tkey, |q| q.egress(s)),
            Event::EgressBitrateEstimate(kind) => {
                let fell = self.transports.get_mut(&tkey).and_then(|t| t.webrtc_mut()).is_some_and(|t| t.estimate_changed(&kind, now));
                if fell {
                    self.allocate_transport(tkey, now);
                }
            }
            _ => {}
        }
    }

    /// Asks every stream of a producer for a keyframe (see [`Self::request_keyframe_layer`]).
    pub(super) fn request_keyframe_key(&mut self, key: Key, force: bool, now: Instant) {
        let streams = self.producers.get(&key).map_or(0, |p| p.stream_count());
        for layer in 0..streams {
            self.request_keyframe_layer(key, layer, force, now);
        }
    }

    /// Asks for a keyframe of the stream a consumer forwards (or waits for): its producer's
    /// stream 0 without simulcast.
    pub(super) fn request_keyframe_for(&mut self, consumer: Key, force: bool, now: Instant) {
        let Some(c) = self.consumers.get(&consumer) else { return };
        let pkey = c.producer();
        let layer = match (c.layers(), self.producers.get(&pkey)) {
            (Some(l), Some(p)) => l.keyframe_stream(|s| p.stream_active(usize::from(s), now)),
            _ => 0,
        };
        self.request_keyframe_layer(pkey, usize::from(layer), force, now);
    }

    /// Sends stream `layer` of a producer a PLI unless throttled; a throttled one is deferred
    /// to the throttle's end (see [`crate::producer::KEYFRAME_THROTTLE`]).
    pub(super) fn request_keyframe_layer(&mut self, key: Key, layer: usize, force: bool, now: Instant) {
        let Some(p) = self.producers.get_mut(&key) else { return };
        let tkey = p.transport();
        let Some(ssrc) = p.take_keyframe_request(layer, now, force) else {
            if let Some(due) = p.deferred_keyframe_due() {
                self.next_keyframe_due = Some(self.next_keyframe_due.map_or(due, |d| d.min(due)));
            }
            return;
        };
        tracing::debug!(ssrc, layer, force, "keyframe request to a publisher");
        self.send_pli(tkey, ssrc);
    }

    fn send_pli(&mut self, tkey: Key, ssrc: u32) {
        if let Some(t) = self.transports.get_mut(&tkey).and_then(|t| t.webrtc_mut()) {
            if t.request_keyframe(ssrc) {
                self.stats.keyframe_requests += 1;
            }
            self.dirty.push(tkey);
        }
    }

    /// Sends the deferred keyframe requests whose throttle has ended (those a keyframe answered
    /// meanwhile were dropped when it came).
    pub(super) fn send_deferred_keyframe_requests(&mut self, now: Instant) {
        if self.next_keyframe_due.is_none_or(|due| now < due) {
            return;
        }
        let mut due: Vec<(Key, u32)> = Vec::new();
        let mut next: Option<Instant> = None;
        for p in self.producers.values_mut() {
            let tkey = p.transport();
            due.extend(p.take_deferred_keyframe_requests(now).into_iter().map(|ssrc| (tkey, ssrc)));
            if let Some(d) = p.deferred_keyframe_due() {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        self.next_keyframe_due = next;
        for (tkey, ssrc) in due {
            tracing::debug!(ssrc, "deferred keyframe request to a publisher");
            self.current = Some(tkey);
            self.send_pli(tkey, ssrc);
        }
    }

    /// Marks for closing the transports that heard from their peer once and then nothing for
    /// the idle timeout; keeps plain transports' recorders hearing from us.
    pub(super) fn find_silent(&mut self, now: Instant) {
        if now < self.next_liveness {
            return;
        }
        self.next_liveness = now + LIVENESS_EVERY;
        self.keep_plain_alive();
        let idle = self.config.idle_timeout;
        for (&key, t) in &self.transports {
            if t.webrtc().is_some_and(|t| t.silent(now, idle)) {
                self.dead.push((key, CloseReason::Silent));
            }
        }
    }

    /// An empty RTCP receiver report to each plain transport's RTCP port, every liveness tick: a
    /// recorder (FFmpeg) then hears from us while its producer is paused, and silence means the
    /// server is gone, which ends its file after its read timeout.
    fn keep_plain_alive(&mut self) {
        for t in self.transports.values() {
            let Some(plain) = t.plain() else { continue };
            let Some(ssrc) = t.consumers().iter().find_map(|c| self.consumers.get(c)).map(|c| c.ssrc()) else { continue };
            self.out.push(plain.rtcp_addr(), rtcp_empty_rr(ssrc));
        }
    }
}

/// A STUN binding request; None for anything else (other STUN messages, RTP, RTCP, DTLS,
/// garbage); never panics.
fn binding_request(data: &[u8]) -> Option<StunMessage<'_>> {
    if data.len() < 20 || data[0] >= 2 {
        return None;
    }
    StunMessage::parse(data).ok().filter(|m| m.is_binding_request())
}

/// The ufrags (ours, the peer's) of a binding request: its USERNAME `local:remote`.
fn ufrags<'a>(msg: &StunMessage<'a>) -> Option<(&'a str, &'a str)> {
    // As str0m's `split_username`, which borrows from the message: an empty remote part is none.
    msg.username()?.split_once(':').filter(|(_, remote)| !remote.is_empty())
}

/// The ufrags (ours, the peer's) of a STUN binding request, as the demux reads them.
#[cfg(feature = "fuzzing")]
pub(crate) fn binding_request_ufrags(data: &[u8]) -> Option<(&str, &str)> {
    ufrags(&binding_request(data)?)
}
