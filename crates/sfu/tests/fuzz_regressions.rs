//! The committed crash inputs of the fuzz target `headers` (fuzz/regressions/headers/), replayed
//! through the fuzz target's own checks of the public parsers (`SeqGuard`, `SeqRewriter`, RTP
//! header, H264 profile-level-id): fuzz/src/public_headers.rs is compiled in here. Inputs for the
//! crate-private functions are replayed in fuzz/ (`cargo test` there); see fuzz/README.md.
#[path = "../../../fuzz/src/public_headers.rs"]
mod public_headers;

#[test]
fn header_parsing_crash_inputs_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/headers");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions/headers") {
        let path = entry.expect("an entry").path();
        let data = std::fs::read(&path).expect("a readable input");
        eprintln!("{}", path.display());
        replayed += usize::from(public_headers::run(&data));
    }
    assert!(replayed >= 2, "the SeqRewriter and SeqGuard inputs at least");
}
