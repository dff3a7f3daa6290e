//! VP9 SVC through the engine in memory on a simulated clock: a publisher sends one `L3T3`
//! stream (three spatial layers of three temporal layers), a subscriber's SVC consumer forwards
//! the layers it prefers, with sequence numbers continuous over what it drops and the marker bit
//! on the last packet of the highest spatial layer it forwards.
mod common;

use std::time::Duration;

use common::{sim, transport_id, Subscriber};
use sfu::rtp_parameters::MediaKind;
use sfu::{ConsumerId, Direction, EngineEvent};
use str0m::Event;
use testpeer::sim::Sim;
use testpeer::svc::{svc_origin, SvcOrigin, SvcTrack};
use testpeer::{ClientTransport, Received};

struct Publisher {
    transport: ClientTransport,
    track: SvcTrack,
    keyframe_requests: usize,
}

fn run(sim: &mut Sim, a: &mut Publisher, b: &mut Subscriber, dur: Duration) {
    let end = sim.now + dur;
    while sim.now < end {
        a.track.tick_at(&mut a.transport, sim.now);
        for e in a.transport.pump_at(sim.now) {
            if let Event::KeyframeRequest(_) = e {
                a.track.force_keyframe = true;
                a.keyframe_requests += 1;
            }
        }
        b.pump(sim.now);
        sim.step(&mut [&mut a.transport, &mut b.transport]);
    }
}

fn got(b: &Subscriber, from: usize) -> Vec<(&Received, SvcOrigin)> {
    b.received(MediaKind::Video).into_iter().skip(from).map(|p| (p, svc_origin(&p.payload).expect("an SVC payload"))).collect()
}

/// Sequence numbers without a gap; the marker on each picture's last packet forwarded (the
/// highest spatial layer forwarded), and only there.
fn assert_continuous_and_marked(packets: &[(&Received, SvcOrigin)]) {
    for w in packets.windows(2) {
        let ((p, a), (q, b)) = (&w[0], &w[1]);
        assert_eq!(q.seq, p.seq + 1, "sequence numbers without a gap: {a:?} then {b:?}");
        assert_eq!(p.marker, a.frame != b.frame, "the marker ends each picture: {a:?} (marker {}) then {b:?}", p.marker);
    }
}

#[test]
fn an_svc_consumer_forwards_the_spatial_layers_it_prefers() {
    let mut sim = sim();
    let router = sim.worker.create_router();
    let mut transport = sim.client(&router, Direction::Send, true);
    let track = SvcTrack::new("0");
    let producer_id = sim
        .worker
        .produce(sim.now, &transport_id(&transport.id), MediaKind::Video, track.produce_parameters())
        .expect("VP9 L3T3 is accepted");
    track.declare(&mut transport);
    let mut a = Publisher { transport, track, keyframe_requests: 0 };
    let mut b = Subscriber::new(&mut sim, &router);
    let options = b.consume(&mut sim, &producer_id).unwrap();
    let consumer: ConsumerId = serde_json::from_value(options["id"].clone()).unwrap();
    assert_eq!(options["rtpParameters"]["encodings"].as_array().map(Vec::len), Some(1));
    assert_eq!(options["rtpParameters"]["encodings"][0]["scalabilityMode"], "L3T3", "the producer's mode, as mediasoup");
    assert_eq!(options["rtpParameters"]["codecs"][0]["mimeType"], "video/VP9");
    run(&mut sim, &mut a, &mut b, Duration::from_secs(3));

    let all = got(&b, 0);
    assert!(all.len() > 100, "media flows: {}", all.len());
    assert!(all[0].1.keyframe, "starts on a keyframe: {:?}", all[0].1);
    assert!([0, 1, 2].iter().all(|sid| all.iter().any(|(_, o)| o.sid == *sid)), "every spatial layer");
    assert_continuous_and_marked(&all);

    let mark = all.len();
    assert_eq!(sim.worker.set_consumer_preferred_layers(&consumer, 0, None).unwrap(), Some((0, 2)));
    run(&mut sim, &mut a, &mut b, Duration::from_secs(2));
    let after = got(&b, mark);
    let first_low =
        after.iter().position(|(_, o)| o.sid == 0 && after.iter().skip_while(|(_, x)| x.frame <= o.frame).all(|(_, x)| x.sid == 0));
    let settled = &after[first_low.expect("layer 0 only, without a keyframe (full SVC)")..];
    assert!(settled.len() > 40 && settled.iter().all(|(p, o)| o.sid == 0 && p.marker), "layer 0 alone, each packet ending its picture");
    assert_continuous_and_marked(&got(&b, mark - 1));
    let changed: Vec<(u8, u8)> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::ConsumerLayersChanged { consumer: c, spatial, temporal, .. } if *c == consumer => Some((*spatial, *temporal)),
            _ => None,
        })
        .collect();
    assert_eq!(changed.last(), Some(&(0, 2)), "{changed:?}");

    let (mark, requests) = (got(&b, 0).len(), a.keyframe_requests);
    sim.worker.set_consumer_preferred_layers(&consumer, 2, None).unwrap();
    run(&mut sim, &mut a, &mut b, Duration::from_secs(2));
    let after = got(&b, mark);
    let up = after.iter().position(|(_, o)| o.sid == 2).expect("back up to layer 2");
    assert!(after[up - 2].1.keyframe, "on a keyframe: {:?}", after[up - 2].1);
    assert!(a.keyframe_requests > requests, "the consumer asked for it");
    assert_continuous_and_marked(&got(&b, mark - 1));
}
