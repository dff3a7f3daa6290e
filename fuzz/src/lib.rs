//! The fuzz targets' harnesses (README.md): `signaling` (client messages through a session of
//! the real server), `ortc` (client ORTC values into a worker's operations), `datagram`
//! (datagrams into a live worker), `headers` (the engine's own wire parsing). The targets in
//! `fuzz_targets/` only call [`signaling::run`], [`ortc::run`], [`datagram_target`] and
//! [`headers::run`]; `tests/regressions.rs` replays the committed crash inputs through them.
pub mod datagram;
pub mod dtls;
pub mod guard;
pub mod headers;
pub mod ortc;
pub mod public_headers;
pub mod signaling;
pub mod srtp;
pub mod stun;
pub mod world;

use std::cell::RefCell;

use world::World;

/// Inputs a world serves before it is built again (bounds what earlier inputs leave behind;
/// `ATOME_FUZZ_REBUILD_EVERY` overrides).
pub const REBUILD_EVERY: u64 = 20_000;

thread_local! {
    static WORLD: RefCell<Option<(World, u64)>> = const { RefCell::new(None) };
}

fn rebuild_every() -> u64 {
    std::env::var("ATOME_FUZZ_REBUILD_EVERY").ok().and_then(|v| v.parse().ok()).unwrap_or(REBUILD_EVERY)
}

/// The datagram target: `data` on this thread's world, built on first use, and again after a
/// transport closed or every [`REBUILD_EVERY`] inputs.
pub fn datagram_target(data: &[u8]) {
    dtls::install();
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let stale = match &*slot {
            None => true,
            Some((w, served)) => w.broken || *served >= rebuild_every(),
        };
        if stale {
            if let (Some((old, served)), true) = (&*slot, std::env::var_os("ATOME_FUZZ_DEBUG").is_some()) {
                eprintln!("world rebuilt after {served} inputs; events: {:?}", old.events);
            }
            let mut w = World::build(true);
            w.capture = false;
            *slot = Some((w, 0));
        }
        let (w, served) = slot.as_mut().expect("built above");
        *served += 1;
        w.run_input(data);
    });
}
