//! The load tool's simulcast mode against a real Atome server, small and short: publishers send
//! three VP8 streams, one subscriber's downlink is capped, and the server (estimating downlinks)
//! forwards it a lower stream than the uncapped one gets. Figures are printed, not judged.
mod common;

#[test]
fn a_capped_subscriber_of_simulcast_gets_a_lower_stream() {
    // Streams of 30, 90 and 300 kbit/s; 150 kbit/s hold the audio and the lowest stream only.
    let doc = common::report([
        "--rooms",
        "1",
        "--publishers",
        "1",
        "--subscribers",
        "2",
        "--seconds",
        "4",
        "--warmup",
        "3",
        "--no-pin",
        "--simulcast",
        "--video-kbps",
        "300",
        "--subscriber-cap-kbps",
        "150",
        "--capped-subscribers",
        "1",
    ]);
    let run = &doc["runs"][0];
    let layers = |key: &str| -> Vec<u64> { run[key].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect() };
    let (uncapped, capped) = (layers("uncapped_layer_packets"), layers("capped_layer_packets"));
    println!(
        "simulcast: {:.0} pkt/s forwarded, {:.2} CPU-s per million packets; uncapped subscriber got streams 0/1/2: {uncapped:?}, \
         capped at 150 kbit/s: {capped:?} ({} datagrams dropped by its cap)",
        run["forwarded_pps"].as_f64().unwrap_or(f64::NAN),
        run["server_cpu_seconds_per_million_packets"].as_f64().unwrap_or(f64::NAN),
        run["capped_link_dropped"]
    );
    assert_eq!((run["simulcast"].as_bool(), run["capped_subscribers"].as_u64()), (Some(true), Some(1)), "{run}");
    assert!(run["forwarded_pps"].as_f64().unwrap() > 50.0, "packets were forwarded: {run}");
    assert!(run["published_pps"].as_f64().unwrap() > run["expected_pps"].as_f64().unwrap() / 2.0, "{run}");
    assert!(uncapped[2] > 0 && uncapped[2] >= uncapped[0] + uncapped[1], "the uncapped subscriber gets the top stream: {uncapped:?}");
    let top_share = |l: &[u64]| l[2] as f64 / l.iter().sum::<u64>().max(1) as f64;
    assert!(capped.iter().sum::<u64>() > 0, "the capped subscriber gets video: {capped:?}");
    assert!(top_share(&capped) < 0.5 && top_share(&capped) < top_share(&uncapped), "the capped subscriber gets a lower stream: {capped:?}");
}
