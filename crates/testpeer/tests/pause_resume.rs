//! Pausing and resuming a consumer and a producer: no gap in the consumer's sequence numbers,
//! forwarding restarts on a keyframe, and the producer is asked for one on resume.
use std::time::Duration;

use sfu::rtp_parameters::MediaKind;
use testpeer::local::{connected_pair, loopback_engine, run, Publisher, Subscriber};
use testpeer::Received;

fn video(b: &Subscriber) -> Vec<Received> {
    let mut got: Vec<Received> = b.received(MediaKind::Video).into_iter().cloned().collect();
    got.sort_by_key(|p| p.seq);
    got.dedup_by_key(|p| p.seq);
    got
}

/// Runs until B has `n` more video packets than now.
fn more(a: &mut Publisher, b: &mut Subscriber, n: usize) -> bool {
    let target = b.received(MediaKind::Video).len() + n;
    run(&mut [a], &mut [b], Duration::from_secs(10), |_, s| s[0].received(MediaKind::Video).len() >= target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pauses_leave_no_gap_and_resumes_start_on_a_keyframe() {
    let engine = loopback_engine(1).unwrap();
    let (_router, mut a, mut b) = connected_pair(&engine, MediaKind::Video).await.unwrap();
    assert!(more(&mut a, &mut b, 20), "video flows");
    let consumer = b.consumers[0].id.clone();
    let producer = b.consumers[0].producer.clone();

    // Consumer pause: nothing arrives; resume: a PLI reaches A and B restarts on a keyframe.
    engine.pause_consumer(consumer.clone()).await.unwrap();
    run(&mut [&mut a], &mut [&mut b], Duration::from_millis(200), |_, _| false);
    let at_pause = b.received(MediaKind::Video).len();
    run(&mut [&mut a], &mut [&mut b], Duration::from_millis(1200), |_, _| false);
    assert_eq!(b.received(MediaKind::Video).len(), at_pause, "a paused consumer forwards nothing");
    let plis = a.transport.keyframe_requests;
    engine.resume_consumer(consumer.clone()).await.unwrap();
    assert!(more(&mut a, &mut b, 20), "video flows again after the consumer resumes");
    assert!(a.transport.keyframe_requests > plis, "the resume asked A for a keyframe");

    // Producer pause (camera off) and resume.
    engine.pause_producer(producer.clone()).await.unwrap();
    run(&mut [&mut a], &mut [&mut b], Duration::from_millis(200), |_, _| false);
    let at_pause = b.received(MediaKind::Video).len();
    run(&mut [&mut a], &mut [&mut b], Duration::from_millis(1200), |_, _| false);
    assert_eq!(b.received(MediaKind::Video).len(), at_pause, "a paused producer feeds nobody");
    assert!(engine.consumer_stats(consumer.clone()).await.unwrap().producer_paused);
    engine.resume_producer(producer.clone()).await.unwrap();
    assert!(more(&mut a, &mut b, 20), "video flows again after the producer resumes");

    // Across both pauses the numbering has no hole, and each restart is a keyframe.
    let got = video(&b);
    let mut restarts = 0;
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "no gap in the consumer's sequence numbers");
        // A jump in RTP time (timestamps keep the producer clock) marks a restart.
        if w[1].timestamp.wrapping_sub(w[0].timestamp) > 90_000 / 2 {
            restarts += 1;
            assert!(testpeer::is_vp8_keyframe(&w[1].payload), "forwarding restarts on a keyframe");
        }
    }
    assert_eq!(restarts, 2, "two pauses of over a second each");
}
