//! Every committed regression input (fuzz/regressions/<target>/) and seed (fuzz/seeds/<target>/)
//! through its target, outside libFuzzer: `cargo test` in fuzz/ (the stable toolchain will do).
//! A regression input is the input that found a bug, or a smaller one that finds it alone; each
//! has a test of its own in the main suite too (see README.md, "Findings").
use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["regressions", "seeds"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        for e in entries {
            let path = e.expect("a directory entry").path();
            files.push((path.display().to_string(), std::fs::read(&path).expect("a readable input")));
        }
    }
    files.sort();
    assert!(!files.is_empty(), "inputs of {target}");
    files
}

#[test]
fn headers() {
    for (name, data) in inputs("headers") {
        eprintln!("{name}");
        atome_fuzz::headers::run(&data);
    }
}

#[test]
fn ortc() {
    for (name, data) in inputs("ortc") {
        eprintln!("{name}");
        atome_fuzz::ortc::run(&data);
    }
}

#[test]
fn datagram() {
    for (name, data) in inputs("datagram") {
        eprintln!("{name}");
        atome_fuzz::datagram_target(&data);
    }
}

/// The regression inputs alone, each on a world of its own (as libFuzzer reproduces a crash).
#[test]
fn datagram_regressions_on_fresh_worlds() {
    for (name, data) in inputs("datagram").into_iter().filter(|(n, _)| n.contains("/regressions/")) {
        eprintln!("{name}");
        atome_fuzz::dtls::install();
        let mut world = atome_fuzz::world::World::build(false);
        world.run_input(&data);
    }
}

#[test]
fn signaling() {
    for (name, data) in inputs("signaling") {
        eprintln!("{name}");
        atome_fuzz::signaling::run(&data);
    }
}
