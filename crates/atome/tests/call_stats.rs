//! Stats of one's own objects over the WebSocket (mediasoup's getStats shapes), and call
//! quality per peer on `GET /metrics`, during a call over real UDP.
mod common;

use std::time::{Duration, Instant};

use common::{connected_recv_transport, connected_send_transport, join, room_for_two, TestServer, Ws};
use serde_json::{json, Value};
use sfu::rtp_parameters::MediaKind;
use testpeer::{expect_consumer, produce_parameters, Inbox, Track};

fn refused(r: &Value) -> Option<&str> {
    (r["type"] == "error").then(|| r["code"].as_str()).flatten()
}

/// The value of the metrics line that starts with `series` (name and labels).
fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_stats_over_the_socket_and_quality_per_peer_in_metrics() {
    let s = TestServer::start().await;
    let (a, b, room_id) = room_for_two(&s).await;
    let mut wa = Ws::auth(&s, &a).await;
    let mut wb = Ws::auth(&s, &b).await;
    let joined = join(&s, &mut wa, &a, &room_id).await;
    let mut send = connected_send_transport(&mut wa, &joined).await;
    let mut track = Track::new(MediaKind::Video, "0");
    let params = produce_parameters(MediaKind::Video, &track.mid, track.ssrc);
    let r = wa.request("produce", json!({"transport_id": send.id, "kind": "video", "rtpParameters": params})).await;
    let producer = r["producer_id"].clone();
    track.declare(&mut send);

    join(&s, &mut wb, &b, &room_id).await;
    let mut recv = connected_recv_transport(&mut wb).await;
    let r = wb.request("consume", json!({"transport_id": recv.id, "producer_id": producer})).await;
    let consumer = r["consumerOptions"]["id"].clone();
    let (ssrc, _) = expect_consumer(&mut recv, &r["consumerOptions"]).unwrap();
    wb.request("resumeConsumer", json!({"consumer_id": consumer})).await;

    // 3 s of media: the engine's statistics come once a second.
    let mut inbox = Inbox::default();
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        track.tick(&mut send);
        send.pump();
        let events = recv.pump();
        inbox.take_events(events);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(inbox.by_ssrc().get(&ssrc).is_some_and(|p| p.len() > 40), "media reached B");

    let r = wa.request("getTransportStats", json!({"transport_id": send.id})).await;
    assert_eq!(r["type"], "transportStats", "{r}");
    let t = &r["stats"][0];
    assert_eq!(
        (t["type"].as_str(), t["iceRole"].as_str(), t["dtlsState"].as_str()),
        (Some("webrtc-transport"), Some("controlled"), Some("connected")),
        "{r}"
    );
    assert_eq!(t["iceSelectedTuple"]["remoteIp"], "127.0.0.1", "{r}");
    assert!(t["bytesReceived"].as_u64().unwrap() > 10_000 && t["recvBitrate"].as_u64().unwrap() > 10_000, "{r}");
    let r = wa.request("getProducerStats", json!({"producer_id": producer})).await;
    assert_eq!(r["type"], "producerStats", "{r}");
    let p = &r["stats"][0];
    assert_eq!(
        (p["type"].as_str(), p["kind"].as_str(), p["mimeType"].as_str()),
        (Some("inbound-rtp"), Some("video"), Some("video/VP8")),
        "{r}"
    );
    assert!(p["packetCount"].as_u64().unwrap() > 40 && p["score"] == 10, "{r}");
    let r = wb.request("getConsumerStats", json!({"consumer_id": consumer})).await;
    assert_eq!(r["type"], "consumerStats", "{r}");
    assert_eq!((r["stats"][0]["type"].as_str(), r["stats"][1]["type"].as_str()), (Some("outbound-rtp"), Some("inbound-rtp")), "{r}");
    assert!(r["stats"][0]["packetCount"].as_u64().unwrap() > 40, "{r}");
    // Only one's own objects; a malformed request is refused, the socket stays.
    assert_eq!(refused(&wb.request("getTransportStats", json!({"transport_id": send.id})).await), Some("not_found"));
    assert_eq!(refused(&wb.request("getProducerStats", json!({"producer_id": producer})).await), Some("not_found"));
    assert_eq!(refused(&wa.request("getConsumerStats", json!({"consumer_id": consumer})).await), Some("not_found"));
    assert_eq!(refused(&wa.request("getConsumerStats", json!({})).await), Some("invalid_message"));

    // Per peer on /metrics, labelled with the user id (never the phone number).
    let (_, me_a) = s.get("/auth/me", Some(&a)).await;
    let (_, me_b) = s.get("/auth/me", Some(&b)).await;
    let (id_a, id_b) = (me_a["user"]["user_id"].as_str().unwrap().to_string(), me_b["user"]["user_id"].as_str().unwrap().to_string());
    let page = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
    let a_in = metric(&page, &format!("atome_peer_bitrate_bps{{peer=\"{id_a}\",direction=\"in\"}}"));
    let b_out = metric(&page, &format!("atome_peer_bitrate_bps{{peer=\"{id_b}\",direction=\"out\"}}"));
    assert!(a_in.is_some_and(|v| v > 10_000.0), "A sends: {a_in:?}\n{page}");
    assert!(b_out.is_some_and(|v| v > 10_000.0), "B receives: {b_out:?}");
    assert_eq!(metric(&page, &format!("atome_peer_fraction_lost{{peer=\"{id_a}\",direction=\"up\"}}")), Some(0.0), "no loss on loopback");
    assert_eq!(metric(&page, "atome_producers_silent "), Some(0.0));
    assert!(metric(&page, "atome_recordings_disk_used_ratio ").is_some_and(|r| (0.0..=1.0).contains(&r)));
    assert!(!page.contains(common::A) && !page.contains("+33"), "no phone numbers");

    // A stops sending: after 5 s its producer counts as silent.
    let quiet = Instant::now();
    let mut silent = None;
    while quiet.elapsed() < Duration::from_secs(12) {
        send.pump(); // keeps DTLS/ICE alive, no media
        tokio::time::sleep(Duration::from_millis(200)).await;
        let page = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
        if metric(&page, "atome_producers_silent ") == Some(1.0) {
            silent = Some(quiet.elapsed());
            break;
        }
    }
    assert!(silent.is_some_and(|t| t >= Duration::from_secs(4)), "the producer counts as silent after 5 s: {silent:?}");

    // A leaves: its lines go.
    wa.request("leaveRoom", json!({"room_id": room_id})).await;
    let page = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains(&format!("peer=\"{id_a}\"")), "a peer that left has no lines");
}
