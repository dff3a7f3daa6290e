//! Runs inputs (files, or every file of directories) through a target, in order, on one
//! thread: how a crash is read, and how the committed regressions run outside libFuzzer.
//!
//!     cargo run --release --example replay -- <ortc|datagram|headers> <file or directory>...
fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("a target: ortc, datagram or headers");
    let mut files = Vec::new();
    for path in args.map(std::path::PathBuf::from) {
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&path).expect("a directory").map(|e| e.expect("an entry").path()).collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path);
        }
    }
    let t = std::time::Instant::now();
    for f in &files {
        let data = std::fs::read(f).expect("a readable input");
        if std::env::var_os("ATOME_FUZZ_DEBUG").is_some() {
            eprintln!("{}", f.display());
        }
        match target.as_str() {
            "ortc" => atome_fuzz::ortc::run(&data),
            "datagram" => atome_fuzz::datagram_target(&data),
            "headers" => atome_fuzz::headers::run(&data),
            "ortc-json" => println!("{}", atome_fuzz::ortc::structured_to_json(&data)),
            other => panic!("unknown target {other}"),
        }
    }
    eprintln!("{} inputs in {:?}", files.len(), t.elapsed());
}
