//! Simulcast over the real server (UDP, WebSocket): a rid-simulcast VP8 producer, a consumer
//! with one `L3T3` encoding; `setConsumerPreferredLayers`, `requestConsumerKeyFrame` and
//! `setConsumerPriority` for one's own consumers only; `consumerLayersChanged` to the consumer's
//! owner.
mod common;

use std::time::{Duration, Instant};

use common::{connected_recv_transport, connected_send_transport, join, room_for_two, TestServer, Ws};
use serde_json::{json, Value};
use testpeer::simulcast::{origin, SimulcastTrack};
use testpeer::{expect_consumer, ClientTransport, Inbox};

fn refused(r: &Value) -> Option<&str> {
    (r["type"] == "error").then(|| r["code"].as_str()).flatten()
}

/// Runs both clients for `dur` (the publisher answers keyframe requests, as an encoder).
fn pump(send: &mut ClientTransport, recv: &mut ClientTransport, track: &mut SimulcastTrack, inbox: &mut Inbox, dur: Duration) {
    let end = Instant::now() + dur;
    while Instant::now() < end {
        track.tick_at(send, Instant::now());
        let events = send.pump();
        track.answer_keyframe_requests(&events);
        let events = recv.pump();
        inbox.take_events(events);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Layers of the video received from packet `from` on.
fn layers(inbox: &Inbox, ssrc: u32, from: usize) -> Vec<u8> {
    inbox.packets.iter().filter(|p| p.ssrc == ssrc).skip(from).filter_map(|p| origin(&p.payload)).map(|o| o.layer).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_layers_and_layer_changes_over_the_socket() {
    let s = TestServer::start().await;
    let (a, b, room_id) = room_for_two(&s).await;
    let mut wa = Ws::auth(&s, &a).await;
    let mut wb = Ws::auth(&s, &b).await;
    let joined = join(&s, &mut wa, &a, &room_id).await;
    let mut send = connected_send_transport(&mut wa, &joined).await;
    let mut track = SimulcastTrack::new("0", 3, true);
    let r = wa.request("produce", json!({"transport_id": send.id, "kind": "video", "rtpParameters": track.produce_parameters()})).await;
    assert_eq!(r["type"], "produced", "{r}");
    let producer = r["producer_id"].clone();
    track.declare(&mut send);

    join(&s, &mut wb, &b, &room_id).await;
    let mut recv = connected_recv_transport(&mut wb).await;
    let r = wb.request("consume", json!({"transport_id": recv.id, "producer_id": producer})).await;
    let options = &r["consumerOptions"];
    assert_eq!(options["rtpParameters"]["encodings"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(options["rtpParameters"]["encodings"][0]["scalabilityMode"], "L3T3", "{r}");
    let consumer = options["id"].clone();
    let (ssrc, _) = expect_consumer(&mut recv, options).unwrap();
    wb.request("resumeConsumer", json!({"consumer_id": consumer})).await;

    let mut inbox = Inbox::default();
    pump(&mut send, &mut recv, &mut track, &mut inbox, Duration::from_secs(3));
    let got = layers(&inbox, ssrc, 0);
    assert!(got.len() > 30 && got.last() == Some(&2), "the highest stream: {got:?}");
    let changed = wb.notification("consumerLayersChanged").await;
    assert_eq!(changed["consumer_id"], consumer, "{changed}");

    // Only the consumer's owner may choose its layers or ask for keyframes.
    assert_eq!(
        refused(&wa.request("setConsumerPreferredLayers", json!({"consumer_id": consumer, "spatialLayer": 0})).await),
        Some("not_found")
    );
    assert_eq!(refused(&wa.request("requestConsumerKeyFrame", json!({"consumer_id": consumer})).await), Some("not_found"));
    assert_eq!(refused(&wb.request("setConsumerPreferredLayers", json!({"consumer_id": consumer})).await), Some("invalid_message"));
    let r = wb.request("setConsumerPreferredLayers", json!({"consumer_id": consumer, "spatialLayer": 9, "temporalLayer": 1})).await;
    assert_eq!(
        (r["type"].as_str(), r["spatialLayer"].as_u64(), r["temporalLayer"].as_u64()),
        (Some("consumerPreferredLayersSet"), Some(2), Some(1)),
        "clamped: {r}"
    );
    let r = wb.request("setConsumerPreferredLayers", json!({"consumer_id": consumer, "spatialLayer": 0})).await;
    assert_eq!((r["spatialLayer"].as_u64(), r["temporalLayer"].as_u64()), (Some(0), Some(2)), "{r}");
    let mark = inbox.packets.len();
    pump(&mut send, &mut recv, &mut track, &mut inbox, Duration::from_secs(2));
    let got = layers(&inbox, ssrc, mark);
    assert_eq!(got.last(), Some(&0), "stream 0 now: {got:?}");
    loop {
        let n = wb.notification("consumerLayersChanged").await;
        if n["spatialLayer"] == 0 {
            break;
        }
    }
    let r = wb.request("requestConsumerKeyFrame", json!({"consumer_id": consumer})).await;
    assert_eq!(r["type"], "consumerKeyFrameRequested", "{r}");

    // Priority: the owner's only, 0..=255 (0 taken as 1).
    assert_eq!(refused(&wa.request("setConsumerPriority", json!({"consumer_id": consumer, "priority": 2})).await), Some("not_found"));
    assert_eq!(
        refused(&wb.request("setConsumerPriority", json!({"consumer_id": consumer, "priority": 256})).await),
        Some("invalid_message")
    );
    let r = wb.request("setConsumerPriority", json!({"consumer_id": consumer, "priority": 0})).await;
    assert_eq!((r["type"].as_str(), r["priority"].as_u64()), (Some("consumerPrioritySet"), Some(1)), "{r}");
    let r = wb.request("setConsumerPriority", json!({"consumer_id": consumer, "priority": 7})).await;
    assert_eq!(r["priority"], 7, "{r}");
    s.stop().await;
}
