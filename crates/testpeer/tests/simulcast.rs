//! Simulcast through the engine in memory on a simulated clock: a publisher sends three VP8
//! streams (`L1T3` each), a subscriber's consumer forwards one of them with its sequence
//! numbers, picture ids and TL0PICIDX continuous, switching streams only on a keyframe.
mod common;

use std::time::Duration;

use common::{sim, transport_id, Subscriber};
use serde_json::Value;
use sfu::rtp_parameters::MediaKind;
use sfu::{ConsumerId, Direction, EngineEvent, ProducerId, RouterId};
use str0m::Event;
use testpeer::sim::Sim;
use testpeer::simulcast::{origin, Origin, SimulcastTrack};
use testpeer::{ClientTransport, Received};

struct Publisher {
    transport: ClientTransport,
    track: SimulcastTrack,
    producer: ProducerId,
    keyframe_requests: Vec<Option<String>>,
}

impl Publisher {
    fn new(sim: &mut Sim, router: &RouterId, by_rid: bool) -> Publisher {
        Self::with_track(sim, router, SimulcastTrack::new("0", 3, by_rid))
    }

    fn with_track(sim: &mut Sim, router: &RouterId, track: SimulcastTrack) -> Publisher {
        let mut transport = sim.client(router, Direction::Send, true);
        let producer = sim
            .worker
            .produce(sim.now, &transport_id(&transport.id), MediaKind::Video, track.produce_parameters())
            .expect("a simulcast producer is accepted");
        track.declare(&mut transport);
        Publisher { transport, track, producer, keyframe_requests: Vec::new() }
    }

    fn pump(&mut self, now: std::time::Instant) {
        self.track.tick_at(&mut self.transport, now);
        for e in self.transport.pump_at(now) {
            if let Event::KeyframeRequest(r) = e {
                let rid = r.rid.map(|r| r.to_string());
                self.track.keyframe_requested(rid.as_deref());
                self.keyframe_requests.push(rid);
            }
        }
    }
}

fn run(sim: &mut Sim, a: &mut Publisher, b: &mut Subscriber, dur: Duration) {
    let end = sim.now + dur;
    while sim.now < end {
        a.pump(sim.now);
        b.pump(sim.now);
        sim.step(&mut [&mut a.transport, &mut b.transport]);
    }
}

fn setup(by_rid: bool) -> (Sim, Publisher, Subscriber, ConsumerId, Value) {
    let mut sim = sim();
    let router = sim.worker.create_router();
    let mut a = Publisher::new(&mut sim, &router, by_rid);
    let mut b = Subscriber::new(&mut sim, &router);
    let options = b.consume(&mut sim, &a.producer).unwrap();
    let consumer: ConsumerId = serde_json::from_value(options["id"].clone()).unwrap();
    run(&mut sim, &mut a, &mut b, Duration::from_secs(3));
    assert!(a.transport.rtc.is_connected() && b.inbox.connected, "both connected");
    (sim, a, b, consumer, options)
}

/// What the subscriber got after packet `from`, as (received packet, its origin).
fn got(b: &Subscriber, from: usize) -> Vec<(&Received, Origin)> {
    b.received(MediaKind::Video).into_iter().skip(from).map(|p| (p, origin(&p.payload).expect("a simulcast payload"))).collect()
}

/// Sequence numbers and picture ids go up by one, TL0PICIDX never goes back.
fn assert_continuous(packets: &[(&Received, Origin)]) {
    for w in packets.windows(2) {
        let ((p, a), (q, b)) = (&w[0], &w[1]);
        assert_eq!(q.seq, p.seq + 1, "sequence numbers without a gap: {a:?} then {b:?}");
        assert_eq!(b.picture_id, (a.picture_id + 1) & 0x7fff, "picture ids without a gap: {a:?} then {b:?}");
        assert!(b.tl0.wrapping_sub(a.tl0) <= 1, "TL0PICIDX steps by at most one: {a:?} then {b:?}");
    }
}

fn layers_changed(sim: &Sim, consumer: &ConsumerId) -> Vec<(u8, u8)> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::ConsumerLayersChanged { consumer: c, spatial, temporal, .. } if c == consumer => Some((*spatial, *temporal)),
            _ => None,
        })
        .collect()
}

