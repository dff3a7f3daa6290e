//! A quick figure: packets per second forwarded with one video publisher and N consumers,
//! everything in this process on loopback (the engine on its own worker thread).
//!
//!     cargo run --release -p testpeer --example fanout -- [consumers] [packets_per_second] [seconds]
use std::time::{Duration, Instant};

use sfu::rtp_parameters::MediaKind;
use sfu::{Direction, Engine, EngineConfig};
use testpeer::{expect_consumer, produce_parameters, send_rtp_capabilities, ClientTransport, Inbox, Track};

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let consumers = *args.first().unwrap_or(&20) as usize;
    let pps = *args.get(1).unwrap_or(&1000);
    let seconds = *args.get(2).unwrap_or(&5);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let engine = Engine::start(EngineConfig {
        workers: 1,
        listen_ip: "127.0.0.1".parse().expect("ip"),
        announced_ip: "127.0.0.1".parse().expect("ip"),
        base_port: 0,
        media_codecs: sfu::ortc::default_media_codecs(),
        nack_history: EngineConfig::DEFAULT_NACK_HISTORY,
        idle_timeout: EngineConfig::DEFAULT_IDLE_TIMEOUT,
        tcp: false,
        downlink_bwe: true,
    })
    .expect("engine");
    let router = rt.block_on(engine.create_router()).expect("router");
    let caps = send_rtp_capabilities(engine.rtp_capabilities());
    let opts = rt.block_on(engine.create_webrtc_transport(router.clone(), Direction::Send, Some(caps))).expect("transport");
    let opts = serde_json::to_value(&opts).expect("json");
    let (mut send, dtls) = ClientTransport::new(&opts, true).expect("client");
    rt.block_on(
        engine.connect_transport(serde_json::from_value(opts["id"].clone()).expect("id"), serde_json::from_value(dtls).expect("dtls")),
    )
    .expect("connect");
    let mut track = Track::new(MediaKind::Video, "0");
    track.interval = Some(Duration::from_micros(1_000_000 / pps.max(1)));
    track.record = false;
    let producer = rt
        .block_on(engine.produce(
            serde_json::from_value(opts["id"].clone()).expect("id"),
            MediaKind::Video,
            produce_parameters(MediaKind::Video, "0", track.ssrc),
        ))
        .expect("produce");
    track.declare(&mut send);
    let mut subs = Vec::new();
    for _ in 0..consumers {
        let o = rt.block_on(engine.create_webrtc_transport(router.clone(), Direction::Recv, None)).expect("recv");
        let o = serde_json::to_value(&o).expect("json");
        let (mut t, dtls) = ClientTransport::new(&o, false).expect("client");
        let tid: sfu::TransportId = serde_json::from_value(o["id"].clone()).expect("id");
        rt.block_on(engine.connect_transport(tid.clone(), serde_json::from_value(dtls).expect("dtls"))).expect("connect");
        let c = rt.block_on(engine.consume(tid, producer.clone(), engine.rtp_capabilities().clone())).expect("consume");
        let c_json = serde_json::to_value(&c).expect("json");
        expect_consumer(&mut t, &c_json).expect("expect");
        rt.block_on(engine.resume_consumer(c.id)).expect("resume");
        subs.push((t, Inbox::default()));
    }
    let warmup = Instant::now() + Duration::from_secs(3);
    let mut measuring: Option<(Instant, u64)> = None;
    let end_after = Duration::from_secs(seconds);
    loop {
        track.tick(&mut send);
        send.pump();
        for (t, inbox) in &mut subs {
            let ev = t.pump();
            inbox.take_events(ev);
            inbox.packets.clear();
        }
        let now = Instant::now();
        match measuring {
            None if now >= warmup => {
                let s = rt.block_on(engine.stats()).expect("stats");
                measuring = Some((now, s.rtp_forwarded));
            }
            Some((t0, f0)) if now.duration_since(t0) >= end_after => {
                let s = rt.block_on(engine.stats()).expect("stats");
                let secs = now.duration_since(t0).as_secs_f64();
                // forwarded_total counts from the start: divide the worker's instruction count by it.
                println!(
                    "consumers={consumers} publisher_pps={pps} forwarded_pps={:.0} seconds={secs:.1} forwarded_total={}",
                    (s.rtp_forwarded - f0) as f64 / secs,
                    s.rtp_forwarded
                );
                return;
            }
            _ => {}
        }
    }
}
