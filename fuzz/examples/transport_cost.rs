//! Where creating a transport's time goes (after a warm-up: aws-lc's entropy pool starts once).
use std::time::Instant;

fn main() {
    let now = Instant::now();
    let _ = str0m::Rtc::new(now);
    let t = Instant::now();
    for _ in 0..50 {
        let _ = str0m::Rtc::new(now);
    }
    println!("Rtc::new (the placeholder in WebRtcTransport::new): {:?}", t.elapsed() / 50);
    let cert = str0m::crypto::from_feature_flags().dtls_provider.generate_certificate().unwrap();
    let t = Instant::now();
    for _ in 0..50 {
        let _ = str0m::RtcConfig::new().set_dtls_cert(cert.clone()).set_ice_lite(true).set_rtp_mode(true).clear_codecs().build(now);
    }
    println!("RtcConfig::build with a certificate: {:?}", t.elapsed() / 50);
    let mut s = atome_fuzz::ortc::Session::new(sfu::ortc::router_rtp_capabilities(&sfu::ortc::default_media_codecs()).unwrap());
    s.apply(&atome_fuzz::ortc::Op::CreateRouter);
    let t = Instant::now();
    for _ in 0..6 {
        s.apply(&atome_fuzz::ortc::Op::CreateRecvTransport { router: 0 });
    }
    println!("Worker::create_webrtc_transport: {:?}", t.elapsed() / 6);
}