fn simulcast_by(by_rid: bool) {
    let (mut sim, mut a, mut b, consumer, options) = setup(by_rid);
    assert_eq!(options["rtpParameters"]["encodings"].as_array().map(Vec::len), Some(1), "one encoding, as mediasoup");
    assert_eq!(options["rtpParameters"]["encodings"][0]["scalabilityMode"], "L3T3");
    assert_eq!(options["rtpParameters"]["encodings"][0]["maxBitrate"], 900_000);
    let first = got(&b, 0);
    assert!(first.len() > 40, "media flows: {}", first.len());
    assert!(first[0].1.keyframe, "the consumer starts on a keyframe: {:?}", first[0].1);
    // It starts on the first stream heard and climbs to the highest on that one's keyframe.
    let up = first.iter().position(|(_, o)| o.layer == 2).expect("the highest stream");
    assert!(up < 10, "stream 2 was asked for a keyframe at once ({up} packets before it)");
    assert!(first[up].1.keyframe && first[up..].iter().all(|(_, o)| o.layer == 2), "then the highest stream only");
    assert!(first.iter().any(|(_, o)| o.tid == 2), "every temporal layer");
    assert_continuous(&first);
    assert_eq!(layers_changed(&sim, &consumer).last(), Some(&(2, 2)));

    // Down to stream 0: stream 2 goes on until stream 0's keyframe, then only stream 0.
    let mark = b.received(MediaKind::Video).len();
    let preferred = sim.worker.set_consumer_preferred_layers(&consumer, 0, None).unwrap();
    assert_eq!(preferred, Some((0, 2)));
    run(&mut sim, &mut a, &mut b, Duration::from_secs(2));
    let after = got(&b, mark);
    let switch = after.iter().position(|(_, o)| o.layer == 0).expect("switched to stream 0");
    assert!(after[switch].1.keyframe, "on a keyframe of stream 0: {:?}", after[switch].1);
    assert!(after[..switch].iter().all(|(_, o)| o.layer == 2) && after[switch..].iter().all(|(_, o)| o.layer == 0));
    assert!(switch < 10, "stream 0 was asked for a keyframe at once ({switch} packets of stream 2 before it)");
    let with_before: Vec<_> = got(&b, mark - 1);
    assert_continuous(&with_before);
    if by_rid {
        assert!(a.keyframe_requests.iter().any(|r| r.as_deref() == Some("r0")), "a keyframe request named r0: {:?}", a.keyframe_requests);
    } else {
        assert!(!a.keyframe_requests.is_empty(), "keyframe requests by SSRC");
    }
    assert_eq!(layers_changed(&sim, &consumer).last(), Some(&(0, 2)));

    // Temporal layer 0 only: TID 1 and 2 frames dropped, numbers still continuous.
    let mark = b.received(MediaKind::Video).len();
    sim.worker.set_consumer_preferred_layers(&consumer, 0, Some(0)).unwrap();
    run(&mut sim, &mut a, &mut b, Duration::from_secs(2));
    let after = got(&b, mark);
    let settled: Vec<_> = after.iter().skip_while(|(_, o)| o.tid != 0).cloned().collect();
    assert!(settled.len() > 10 && settled.iter().all(|(_, o)| o.tid == 0 && o.layer == 0), "TID 0 of stream 0 only");
    let sent_frames = settled.last().unwrap().1.frame - settled[0].1.frame + 1;
    assert!(settled.len() as u32 <= sent_frames / 2 + 1, "half the frames or fewer: {} of {sent_frames}", settled.len());
    assert_continuous(&got(&b, mark.saturating_sub(1)));
    assert_eq!(layers_changed(&sim, &consumer).last(), Some(&(0, 0)));

    // Back up to stream 2, all layers: waits for its keyframe, continuous again.
    let mark = b.received(MediaKind::Video).len();
    sim.worker.set_consumer_preferred_layers(&consumer, 2, None).unwrap();
    run(&mut sim, &mut a, &mut b, Duration::from_secs(2));
    let after = got(&b, mark);
    let switch = after.iter().position(|(_, o)| o.layer == 2).expect("back on stream 2");
    assert!(after[switch].1.keyframe);
    assert_continuous(&got(&b, mark.saturating_sub(1)));
    assert_eq!(layers_changed(&sim, &consumer).last(), Some(&(2, 2)));
    let stats = sim.worker.stats();
    assert_eq!((stats.producers, stats.consumers), (1, 1));
}

