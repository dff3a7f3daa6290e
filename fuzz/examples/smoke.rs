//! Times the harness pieces: building the world, transports, and inputs of each target.
use std::time::Instant;

fn main() {
    let t = Instant::now();
    let w = atome_fuzz::world::World::build(true);
    println!("world built in {:?}, {} datagrams captured, footprint {:?}", t.elapsed(), w.captured.len(), w.baseline);
    drop(w);
    let provider = str0m::crypto::from_feature_flags();
    let t = Instant::now();
    for _ in 0..20 {
        provider.dtls_provider.generate_certificate();
    }
    println!("certificate: {:?} each", t.elapsed() / 20);
    let mut s = atome_fuzz::ortc::Session::new(sfu::ortc::router_rtp_capabilities(&sfu::ortc::default_media_codecs()).unwrap());
    s.apply(&atome_fuzz::ortc::Op::CreateRouter);
    let t = Instant::now();
    for _ in 0..5 {
        s.apply(&atome_fuzz::ortc::Op::CreateRecvTransport { router: 0 });
    }
    println!("recv transport: {:?} each", t.elapsed() / 5);
    let t = Instant::now();
    for i in 0..200u32 {
        atome_fuzz::datagram_target(&[6, (i % 5) as u8]);
    }
    println!("datagram: 200 inputs (a few steps each) in {:?}", t.elapsed());
    let t = Instant::now();
    for i in 0..200u32 {
        atome_fuzz::ortc::run(&i.to_be_bytes().repeat(16));
    }
    println!("ortc: 200 structured inputs in {:?}", t.elapsed());
}
