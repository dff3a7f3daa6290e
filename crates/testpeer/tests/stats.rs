//! mediasoup's getStats() of transports, producers and consumers, and the per-transport figures
//! of metrics, from a call on a simulated clock with 10% of the publisher's video lost on the way
//! in.
mod common;

use std::time::Duration;

use common::{connected_pair, run, sim, transport_id};
use sfu::rtp_parameters::MediaKind;
use sfu::ConsumerId;

#[test]
fn stats_show_the_traffic_the_loss_and_the_path() {
    fastrand::seed(7); // the simulated loss (the test client draws from fastrand) is the same each run
    let mut sim = sim();
    let (mut a, mut b) = connected_pair(&mut sim, MediaKind::Video);
    a.transport.drop_pct = 10;
    run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(10), |_, _| false);
    let producer = a.tracks[0].1.clone();
    let consumer: ConsumerId = serde_json::from_value(b.consumers[0].0["id"].clone()).unwrap();

    let t = sim.worker.transport_stats(&transport_id(&a.transport.id)).expect("transport stats");
    let v = serde_json::to_value(&t).unwrap();
    println!("{v}");
    assert_eq!(v["type"], "webrtc-transport");
    assert_eq!(
        (v["iceRole"].as_str(), v["iceState"].as_str(), v["dtlsState"].as_str()),
        (Some("controlled"), Some("completed"), Some("connected"))
    );
    assert_eq!(v["iceSelectedTuple"]["remoteIp"], a.transport.local().ip().to_string());
    assert_eq!(v["iceSelectedTuple"]["protocol"], "udp");
    assert!(t.bytes_received > 100_000 && t.recv_bitrate > 50_000, "the publisher's upstream: {v}");

    let p = sim.worker.producer_stats(&producer).expect("producer stats");
    let v = serde_json::to_value(&p).unwrap();
    println!("{v}");
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].kind_of_stat, p[0].kind, p[0].mime_type.as_str()), ("inbound-rtp", MediaKind::Video, "video/VP8"));
    assert!(p[0].packet_count > 250 && p[0].bitrate > 100_000, "{v}");
    assert!(p[0].nack_count > 0, "the engine asked for the lost packets: {v}");
    // 10% dropped: RTCP's fraction lost (0..255) of the last interval (one second, about 30
    // packets), before NACK recovery.
    assert!((8..=80).contains(&p[0].fraction_lost), "{v}");
    assert!(p[0].score < 10, "loss lowers the score: {v}");

    let c = sim.worker.consumer_stats(&consumer).expect("consumer stats");
    let v = serde_json::to_value(&c).unwrap();
    println!("{v}");
    assert_eq!(c.len(), 2, "outbound, then the producer's inbound");
    assert_eq!((c[0].kind_of_stat, c[1].kind_of_stat), ("outbound-rtp", "inbound-rtp"));
    assert!(c[0].packet_count > 250 && c[0].byte_count > 100_000, "{v}");
    assert!(c[0].round_trip_time.is_some_and(|ms| ms < 50.0), "RTT from B's receiver reports: {v}");

    let q = sim.worker.transport_qualities();
    assert_eq!(q.len(), 2);
    let up = q.iter().find(|q| q.id.as_ref().map(|i| i.as_str()) == Some(a.transport.id.as_str())).expect("A's transport");
    let down = q.iter().find(|q| q.id.as_ref().map(|i| i.as_str()) == Some(b.transport.id.as_str())).expect("B's transport");
    println!("{up:?}\n{down:?}");
    assert!(up.loss_up.is_some_and(|l| (0.03..0.3).contains(&l)), "{up:?}");
    assert!(up.bitrate_up > 50_000 && up.nacks_up > 0, "{up:?}");
    assert!(down.bitrate_down > 50_000, "{down:?}");
    assert!(down.loss_down.is_some_and(|l| l < 0.02), "repaired by NACK before B: {down:?}");
    assert!(down.rtt.is_some_and(|s| s < 0.05) && down.jitter_down.is_some(), "{down:?}");

    // The producer's score went down with the loss, and was told (mediasoup's "score" event).
    let scores: Vec<u8> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            sfu::EngineEvent::ProducerScore { producer: p, score, .. } if *p == producer => Some(score[0].score),
            _ => None,
        })
        .collect();
    println!("scores told: {scores:?}");
    assert!(scores.iter().any(|s| *s < 10), "{scores:?}");
    assert!(scores.windows(2).all(|w| w[0] != w[1]), "told only when it changes: {scores:?}");

    // Unknown ids are errors, not panics.
    assert!(sim.worker.consumer_stats(&serde_json::from_value(serde_json::json!("w0-c999-x")).unwrap()).is_err());
}