#[test]
fn rid_simulcast_forwards_one_stream_continuously() {
    simulcast_by(true);
}

#[test]
fn ssrc_simulcast_forwards_one_stream_continuously() {
    simulcast_by(false);
}

#[test]
fn a_consumer_of_a_single_stream_producer_has_no_layers() {
    let mut sim = sim();
    let router = sim.worker.create_router();
    let mut a = common::Publisher::new(&mut sim, &router);
    let p = a.produce(&mut sim, MediaKind::Video);
    let mut b = Subscriber::new(&mut sim, &router);
    let options = b.consume(&mut sim, &p).unwrap();
    let consumer: ConsumerId = serde_json::from_value(options["id"].clone()).unwrap();
    assert_eq!(sim.worker.set_consumer_preferred_layers(&consumer, 0, Some(0)).unwrap(), None, "mediasoup's SimpleConsumer ignores it");
    assert!(options["rtpParameters"]["encodings"][0].get("scalabilityMode").is_none());
}

/// The spatial layers the subscriber received in the last `window` packets.
fn recent_layers(b: &Subscriber, window: usize) -> Vec<u8> {
    let all = got(b, 0);
    let mut layers: Vec<u8> = all[all.len().saturating_sub(window)..].iter().map(|(_, o)| o.layer).collect();
    layers.dedup();
    layers
}

#[test]
fn a_limited_downlink_gets_a_lower_layer_and_climbs_back_when_lifted() {
    let mut sim = sim();
    let router = sim.worker.create_router();
    // About 55, 140 and 310 kbit/s on the wire (30 frames a second, one packet each).
    let track = SimulcastTrack::new("0", 3, true).with_frame_bytes(&[150, 500, 1200]);
    let mut a = Publisher::with_track(&mut sim, &router, track);
    let mut b = Subscriber::with_feedback(&mut sim, &router, true);
    let options = b.consume(&mut sim, &a.producer).unwrap();
    let consumer: ConsumerId = serde_json::from_value(options["id"].clone()).unwrap();
    let local = b.transport.local();
    let recv = common::transport_id(&b.transport.id);
    sim.limit_downlink(local, Some(220_000), Duration::from_millis(300));
    run(&mut sim, &mut a, &mut b, Duration::from_secs(20));
    let estimate = sim.worker.transport_stats(&recv).unwrap().available_outgoing_bitrate;
    let limited = recent_layers(&b, 60);
    let dropped = sim.link(local).map_or(0, |l| l.dropped);
    println!("limited to 220 kbit/s: estimate {estimate:?} bit/s, last layers {limited:?}, {dropped} datagrams dropped by the link");
    assert!(estimate.is_some_and(|e| e < 400_000), "the estimate follows the link: {estimate:?}");
    assert_eq!(limited, vec![1], "the highest layer that fits 220 kbit/s");
    assert_eq!(layers_changed(&sim, &consumer).last(), Some(&(1, 2)));
    let scores: Vec<u8> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::ConsumerScore { consumer: c, score, producer_score: 10, .. } if *c == consumer => Some(*score),
            _ => None,
        })
        .collect();
    println!("consumer scores told: {scores:?}");
    assert!(scores.iter().any(|s| *s < 10), "the link's drops lower the consumer's score: {scores:?}");
    let frames_before = got(&b, 0).len();
    run(&mut sim, &mut a, &mut b, Duration::from_secs(2));
    assert!(got(&b, 0).len() - frames_before > 40, "and keeps receiving frames");

    sim.limit_downlink(local, None, Duration::ZERO);
    let (lifted, mark) = (sim.now, got(&b, 0).len());
    let mut climbed = None;
    for _ in 0..30 {
        run(&mut sim, &mut a, &mut b, Duration::from_secs(1));
        if recent_layers(&b, 10) == vec![2] {
            climbed = Some(sim.now - lifted);
            break;
        }
    }
    let estimate = sim.worker.transport_stats(&recv).unwrap().available_outgoing_bitrate;
    println!("limit lifted: back on layer 2 after {climbed:?} (simulated), estimate {estimate:?} bit/s");
    assert!(climbed.is_some(), "climbs back to the top layer once the limit is lifted");
    // The link dropped packets while limited; none since, and the switch up left no gap.
    assert_continuous(&got(&b, mark));
}
